package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"github.com/spf13/viper"
)

// Config is the validated configuration of one tenantry process.
type Config struct {
	Server   Server       `mapstructure:"server"`
	Admin    Admin        `mapstructure:"admin"`
	Database Database     `mapstructure:"database"`
	Tenancy  Tenancy      `mapstructure:"tenancy"`
	Tenants  []TenantSeed `mapstructure:"tenants"`
	Log      Log          `mapstructure:"log"`
	Web      Web          `mapstructure:"web"`
}

// Server configures the tenant-facing HTTP listeners.
type Server struct {
	// Listen holds every address served; each is served by the same handler.
	Listen []string `mapstructure:"listen"`
	// TrustedProxies lists the IPs or CIDRs whose X-Forwarded-Host and
	// X-Forwarded-Proto headers are believed. Empty means none.
	TrustedProxies    []string      `mapstructure:"trusted_proxies"`
	ReadTimeout       time.Duration `mapstructure:"read_timeout"`
	ReadHeaderTimeout time.Duration `mapstructure:"read_header_timeout"`
	WriteTimeout      time.Duration `mapstructure:"write_timeout"`
	IdleTimeout       time.Duration `mapstructure:"idle_timeout"`
	// ShutdownTimeout bounds how long in-flight requests may run after a
	// SIGINT or SIGTERM before the listeners are closed hard.
	ShutdownTimeout time.Duration `mapstructure:"shutdown_timeout"`
	// MaxBodyBytes is the largest request body accepted (413 beyond it).
	MaxBodyBytes int64 `mapstructure:"max_body_bytes"`
}

// Admin configures the operator API. It is never served on a tenant port.
type Admin struct {
	// Listen is the admin address; empty disables the admin API.
	Listen string `mapstructure:"listen"`
	// Token is the bearer token the admin API requires.
	Token string `mapstructure:"token"`
}

// Database configures the connection pool.
type Database struct {
	Driver          string        `mapstructure:"driver"`
	DSN             string        `mapstructure:"dsn"`
	MaxOpenConns    int           `mapstructure:"max_open_conns"`
	MaxIdleConns    int           `mapstructure:"max_idle_conns"`
	ConnMaxLifetime time.Duration `mapstructure:"conn_max_lifetime"`
	// PoolGroups splits the PostgreSQL pool into this many groups of
	// connections, each serving its own share of the tenants (see
	// database.Router). 0 picks AutoPoolGroups; 1 turns affinity off.
	PoolGroups int `mapstructure:"pool_groups"`
	// StatementCacheCapacity is how many prepared statements each
	// PostgreSQL connection keeps; 0 picks DefaultStatementCache.
	StatementCacheCapacity int `mapstructure:"statement_cache_capacity"`
	// PlanCacheMode is PostgreSQL's plan_cache_mode for every connection,
	// sent at connect time (it carries no tenant state); empty leaves the
	// server's setting.
	PlanCacheMode string `mapstructure:"plan_cache_mode"`
}

// DefaultStatementCache is the prepared statements kept per connection
// when database.statement_cache_capacity is 0.
const DefaultStatementCache = 4096

// PlanCacheModes are the values database.plan_cache_mode accepts.
var PlanCacheModes = []string{"", "auto", "force_generic_plan", "force_custom_plan"}

// Groups is the number of connection groups the pool is split into:
// PoolGroups, or when it is 0 one group per connection, the smallest share
// of tenants per connection (measured best at 10,000 tenants: 3,018 req/s
// against 2,660 with groups of two and 2,160 with groups of four).
func (d Database) Groups() int {
	g := d.PoolGroups
	if g == 0 {
		g = d.MaxOpenConns
	}
	return min(max(g, 1), max(d.MaxOpenConns, 1))
}

// StatementCache is the prepared statements kept per connection.
func (d Database) StatementCache() int {
	if d.StatementCacheCapacity == 0 {
		return DefaultStatementCache
	}
	return d.StatementCacheCapacity
}

// Tenancy configures how tenants are kept apart and found.
type Tenancy struct {
	// Strategy is "schema" (a PostgreSQL schema per tenant) or "prefix"
	// (tables named <schema>_<table>). Empty picks DefaultStrategy.
	Strategy string `mapstructure:"strategy"`
	// NegativeCacheTTL is how long an unknown host is remembered as unknown.
	NegativeCacheTTL time.Duration `mapstructure:"negative_cache_ttl"`
	// RefreshInterval is how often the whole catalog is reloaded into the
	// resolver's cache, so changes made by other processes are seen.
	RefreshInterval time.Duration `mapstructure:"refresh_interval"`
}

// TenantSeed is a tenant that start-up makes sure exists.
type TenantSeed struct {
	Name   string   `mapstructure:"name"`
	Schema string   `mapstructure:"schema"`
	Hosts  []string `mapstructure:"hosts"`
}

// Log configures the process logger.
type Log struct {
	Level  string `mapstructure:"level"`
	Format string `mapstructure:"format"`
}

// Web configures the HTML interface.
type Web struct {
	// SessionKey signs flash cookies; a random key is used when empty.
	SessionKey string `mapstructure:"session_key"`
}

// Drivers, strategies, log levels and formats accepted by Validate.
var (
	Drivers    = []string{"sqlite", "postgres"}
	Strategies = []string{"schema", "prefix"}
	LogLevels  = []string{"debug", "info", "warn", "error"}
	LogFormats = []string{"text", "json"}
)

// Default returns the configuration used when no file, variable or flag
// says otherwise: two tenants on :5000 and :8000 over an embedded SQLite file.
func Default() Config {
	return Config{
		Server: Server{
			Listen:            []string{":5000", ":8000"},
			ReadTimeout:       15 * time.Second,
			ReadHeaderTimeout: 5 * time.Second,
			WriteTimeout:      30 * time.Second,
			IdleTimeout:       120 * time.Second,
			ShutdownTimeout:   20 * time.Second,
			MaxBodyBytes:      1 << 20,
		},
		Admin: Admin{Listen: "127.0.0.1:9000"},
		Database: Database{
			Driver:          "sqlite",
			DSN:             "tenantry.db",
			MaxOpenConns:    16,
			MaxIdleConns:    16,
			ConnMaxLifetime: 30 * time.Minute,
		},
		Tenancy: Tenancy{
			Strategy:         "", // derived from the driver in Load
			NegativeCacheTTL: 5 * time.Second,
			RefreshInterval:  30 * time.Second,
		},
		Tenants: []TenantSeed{
			{Name: "localhost1", Schema: "localhost1", Hosts: []string{"localhost:5000", "127.0.0.1:5000"}},
			{Name: "localhost2", Schema: "localhost2", Hosts: []string{"localhost:8000", "127.0.0.1:8000"}},
		},
		Log: Log{Level: "info", Format: "text"},
	}
}

// Flags registers the command-line flags that override configuration keys.
func Flags(fs *pflag.FlagSet) {
	fs.String("config", "", "path to a YAML config file (default ./config.yaml when present)")
	fs.StringSlice("listen", nil, "server.listen: addresses to serve, e.g. :5000,:8000")
	fs.String("db-driver", "", "database.driver: sqlite or postgres")
	fs.String("db-dsn", "", "database.dsn: SQLite file or PostgreSQL URL")
	fs.String("strategy", "", "tenancy.strategy: schema or prefix")
	fs.String("log-level", "", "log.level: debug, info, warn or error")
	fs.String("log-format", "", "log.format: text or json")
	fs.String("admin-listen", "", "admin.listen: admin API address (empty disables it)")
}

var flagKeys = map[string]string{
	"listen":       "server.listen",
	"db-driver":    "database.driver",
	"db-dsn":       "database.dsn",
	"strategy":     "tenancy.strategy",
	"log-level":    "log.level",
	"log-format":   "log.format",
	"admin-listen": "admin.listen",
}

// Load reads the configuration. fs may be nil; when it holds a "config"
// flag that names a file, that file must exist.
func Load(fs *pflag.FlagSet) (Config, error) {
	v := viper.New()
	setDefaults(v, Default())
	v.SetEnvPrefix(EnvPrefix)
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	v.AutomaticEnv()
	// Without this viper treats a variable set to "" as unset, so
	// TENANTRY_ADMIN_LISTEN= could not disable the admin API as documented.
	// Keys for which empty means nothing are refused in checkKeys instead
	// of silently taking their default.
	v.AllowEmptyEnv(true)

	path := os.Getenv("TENANTRY_CONFIG")
	fromFlag := map[string]bool{}
	if fs != nil {
		if f := fs.Lookup("config"); f != nil && f.Changed {
			path = f.Value.String()
		}
		for flag, key := range flagKeys {
			if f := fs.Lookup(flag); f != nil && f.Changed {
				if err := v.BindPFlag(key, f); err != nil {
					return Config{}, fmt.Errorf("config: bind --%s: %w", flag, err)
				}
				fromFlag[key] = true
			}
		}
	}
	if path == "" {
		if _, err := os.Stat("config.yaml"); err == nil {
			path = "config.yaml"
		}
	}
	if path != "" {
		v.SetConfigFile(path)
		v.SetConfigType("yaml")
		if err := v.ReadInConfig(); err != nil {
			return Config{}, fmt.Errorf("config: read %s: %w", path, err)
		}
	}

	if err := checkKeys(v, fromFlag); err != nil {
		return Config{}, err
	}
	var c Config
	if err := v.Unmarshal(&c); err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	if c.Tenancy.Strategy == "" {
		c.Tenancy.Strategy = DefaultStrategy(c.Database.Driver)
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// key describes one configuration key for the checks Load makes before
// decoding, so that a value that cannot be decoded, or an environment
// variable set to nothing, is reported with the key and what it accepts
// rather than as a bare parse error or a silent default.
type key struct {
	name string
	// allowed says what the key accepts, in the words of Validate's errors.
	allowed string
	// decode, when set, decodes the value as Unmarshal will, to find text
	// that does not parse.
	decode func(v *viper.Viper, key string) error
	// emptyOK marks keys for which an empty value means something
	// (disable, none, generate, derive), so an empty variable is accepted.
	emptyOK bool
}

// aDuration is what every duration key accepts.
const aDuration = "a positive duration such as 5s, 1m30s or 250ms"

// EnvPrefix starts the name of every environment variable Load reads.
const EnvPrefix = "TENANTRY"

// keys lists every scalar or list key Load reads from the environment.
var keys = []key{
	{name: "server.listen", allowed: "one or more host:port addresses such as :5000, comma-separated"},
	{name: "server.trusted_proxies", allowed: "IP addresses or CIDR prefixes, comma-separated; empty for none", emptyOK: true},
	{name: "server.read_timeout", allowed: aDuration, decode: decodeAs[time.Duration]},
	{name: "server.read_header_timeout", allowed: aDuration, decode: decodeAs[time.Duration]},
	{name: "server.write_timeout", allowed: aDuration, decode: decodeAs[time.Duration]},
	{name: "server.idle_timeout", allowed: aDuration, decode: decodeAs[time.Duration]},
	{name: "server.shutdown_timeout", allowed: aDuration, decode: decodeAs[time.Duration]},
	{name: "server.max_body_bytes", allowed: "a positive whole number of bytes such as 1048576", decode: decodeAs[int64]},
	{name: "admin.listen", allowed: "a host:port address, or empty to disable", emptyOK: true},
	{name: "admin.token", allowed: "any text; empty generates one per process on loopback", emptyOK: true},
	{name: "database.driver", allowed: strings.Join(Drivers, ", ")},
	{name: "database.dsn", allowed: "a SQLite file name or a PostgreSQL URL"},
	{name: "database.max_open_conns", allowed: "a whole number, 1 or more", decode: decodeAs[int64]},
	{name: "database.max_idle_conns", allowed: "a whole number from 0 to database.max_open_conns", decode: decodeAs[int64]},
	{name: "database.conn_max_lifetime", allowed: aDuration, decode: decodeAs[time.Duration]},
	{name: "database.pool_groups", allowed: "a whole number from 0 (automatic) to database.max_open_conns", decode: decodeAs[int64]},
	{name: "database.statement_cache_capacity", allowed: "a whole number from 0 (automatic) to 65536", decode: decodeAs[int64]},
	{name: "database.plan_cache_mode", allowed: "auto, force_generic_plan, force_custom_plan, or empty for the server's setting", emptyOK: true},
	{name: "tenancy.strategy", allowed: strings.Join(Strategies, ", ") + "; empty picks the driver's default", emptyOK: true},
	{name: "tenancy.negative_cache_ttl", allowed: aDuration, decode: decodeAs[time.Duration]},
	{name: "tenancy.refresh_interval", allowed: aDuration, decode: decodeAs[time.Duration]},
	{name: "tenants", allowed: "a list of tenants in the config file; empty for none", emptyOK: true},
	{name: "log.level", allowed: strings.Join(LogLevels, ", ")},
	{name: "log.format", allowed: strings.Join(LogFormats, ", ")},
	{name: "web.session_key", allowed: "any text; empty signs with a random key", emptyOK: true},
}

// decodeAs decodes key into a T the way Unmarshal does, hooks included.
func decodeAs[T any](v *viper.Viper, key string) error {
	var x T
	return v.UnmarshalKey(key, &x)
}

// checkKeys reports every key whose environment variable is set but empty
// where empty means nothing, and every value that does not decode. A key
// given by a flag (fromFlag) is not judged by its variable, which the flag
// overrides.
func checkKeys(v *viper.Viper, fromFlag map[string]bool) error {
	var errs []error
	for _, k := range keys {
		env := EnvPrefix + "_" + strings.ToUpper(strings.ReplaceAll(k.name, ".", "_"))
		if val, set := os.LookupEnv(env); set && val == "" && !k.emptyOK && !fromFlag[k.name] {
			errs = append(errs, fmt.Errorf("config: %s: %s is set but empty (allowed: %s); unset it to fall back to the config file or the default", k.name, env, k.allowed))
			continue
		}
		if k.decode == nil {
			continue
		}
		if err := k.decode(v, k.name); err != nil {
			// The decoder names the key '' here; its cause is what helps.
			if cause := errors.Unwrap(err); cause != nil {
				err = cause
			}
			val := fmt.Sprint(v.Get(k.name))
			if s, ok := v.Get(k.name).(string); ok {
				val = strconv.Quote(s)
			}
			errs = append(errs, fmt.Errorf("config: %s: %s is not allowed (allowed: %s): %w", k.name, val, k.allowed, err))
		}
	}
	return errors.Join(errs...)
}

func setDefaults(v *viper.Viper, d Config) {
	v.SetDefault("server.listen", d.Server.Listen)
	v.SetDefault("server.trusted_proxies", d.Server.TrustedProxies)
	v.SetDefault("server.read_timeout", d.Server.ReadTimeout)
	v.SetDefault("server.read_header_timeout", d.Server.ReadHeaderTimeout)
	v.SetDefault("server.write_timeout", d.Server.WriteTimeout)
	v.SetDefault("server.idle_timeout", d.Server.IdleTimeout)
	v.SetDefault("server.shutdown_timeout", d.Server.ShutdownTimeout)
	v.SetDefault("server.max_body_bytes", d.Server.MaxBodyBytes)
	v.SetDefault("admin.listen", d.Admin.Listen)
	v.SetDefault("admin.token", d.Admin.Token)
	v.SetDefault("database.driver", d.Database.Driver)
	v.SetDefault("database.dsn", d.Database.DSN)
	v.SetDefault("database.max_open_conns", d.Database.MaxOpenConns)
	v.SetDefault("database.max_idle_conns", d.Database.MaxIdleConns)
	v.SetDefault("database.conn_max_lifetime", d.Database.ConnMaxLifetime)
	v.SetDefault("database.pool_groups", d.Database.PoolGroups)
	v.SetDefault("database.statement_cache_capacity", d.Database.StatementCacheCapacity)
	v.SetDefault("database.plan_cache_mode", d.Database.PlanCacheMode)
	v.SetDefault("tenancy.strategy", d.Tenancy.Strategy)
	v.SetDefault("tenancy.negative_cache_ttl", d.Tenancy.NegativeCacheTTL)
	v.SetDefault("tenancy.refresh_interval", d.Tenancy.RefreshInterval)
	v.SetDefault("log.level", d.Log.Level)
	v.SetDefault("log.format", d.Log.Format)
	v.SetDefault("web.session_key", d.Web.SessionKey)
	seeds := make([]map[string]any, 0, len(d.Tenants))
	for _, s := range d.Tenants {
		seeds = append(seeds, map[string]any{"name": s.Name, "schema": s.Schema, "hosts": s.Hosts})
	}
	v.SetDefault("tenants", seeds)
}

// Validate reports the first invalid value, naming its key and what is allowed.
func (c Config) Validate() error {
	var errs []error
	bad := func(key string, val any, allowed string) {
		errs = append(errs, fmt.Errorf("config: %s: %v is not allowed (allowed: %s)", key, val, allowed))
	}
	oneOf := func(key, val string, allowed []string) {
		if !slices.Contains(allowed, val) {
			bad(key, fmt.Sprintf("%q", val), strings.Join(allowed, ", "))
		}
	}
	if len(c.Server.Listen) == 0 {
		bad("server.listen", "[]", "one or more host:port addresses")
	}
	for _, a := range c.Server.Listen {
		if _, _, err := net.SplitHostPort(a); err != nil {
			bad("server.listen", fmt.Sprintf("%q", a), "host:port addresses such as :5000")
		}
	}
	for _, p := range c.Server.TrustedProxies {
		if _, err := netip.ParsePrefix(p); err != nil {
			if _, err := netip.ParseAddr(p); err != nil {
				bad("server.trusted_proxies", fmt.Sprintf("%q", p), "IP addresses or CIDR prefixes")
			}
		}
	}
	for key, d := range map[string]time.Duration{
		"server.read_timeout":        c.Server.ReadTimeout,
		"server.read_header_timeout": c.Server.ReadHeaderTimeout,
		"server.write_timeout":       c.Server.WriteTimeout,
		"server.idle_timeout":        c.Server.IdleTimeout,
		"server.shutdown_timeout":    c.Server.ShutdownTimeout,
		"tenancy.negative_cache_ttl": c.Tenancy.NegativeCacheTTL,
		"tenancy.refresh_interval":   c.Tenancy.RefreshInterval,
	} {
		if d <= 0 {
			bad(key, d, "a positive duration such as 5s")
		}
	}
	if c.Server.MaxBodyBytes <= 0 {
		bad("server.max_body_bytes", c.Server.MaxBodyBytes, "a positive number of bytes")
	}
	if c.Admin.Listen != "" {
		host, _, err := net.SplitHostPort(c.Admin.Listen)
		switch {
		case err != nil:
			bad("admin.listen", fmt.Sprintf("%q", c.Admin.Listen), "a host:port address, or empty to disable")
		case c.Admin.Token == "" && !isLoopback(host):
			errs = append(errs, fmt.Errorf("config: admin.token: must be set when admin.listen (%q) is not a loopback address", c.Admin.Listen))
		case slices.Contains(c.Server.Listen, c.Admin.Listen):
			bad("admin.listen", fmt.Sprintf("%q", c.Admin.Listen), "an address that is not also in server.listen")
		}
	}
	oneOf("database.driver", c.Database.Driver, Drivers)
	if c.Database.DSN == "" {
		bad("database.dsn", `""`, "a SQLite file name or a PostgreSQL URL")
	}
	if c.Database.MaxOpenConns < 1 {
		bad("database.max_open_conns", c.Database.MaxOpenConns, "1 or more")
	}
	if c.Database.MaxIdleConns < 0 || c.Database.MaxIdleConns > c.Database.MaxOpenConns {
		bad("database.max_idle_conns", c.Database.MaxIdleConns, "0 to database.max_open_conns")
	}
	if c.Database.PoolGroups < 0 || c.Database.PoolGroups > max(c.Database.MaxOpenConns, 1) {
		bad("database.pool_groups", c.Database.PoolGroups, "0 (automatic) to database.max_open_conns")
	}
	if c.Database.StatementCacheCapacity < 0 || c.Database.StatementCacheCapacity > 65536 {
		bad("database.statement_cache_capacity", c.Database.StatementCacheCapacity, "0 (automatic) to 65536")
	}
	oneOf("database.plan_cache_mode", c.Database.PlanCacheMode, PlanCacheModes)
	oneOf("tenancy.strategy", c.Tenancy.Strategy, Strategies)
	if c.Tenancy.Strategy == "schema" && c.Database.Driver != "postgres" {
		bad("tenancy.strategy", `"schema"`, `"prefix" when database.driver is "sqlite"`)
	}
	for i, t := range c.Tenants {
		if t.Name == "" {
			bad(fmt.Sprintf("tenants[%d].name", i), `""`, "a non-empty name")
		}
		if len(t.Hosts) == 0 {
			bad(fmt.Sprintf("tenants[%d].hosts", i), "[]", "one or more host[:port] names")
		}
	}
	oneOf("log.level", c.Log.Level, LogLevels)
	oneOf("log.format", c.Log.Format, LogFormats)
	return errors.Join(errs...)
}

// DefaultStrategy is the tenancy strategy used when none is configured:
// a schema per tenant on PostgreSQL, prefixed tables elsewhere.
func DefaultStrategy(driver string) string {
	if driver == "postgres" {
		return "schema"
	}
	return "prefix"
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}
