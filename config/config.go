package config

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"os"
	"reflect"
	"regexp"
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
	Metrics  Metrics      `mapstructure:"metrics"`
	// Databases are the PostgreSQL servers (or databases) besides the
	// control database (Database) that hold tenants' schemas: placements.
	// The catalog stays on the control database, which is a placement too
	// (Database.Name), so an empty list is the one-database set-up.
	Databases []Placement `mapstructure:"databases"`
}

// Placement is one database that holds tenants' schemas. Its pool takes
// every setting but the DSN from the database section.
type Placement struct {
	// Name is how the catalog and the operator refer to it; it never
	// changes while tenants are placed on it.
	Name string `mapstructure:"name"`
	// DSN is a PostgreSQL URL. TENANTRY_DATABASES_<NAME>_DSN (the name
	// upper-cased, '-' as '_') overrides it, so that a password need not
	// sit in the file.
	DSN string `mapstructure:"dsn"`
}

// DefaultPlacement names the control database when database.name is unset.
const DefaultPlacement = "main"

// PlacementEnv is the environment variable that overrides the DSN of the
// placement called name.
func PlacementEnv(name string) string {
	return EnvPrefix + "_DATABASES_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_")) + "_DSN"
}

// Placements returns every placement, the control database first, each
// with its DSN.
func (c Config) Placements() []Placement {
	out := make([]Placement, 0, 1+len(c.Databases))
	out = append(out, Placement{Name: c.Database.Name, DSN: c.Database.DSN})
	return append(out, c.Databases...)
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
	// RequestTimeout is the deadline of every request's context, tenant
	// API, pages and admin API alike; every statement runs under it, so a
	// stalled database answers 503 after it rather than holding the
	// request. It must be below WriteTimeout, or the 503 cannot be sent.
	RequestTimeout time.Duration `mapstructure:"request_timeout"`
}

// Admin configures the operator API. It is never served on a tenant port.
type Admin struct {
	// Listen is the admin address; empty disables the admin API.
	Listen string `mapstructure:"listen"`
	// Token is the bearer token the admin API requires.
	Token string `mapstructure:"token"`
	// MetricsToken, when set, is a second bearer token accepted on
	// GET /metrics only, so that a Prometheus scraper never holds the
	// token that can remove tenants. The admin token works there too.
	MetricsToken string `mapstructure:"metrics_token"`
}

// Database configures the connection pool.
type Database struct {
	// Name is the control database's name as a placement (see
	// Config.Databases); tenants placed on it have an empty placement in
	// the catalog, so renaming it moves nothing.
	Name            string        `mapstructure:"name"`
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
	// HomeWait is how long a quiet tenant's statement waits for a
	// connection of its home group before it takes any free connection
	// (database.Router); 0 takes any at once.
	HomeWait time.Duration `mapstructure:"home_wait"`
	// PlanCacheMode is PostgreSQL's plan_cache_mode for every connection,
	// sent at connect time (it carries no tenant state); empty leaves the
	// server's setting.
	PlanCacheMode string `mapstructure:"plan_cache_mode"`
	// StatementTimeout is PostgreSQL's statement_timeout for every
	// connection, sent at connect time: a backstop above
	// server.request_timeout for statements whose client stopped waiting.
	// 0 leaves the server's setting.
	StatementTimeout time.Duration `mapstructure:"statement_timeout"`
	// LockTimeout bounds how long a statement waits for a lock: PostgreSQL's
	// lock_timeout (0 leaves the server's setting), and SQLite's
	// busy_timeout, the wait for another writer (0: no wait at all). On
	// SQLite it must be below server.request_timeout.
	LockTimeout time.Duration `mapstructure:"lock_timeout"`
	// ConnectTimeout is how long Open keeps retrying a database that does
	// not answer at start-up before giving up; 0 tries once.
	ConnectTimeout time.Duration `mapstructure:"connect_timeout"`
}

// DefaultHomeWait is database.home_wait's default: about the time of a
// few statements, so a home group's short queue is waited out while a
// long one is left for any free connection (docs/BENCHMARKS.md).
const DefaultHomeWait = 2 * time.Millisecond

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
	// MaxConcurrentPerTenant bounds how many requests of one tenant are
	// served at once, so that one tenant cannot hold every database
	// connection; 0 means unlimited. Left unset, Load makes it
	// DefaultMaxConcurrent(database.max_open_conns). A tenant's own
	// override in the catalog takes precedence.
	MaxConcurrentPerTenant int `mapstructure:"max_concurrent_per_tenant"`
	// ConcurrencyWait is how long a request over its tenant's concurrency
	// limit waits for a slot before it is refused with 429; 0 refuses at
	// once.
	ConcurrencyWait time.Duration `mapstructure:"concurrency_wait"`
	// RateLimit is the requests per second each tenant may send, on
	// average; 0 means unlimited. A tenant's override takes precedence.
	RateLimit float64 `mapstructure:"rate_limit"`
	// RateBurst is how many requests a tenant may send at once above its
	// rate; 0 picks the rate rounded up (at least 1).
	RateBurst int `mapstructure:"rate_burst"`
	// RefusalHold is the longest a tenant's repeated rate refusal (past
	// its burst within one Retry-After) is held before it is answered,
	// so that a client ignoring Retry-After is paced; 0 answers every
	// refusal at once. Below server.request_timeout.
	RefusalHold time.Duration `mapstructure:"refusal_hold"`
	// MaxHeldRefusals bounds the refusals held at once in the process;
	// past it a refusal is answered at once. 0 holds none.
	MaxHeldRefusals int `mapstructure:"max_held_refusals"`
}

// DefaultMaxConcurrent is tenancy.max_concurrent_per_tenant when it is not
// set: half the pool, at least 1, so that one tenant never holds more than
// half the connections and the other half stays free for everyone else.
func DefaultMaxConcurrent(maxOpenConns int) int {
	return max(maxOpenConns/2, 1)
}

// LendLimit is how many requests of all tenants may be in flight before
// a tenant over its concurrency limit can no longer borrow a slot: the
// pool less a quarter of it (at least one connection), so a tenant alone
// on the process uses three quarters of the pool while the rest stays
// free for a tenant that arrives. A pool of one lends nothing.
func LendLimit(maxOpenConns int) int {
	return max(maxOpenConns-max(maxOpenConns/4, 1), 0)
}

// DefaultConcurrencyWait is tenancy.concurrency_wait when it is not set:
// long enough for a burst to be served from the queue rather than
// refused (a slot turns over in milliseconds), short enough that a tenant
// which keeps more requests in flight than its limit learns it within a
// second, with a 429 and Retry-After, instead of queueing up to its
// request deadline.
const DefaultConcurrencyWait = time.Second

// DefaultRefusalHold is tenancy.refusal_hold when it is not set: the
// shortest Retry-After a rate refusal names, so a held refusal is never
// held past the moment its answer names, and a client that ignores it
// sends at most one request a second per connection.
const DefaultRefusalHold = time.Second

// DefaultMaxHeldRefusals is tenancy.max_held_refusals when it is not set.
// A held refusal costs the sleeping goroutine of a connection that is
// open anyway and a timer, a few kilobytes: 1,024 of them are a few
// megabytes at most, and at the default hold they let through about
// 1,024 refusals a second, a tenth of bench/noisy's measured flood.
// Past it a flood from more connections gets immediate refusals again
// rather than unbounded held requests.
const DefaultMaxHeldRefusals = 1024

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
	// Access writes one line per served request at info level.
	Access bool `mapstructure:"access"`
	// SlowStatement is the duration past which a statement is logged at
	// WARN; 0 logs none as slow.
	SlowStatement time.Duration `mapstructure:"slow_statement"`
}

// Metrics configures the Prometheus metrics served at GET /metrics on
// the admin listener.
type Metrics struct {
	// TenantSeries is how many tenants (the busiest by recent traffic)
	// keep series of their own; the others are counted as tenant="other",
	// so that /metrics stays bounded at any number of tenants. 0 folds
	// every tenant into "other".
	TenantSeries int `mapstructure:"tenant_series"`
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
			RequestTimeout:    10 * time.Second,
		},
		Admin: Admin{Listen: "127.0.0.1:9000"},
		Database: Database{
			Name:            DefaultPlacement,
			Driver:          "sqlite",
			DSN:             "tenantry.db",
			MaxOpenConns:    16,
			MaxIdleConns:    16,
			ConnMaxLifetime: 30 * time.Minute,
			HomeWait:        DefaultHomeWait,
			// Above server.request_timeout: a backstop, not the bound.
			StatementTimeout: 15 * time.Second,
			LockTimeout:      5 * time.Second,
			ConnectTimeout:   30 * time.Second,
		},
		Tenancy: Tenancy{
			Strategy:         "", // derived from the driver in Load
			NegativeCacheTTL: 5 * time.Second,
			RefreshInterval:  30 * time.Second,
			// Derived from database.max_open_conns by Load when unset.
			MaxConcurrentPerTenant: DefaultMaxConcurrent(16),
			ConcurrencyWait:        DefaultConcurrencyWait,
			RefusalHold:            DefaultRefusalHold,
			MaxHeldRefusals:        DefaultMaxHeldRefusals,
		},
		Tenants: []TenantSeed{
			{Name: "localhost1", Schema: "localhost1", Hosts: []string{"localhost:5000", "127.0.0.1:5000"}},
			{Name: "localhost2", Schema: "localhost2", Hosts: []string{"localhost:8000", "127.0.0.1:8000"}},
		},
		Log:     Log{Level: "info", Format: "text", Access: true, SlowStatement: 500 * time.Millisecond},
		Metrics: Metrics{TenantSeries: 100},
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

	if err := unknownKeys(v, path); err != nil {
		return Config{}, err
	}
	if err := checkKeys(v, fromFlag); err != nil {
		return Config{}, err
	}
	var c Config
	// Exact: a misspelt field of a tenant seed (hostz:) is refused too,
	// rather than seeding a tenant without hosts.
	if err := v.UnmarshalExact(&c); err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	if c.Tenancy.Strategy == "" {
		c.Tenancy.Strategy = DefaultStrategy(c.Database.Driver)
	}
	for i := range c.Databases {
		if dsn := os.Getenv(PlacementEnv(c.Databases[i].Name)); dsn != "" {
			c.Databases[i].DSN = dsn
		}
	}
	if !v.IsSet("tenancy.max_concurrent_per_tenant") {
		c.Tenancy.MaxConcurrentPerTenant = DefaultMaxConcurrent(c.Database.MaxOpenConns)
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

// aZeroDuration is what a duration key accepts where 0 disables it.
const aZeroDuration = "a duration such as 5s or 250ms, or 0 to disable"

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
	{name: "server.request_timeout", allowed: aDuration + ", below server.write_timeout", decode: decodeAs[time.Duration]},
	{name: "admin.listen", allowed: "a host:port address, or empty to disable", emptyOK: true},
	{name: "admin.token", allowed: "any text; empty generates one per process on loopback", emptyOK: true},
	{name: "database.name", allowed: "a placement name: a lower-case letter, then up to 62 lower-case letters, digits, _ or -"},
	{name: "database.driver", allowed: strings.Join(Drivers, ", ")},
	{name: "database.dsn", allowed: "a SQLite file name or a PostgreSQL URL"},
	{name: "database.max_open_conns", allowed: "a whole number, 1 or more", decode: decodeAs[int64]},
	{name: "database.max_idle_conns", allowed: "a whole number from 0 to database.max_open_conns", decode: decodeAs[int64]},
	{name: "database.conn_max_lifetime", allowed: aDuration, decode: decodeAs[time.Duration]},
	{name: "database.pool_groups", allowed: "a whole number from 0 (automatic) to database.max_open_conns", decode: decodeAs[int64]},
	{name: "database.statement_cache_capacity", allowed: "a whole number from 0 (automatic) to 65536", decode: decodeAs[int64]},
	{name: "database.home_wait", allowed: "a duration such as 2ms, below server.request_timeout, or 0 to take any connection at once", decode: decodeAs[time.Duration]},
	{name: "database.plan_cache_mode", allowed: "auto, force_generic_plan, force_custom_plan, or empty for the server's setting", emptyOK: true},
	{name: "database.statement_timeout", allowed: aZeroDuration, decode: decodeAs[time.Duration]},
	{name: "database.lock_timeout", allowed: aZeroDuration, decode: decodeAs[time.Duration]},
	{name: "database.connect_timeout", allowed: "a duration such as 30s, or 0 to try once", decode: decodeAs[time.Duration]},
	{name: "tenancy.strategy", allowed: strings.Join(Strategies, ", ") + "; empty picks the driver's default", emptyOK: true},
	{name: "tenancy.negative_cache_ttl", allowed: aDuration, decode: decodeAs[time.Duration]},
	{name: "tenancy.refresh_interval", allowed: aDuration, decode: decodeAs[time.Duration]},
	{name: "tenancy.max_concurrent_per_tenant", allowed: "a whole number, 0 for unlimited", decode: decodeAs[int64]},
	{name: "tenancy.concurrency_wait", allowed: "a duration such as 500ms, 0 to refuse at once", decode: decodeAs[time.Duration]},
	{name: "tenancy.rate_limit", allowed: "requests per second such as 50 or 0.5, 0 for unlimited", decode: decodeAs[float64]},
	{name: "tenancy.rate_burst", allowed: "a whole number, 0 for the rate rounded up", decode: decodeAs[int64]},
	{name: "tenancy.refusal_hold", allowed: "a duration such as 1s, below server.request_timeout, or 0 to answer refusals at once", decode: decodeAs[time.Duration]},
	{name: "tenancy.max_held_refusals", allowed: "a whole number, 0 to hold none", decode: decodeAs[int64]},
	{name: "tenants", allowed: "a list of tenants in the config file; empty for none", emptyOK: true},
	{name: "databases", allowed: "a list of {name, dsn} in the config file; empty for none", emptyOK: true},
	{name: "log.level", allowed: strings.Join(LogLevels, ", ")},
	{name: "log.format", allowed: strings.Join(LogFormats, ", ")},
	{name: "log.access", allowed: "true or false", decode: decodeAs[bool]},
	{name: "log.slow_statement", allowed: "a duration such as 500ms, or 0 to log no statement as slow", decode: decodeAs[time.Duration]},
	{name: "metrics.tenant_series", allowed: "a whole number from 0 to 10000", decode: decodeAs[int64]},
	{name: "admin.metrics_token", allowed: "any text; empty: only the admin token reads /metrics", emptyOK: true},
	{name: "web.session_key", allowed: "any text; empty signs with a random key", emptyOK: true},
}

// decodeAs decodes key into a T the way Unmarshal does, hooks included,
// after refusing what Unmarshal would change without a word (see exact).
func decodeAs[T any](v *viper.Viper, key string) error {
	var x T
	if err := exact(x, v.Get(key)); err != nil {
		return err
	}
	return v.UnmarshalKey(key, &x)
}

// exact refuses a YAML number that decoding into target's type would
// silently change (found by FuzzConfigLoad): a bare number for a duration
// is read as nanoseconds (read_timeout: 5 would be 5ns, 1.5 would be 1ns,
// though TENANTRY_SERVER_READ_TIMEOUT=5 is refused for its missing unit),
// and a fraction or a number beyond int64 for a whole number is truncated
// or wrapped (max_body_bytes: 1.5 would be 1, 1e30 negative or, on some
// CPUs, the largest int64). 0 needs no unit: it means the same in any.
func exact(target, val any) error {
	if _, ok := val.(time.Duration); ok {
		return nil // a default, already exact
	}
	n := reflect.ValueOf(val)
	switch target.(type) {
	case time.Duration:
		switch {
		case n.CanInt() && n.Int() != 0, n.CanUint() && n.Uint() != 0, n.CanFloat() && n.Float() != 0:
			return fmt.Errorf("a duration needs a unit")
		}
	case int64:
		switch {
		case n.CanUint() && n.Uint() > math.MaxInt64:
			return fmt.Errorf("out of range")
		case n.CanFloat() && (n.Float() != math.Trunc(n.Float()) || n.Float() < math.MinInt64 || n.Float() >= math.MaxInt64):
			return fmt.Errorf("not a whole number in range")
		}
	}
	return nil
}

// checkKeys reports every key whose environment variable is set but empty
// where empty means nothing, and every value that does not decode. A key
// given by a flag (fromFlag) is not judged by its variable, which the flag
// overrides.
// unknownKeys refuses a key no part of tenantry reads, such as a misspelt
// `sever.listen:` or `log.levle:` in the config file: ignored, it would
// leave the default in force while the operator believes otherwise.
func unknownKeys(v *viper.Viper, path string) error {
	known := make(map[string]bool, len(keys))
	for _, k := range keys {
		known[k.name] = true
	}
	var errs []error
	for _, name := range v.AllKeys() {
		if !known[name] {
			errs = append(errs, fmt.Errorf("config: %s (in %s) is not a known key; config.yaml lists every key", name, path))
		}
	}
	slices.SortFunc(errs, func(a, b error) int { return strings.Compare(a.Error(), b.Error()) })
	return errors.Join(errs...)
}

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
	v.SetDefault("server.request_timeout", d.Server.RequestTimeout)
	v.SetDefault("admin.listen", d.Admin.Listen)
	v.SetDefault("admin.token", d.Admin.Token)
	v.SetDefault("database.name", d.Database.Name)
	v.SetDefault("database.driver", d.Database.Driver)
	v.SetDefault("database.dsn", d.Database.DSN)
	v.SetDefault("database.max_open_conns", d.Database.MaxOpenConns)
	v.SetDefault("database.max_idle_conns", d.Database.MaxIdleConns)
	v.SetDefault("database.conn_max_lifetime", d.Database.ConnMaxLifetime)
	v.SetDefault("database.pool_groups", d.Database.PoolGroups)
	v.SetDefault("database.statement_cache_capacity", d.Database.StatementCacheCapacity)
	v.SetDefault("database.home_wait", d.Database.HomeWait)
	v.SetDefault("database.plan_cache_mode", d.Database.PlanCacheMode)
	v.SetDefault("database.statement_timeout", d.Database.StatementTimeout)
	v.SetDefault("database.lock_timeout", d.Database.LockTimeout)
	v.SetDefault("database.connect_timeout", d.Database.ConnectTimeout)
	v.SetDefault("tenancy.strategy", d.Tenancy.Strategy)
	v.SetDefault("tenancy.negative_cache_ttl", d.Tenancy.NegativeCacheTTL)
	v.SetDefault("tenancy.refresh_interval", d.Tenancy.RefreshInterval)
	// tenancy.max_concurrent_per_tenant has no default here: Load derives
	// it from database.max_open_conns when nothing sets it. Binding its
	// variable makes the key known to Unmarshal all the same.
	_ = v.BindEnv("tenancy.max_concurrent_per_tenant")
	v.SetDefault("tenancy.concurrency_wait", d.Tenancy.ConcurrencyWait)
	v.SetDefault("tenancy.rate_limit", d.Tenancy.RateLimit)
	v.SetDefault("tenancy.rate_burst", d.Tenancy.RateBurst)
	v.SetDefault("tenancy.refusal_hold", d.Tenancy.RefusalHold)
	v.SetDefault("tenancy.max_held_refusals", d.Tenancy.MaxHeldRefusals)
	v.SetDefault("log.level", d.Log.Level)
	v.SetDefault("log.format", d.Log.Format)
	v.SetDefault("log.access", d.Log.Access)
	v.SetDefault("log.slow_statement", d.Log.SlowStatement)
	v.SetDefault("metrics.tenant_series", d.Metrics.TenantSeries)
	v.SetDefault("admin.metrics_token", d.Admin.MetricsToken)
	v.SetDefault("web.session_key", d.Web.SessionKey)
	seeds := make([]map[string]any, 0, len(d.Tenants))
	for _, s := range d.Tenants {
		seeds = append(seeds, map[string]any{"name": s.Name, "schema": s.Schema, "hosts": s.Hosts})
	}
	v.SetDefault("tenants", seeds)
	v.SetDefault("databases", []map[string]any{})
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
		"server.request_timeout":     c.Server.RequestTimeout,
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
	c.validateDeadlines(bad)
	oneOf("tenancy.strategy", c.Tenancy.Strategy, Strategies)
	if c.Tenancy.MaxConcurrentPerTenant < 0 {
		bad("tenancy.max_concurrent_per_tenant", c.Tenancy.MaxConcurrentPerTenant, "0 (unlimited) or more")
	}
	if c.Tenancy.ConcurrencyWait < 0 {
		bad("tenancy.concurrency_wait", c.Tenancy.ConcurrencyWait, "0 (refuse at once) or a positive duration")
	}
	if r := c.Tenancy.RateLimit; r < 0 || math.IsNaN(r) || math.IsInf(r, 0) {
		bad("tenancy.rate_limit", r, "0 (unlimited) or a positive number of requests per second")
	}
	if c.Log.SlowStatement < 0 {
		bad("log.slow_statement", c.Log.SlowStatement, "0 (none) or a positive duration")
	}
	if c.Metrics.TenantSeries < 0 || c.Metrics.TenantSeries > 10000 {
		bad("metrics.tenant_series", c.Metrics.TenantSeries, "0 to 10000")
	}
	if c.Tenancy.RateBurst < 0 {
		bad("tenancy.rate_burst", c.Tenancy.RateBurst, "0 (the rate rounded up) or more")
	}
	// A hold at or past the request's deadline would be cut short by it:
	// the deadline, not the hold, would decide when the 429 goes out.
	if h, rt := c.Tenancy.RefusalHold, c.Server.RequestTimeout; h < 0 || (rt > 0 && h >= rt) {
		bad("tenancy.refusal_hold", h, fmt.Sprintf("0 (answer refusals at once) or a duration below server.request_timeout (%v)", rt))
	}
	if c.Tenancy.MaxHeldRefusals < 0 {
		bad("tenancy.max_held_refusals", c.Tenancy.MaxHeldRefusals, "0 (hold none) or more")
	}
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
	c.validatePlacements(bad)
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

// validateDeadlines checks the request deadline against the timeouts that
// must fit inside it: the 503 of an expired request has to be written
// before server.write_timeout closes the connection, and on SQLite a
// writer waiting for another (busy_timeout) has to give up before the
// request's deadline, since that wait does not watch the deadline.
func (c Config) validateDeadlines(bad func(key string, val any, allowed string)) {
	if rt := c.Server.RequestTimeout; rt > 0 && c.Server.WriteTimeout > 0 && rt >= c.Server.WriteTimeout {
		bad("server.request_timeout", rt, fmt.Sprintf("a duration below server.write_timeout (%v)", c.Server.WriteTimeout))
	}
	for key, d := range map[string]time.Duration{
		"database.statement_timeout": c.Database.StatementTimeout,
		"database.lock_timeout":      c.Database.LockTimeout,
		"database.connect_timeout":   c.Database.ConnectTimeout,
		"database.home_wait":         c.Database.HomeWait,
	} {
		if d < 0 {
			bad(key, d, "0 or a positive duration such as 5s")
		}
	}
	if rt := c.Server.RequestTimeout; rt > 0 && c.Database.HomeWait >= rt {
		bad("database.home_wait", c.Database.HomeWait, fmt.Sprintf("a duration below server.request_timeout (%v)", rt))
	}
	if c.Database.Driver == "sqlite" && c.Server.RequestTimeout > 0 && c.Database.LockTimeout >= c.Server.RequestTimeout {
		bad("database.lock_timeout", c.Database.LockTimeout,
			fmt.Sprintf("a duration below server.request_timeout (%v) on SQLite, where it is the wait for another writer", c.Server.RequestTimeout))
	}
}

// placementName is what a placement may be called: it appears in the
// catalog, in URLs and in an environment variable's name.
var placementName = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,62}$`)

// validatePlacements checks database.name and every databases entry:
// valid, distinct names, a DSN each, and PostgreSQL, the only driver whose
// tenants live in schemas another server can hold.
func (c Config) validatePlacements(bad func(key string, val any, allowed string)) {
	const allowed = "a lower-case letter, then up to 62 lower-case letters, digits, _ or -"
	if !placementName.MatchString(c.Database.Name) {
		bad("database.name", fmt.Sprintf("%q", c.Database.Name), allowed)
	}
	if len(c.Databases) > 0 && c.Database.Driver != "postgres" {
		bad("databases", fmt.Sprintf("%d entries", len(c.Databases)), `none when database.driver is not "postgres"`)
	}
	seen := map[string]bool{c.Database.Name: true}
	for i, d := range c.Databases {
		key := fmt.Sprintf("databases[%d]", i)
		switch {
		case !placementName.MatchString(d.Name):
			bad(key+".name", fmt.Sprintf("%q", d.Name), allowed)
		case seen[d.Name]:
			bad(key+".name", fmt.Sprintf("%q", d.Name), "a name not used by database.name or another entry")
		}
		seen[d.Name] = true
		if d.DSN == "" {
			bad(key+".dsn", `""`, "a PostgreSQL URL (or "+PlacementEnv(d.Name)+")")
		}
	}
}
