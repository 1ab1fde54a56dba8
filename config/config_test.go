package config_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"tenantry/config"
)

// chdir runs the test in an empty directory so a config.yaml lying around
// cannot change the result.
func chdir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	t.Chdir(dir)
	return dir
}

func TestLoadDefaults(t *testing.T) {
	chdir(t)
	c, err := config.Load(nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(c.Server.Listen, ","); got != ":5000,:8000" {
		t.Errorf("listen = %s, want :5000,:8000", got)
	}
	if c.Database.Driver != "sqlite" || c.Database.DSN != "tenantry.db" {
		t.Errorf("database = %s %s, want sqlite tenantry.db", c.Database.Driver, c.Database.DSN)
	}
	if c.Tenancy.Strategy != "prefix" {
		t.Errorf("strategy = %q, want prefix for sqlite", c.Tenancy.Strategy)
	}
	if len(c.Tenants) != 2 || c.Tenants[0].Name != "localhost1" || c.Tenants[1].Hosts[1] != "127.0.0.1:8000" {
		t.Errorf("tenants = %+v", c.Tenants)
	}
	if len(c.Server.TrustedProxies) != 0 {
		t.Errorf("trusted proxies = %v, want none", c.Server.TrustedProxies)
	}
}

// TestShippedConfigMatchesDefaults keeps the documented config.yaml and the
// built-in defaults from drifting apart.
func TestShippedConfigMatchesDefaults(t *testing.T) {
	shipped, err := filepath.Abs("../config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	chdir(t)
	def, err := config.Load(nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("TENANTRY_CONFIG", shipped)
	got, err := config.Load(nil)
	if err != nil {
		t.Fatal(err)
	}
	if !equal(def, got) {
		t.Errorf("config.yaml differs from the defaults:\n got %+v\nwant %+v", got, def)
	}
}

func equal(a, b config.Config) bool {
	return strings.TrimSpace(dump(a)) == strings.TrimSpace(dump(b))
}

func dump(c config.Config) string {
	var b strings.Builder
	b.WriteString(strings.Join(c.Server.Listen, ","))
	b.WriteString("|" + c.Database.Driver + "|" + c.Database.DSN + "|" + c.Tenancy.Strategy + "|" + c.Admin.Listen)
	b.WriteString("|" + c.Server.ShutdownTimeout.String() + "|" + c.Tenancy.NegativeCacheTTL.String())
	fmt.Fprintf(&b, "|limits %d %s %g %d", c.Tenancy.MaxConcurrentPerTenant, c.Tenancy.ConcurrencyWait, c.Tenancy.RateLimit, c.Tenancy.RateBurst)
	fmt.Fprintf(&b, "|holds %s %d", c.Tenancy.RefusalHold, c.Tenancy.MaxHeldRefusals)
	for _, t := range c.Tenants {
		b.WriteString("|" + t.Name + ":" + t.Schema + ":" + strings.Join(t.Hosts, ","))
	}
	return b.String()
}

func TestPrecedence(t *testing.T) {
	dir := chdir(t)
	file := filepath.Join(dir, "c.yaml")
	if err := os.WriteFile(file, []byte("database:\n  driver: postgres\n  dsn: postgres://file\nlog:\n  level: warn\nserver:\n  listen: [':1111']\n  shutdown_timeout: 3s\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TENANTRY_LOG_LEVEL", "error")
	t.Setenv("TENANTRY_DATABASE_DSN", "postgres://env")
	t.Setenv("TENANTRY_SERVER_LISTEN", ":2222,:3333")
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	config.Flags(fs)
	if err := fs.Parse([]string{"--config", file, "--db-dsn", "postgres://flag"}); err != nil {
		t.Fatal(err)
	}
	c, err := config.Load(fs)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, got, want string }{
		{"driver from file", c.Database.Driver, "postgres"},
		{"strategy derived from driver", c.Tenancy.Strategy, "schema"},
		{"log level: env over file", c.Log.Level, "error"},
		{"dsn: flag over env over file", c.Database.DSN, "postgres://flag"},
		{"listen: env list", strings.Join(c.Server.Listen, ","), ":2222,:3333"},
		{"duration from file", c.Server.ShutdownTimeout.String(), (3 * time.Second).String()},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, tc.got, tc.want)
		}
	}
}

func TestInvalidValuesNameTheKey(t *testing.T) {
	for _, tc := range []struct {
		env     map[string]string
		wantKey string
		want    string
	}{
		{map[string]string{"TENANTRY_DATABASE_DRIVER": "mysql"}, "database.driver", "sqlite, postgres"},
		{map[string]string{"TENANTRY_TENANCY_STRATEGY": "rows"}, "tenancy.strategy", "schema, prefix"},
		{map[string]string{"TENANTRY_TENANCY_STRATEGY": "schema"}, "tenancy.strategy", `"prefix" when database.driver is "sqlite"`},
		{map[string]string{"TENANTRY_LOG_LEVEL": "loud"}, "log.level", "debug, info, warn, error"},
		{map[string]string{"TENANTRY_LOG_FORMAT": "xml"}, "log.format", "text, json"},
		{map[string]string{"TENANTRY_SERVER_LISTEN": "5000"}, "server.listen", "host:port"},
		{map[string]string{"TENANTRY_SERVER_READ_TIMEOUT": "-1s"}, "server.read_timeout", "positive duration"},
		{map[string]string{"TENANTRY_SERVER_TRUSTED_PROXIES": "not-an-ip"}, "server.trusted_proxies", "CIDR"},
		{map[string]string{"TENANTRY_DATABASE_MAX_OPEN_CONNS": "0"}, "database.max_open_conns", "1 or more"},
		{map[string]string{"TENANTRY_ADMIN_LISTEN": "0.0.0.0:9000"}, "admin.token", "loopback"},
		{map[string]string{"TENANTRY_ADMIN_LISTEN": ":5000"}, "admin", ""},
		{map[string]string{"TENANTRY_TENANCY_MAX_CONCURRENT_PER_TENANT": "-1"}, "tenancy.max_concurrent_per_tenant", "0 (unlimited) or more"},
		{map[string]string{"TENANTRY_TENANCY_CONCURRENCY_WAIT": "-1s"}, "tenancy.concurrency_wait", "0 (refuse at once)"},
		{map[string]string{"TENANTRY_TENANCY_RATE_LIMIT": "-5"}, "tenancy.rate_limit", "0 (unlimited) or a positive number"},
		{map[string]string{"TENANTRY_TENANCY_RATE_LIMIT": "NaN"}, "tenancy.rate_limit", "0 (unlimited) or a positive number"},
		{map[string]string{"TENANTRY_TENANCY_RATE_BURST": "-1"}, "tenancy.rate_burst", "0 (the rate rounded up) or more"},
		{map[string]string{"TENANTRY_TENANCY_REFUSAL_HOLD": "-1s"}, "tenancy.refusal_hold", "0 (answer refusals at once) or a duration below server.request_timeout (10s)"},
		{map[string]string{"TENANTRY_TENANCY_REFUSAL_HOLD": "10s"}, "tenancy.refusal_hold", "below server.request_timeout (10s)"},
		{map[string]string{"TENANTRY_TENANCY_REFUSAL_HOLD": "3s", "TENANTRY_SERVER_REQUEST_TIMEOUT": "2s"}, "tenancy.refusal_hold", "below server.request_timeout (2s)"},
		{map[string]string{"TENANTRY_TENANCY_MAX_HELD_REFUSALS": "-1"}, "tenancy.max_held_refusals", "0 (hold none) or more"},
		{map[string]string{"TENANTRY_DATABASE_HOME_WAIT": "-1ms"}, "database.home_wait", "0 or a positive duration"},
		{map[string]string{"TENANTRY_DATABASE_HOME_WAIT": "10s"}, "database.home_wait", "below server.request_timeout (10s)"},
		{map[string]string{"TENANTRY_LOG_SLOW_STATEMENT": "-1s"}, "log.slow_statement", "0 (none)"},
		{map[string]string{"TENANTRY_METRICS_TENANT_SERIES": "10001"}, "metrics.tenant_series", "0 to 10000"},
	} {
		t.Run(tc.wantKey, func(t *testing.T) {
			chdir(t)
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			_, err := config.Load(nil)
			if err == nil {
				t.Fatalf("Load accepted %v", tc.env)
			}
			if !strings.Contains(err.Error(), tc.wantKey) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q should name %q and %q", err, tc.wantKey, tc.want)
			}
		})
	}
}

// TestUnknownKeysAreRefused: a misspelt key would otherwise be ignored and
// leave its default in force while the operator believes it changed.
func TestUnknownKeysAreRefused(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		want       []string
	}{
		{"top level", "sever:\n  listen: [\":5000\"]\n", []string{"sever.listen", "not a known key"}},
		{"nested", "log:\n  levle: debug\n", []string{"log.levle", "not a known key"}},
		{"two at once", "log:\n  levle: debug\ndatabase:\n  dns: x\n", []string{"log.levle", "database.dns"}},
		{"tenant seed field", "tenants:\n  - name: a\n    schema: a\n    hostz: [\"a:1\"]\n", []string{"hostz"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			chdir(t)
			if err := os.WriteFile("config.yaml", []byte(tc.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := config.Load(nil)
			if err == nil {
				t.Fatalf("Load accepted %q", tc.yaml)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q should contain %q", err, w)
				}
			}
		})
	}
}

func TestMissingConfigFileIsAnError(t *testing.T) {
	chdir(t)
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	config.Flags(fs)
	if err := fs.Parse([]string{"--config", "nope.yaml"}); err != nil {
		t.Fatal(err)
	}
	if _, err := config.Load(fs); err == nil || !strings.Contains(err.Error(), "nope.yaml") {
		t.Errorf("err = %v, want one naming nope.yaml", err)
	}
}

// TestUndecodableValuesNameTheKey: text that does not parse as the key's
// type is reported with the key, the value and what is allowed, not as the
// decoder's bare "” time: invalid duration".
func TestUndecodableValuesNameTheKey(t *testing.T) {
	for _, tc := range []struct {
		name    string
		env     map[string]string
		file    string
		wantKey string
		want    []string
	}{
		{name: "duration from env", env: map[string]string{"TENANTRY_SERVER_READ_TIMEOUT": "abc"},
			wantKey: "server.read_timeout", want: []string{`"abc"`, "a positive duration such as 5s"}},
		{name: "duration without unit", env: map[string]string{"TENANTRY_TENANCY_REFRESH_INTERVAL": "30"},
			wantKey: "tenancy.refresh_interval", want: []string{`"30"`, "such as 5s"}},
		{name: "duration from file", file: "server:\n  shutdown_timeout: soon\n",
			wantKey: "server.shutdown_timeout", want: []string{`"soon"`, "such as 5s"}},
		{name: "pool lifetime", env: map[string]string{"TENANTRY_DATABASE_CONN_MAX_LIFETIME": "1 hour"},
			wantKey: "database.conn_max_lifetime", want: []string{`"1 hour"`, "such as 5s"}},
		{name: "integer from env", env: map[string]string{"TENANTRY_DATABASE_MAX_OPEN_CONNS": "many"},
			wantKey: "database.max_open_conns", want: []string{`"many"`, "a whole number, 1 or more"}},
		{name: "integer with a fraction", env: map[string]string{"TENANTRY_DATABASE_MAX_IDLE_CONNS": "1.5"},
			wantKey: "database.max_idle_conns", want: []string{`"1.5"`, "0 to database.max_open_conns"}},
		{name: "bytes with a unit", env: map[string]string{"TENANTRY_SERVER_MAX_BODY_BYTES": "1MB"},
			wantKey: "server.max_body_bytes", want: []string{`"1MB"`, "whole number of bytes"}},
		{name: "concurrency as a word", env: map[string]string{"TENANTRY_TENANCY_MAX_CONCURRENT_PER_TENANT": "half"},
			wantKey: "tenancy.max_concurrent_per_tenant", want: []string{`"half"`, "0 for unlimited"}},
		{name: "rate with a unit", env: map[string]string{"TENANTRY_TENANCY_RATE_LIMIT": "50/s"},
			wantKey: "tenancy.rate_limit", want: []string{`"50/s"`, "requests per second"}},
		{name: "burst with a fraction", env: map[string]string{"TENANTRY_TENANCY_RATE_BURST": "2.5"},
			wantKey: "tenancy.rate_burst", want: []string{`"2.5"`, "whole number"}},
		{name: "wait without unit", env: map[string]string{"TENANTRY_TENANCY_CONCURRENCY_WAIT": "500"},
			wantKey: "tenancy.concurrency_wait", want: []string{`"500"`, "such as 500ms"}},
		{name: "hold without unit", file: "tenancy:\n  refusal_hold: 1\n",
			wantKey: "tenancy.refusal_hold", want: []string{"1", "a duration such as 1s", "0 to answer refusals at once"}},
		{name: "held refusals as a word", env: map[string]string{"TENANTRY_TENANCY_MAX_HELD_REFUSALS": "lots"},
			wantKey: "tenancy.max_held_refusals", want: []string{`"lots"`, "a whole number, 0 to hold none"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := chdir(t)
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			if tc.file != "" {
				if err := os.WriteFile(filepath.Join(dir, "config.yaml"), []byte(tc.file), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			_, err := config.Load(nil)
			if err == nil {
				t.Fatalf("Load accepted %v %q", tc.env, tc.file)
			}
			msg := err.Error()
			for _, want := range append([]string{"config: " + tc.wantKey + ": "}, tc.want...) {
				if !strings.Contains(msg, want) {
					t.Errorf("error %q does not contain %q", msg, want)
				}
			}
			if strings.Contains(msg, "''") {
				t.Errorf("error %q shows the decoder's empty key name", msg)
			}
		})
	}
}

// TestEveryUndecodableValueIsReported: an operator fixing one value at a
// time would otherwise need a run per mistake.
func TestEveryUndecodableValueIsReported(t *testing.T) {
	chdir(t)
	t.Setenv("TENANTRY_SERVER_READ_TIMEOUT", "abc")
	t.Setenv("TENANTRY_DATABASE_MAX_OPEN_CONNS", "x")
	_, err := config.Load(nil)
	if err == nil {
		t.Fatal("Load accepted two bad values")
	}
	for _, key := range []string{"server.read_timeout", "database.max_open_conns"} {
		if !strings.Contains(err.Error(), key) {
			t.Errorf("error %q does not name %s", err, key)
		}
	}
}

// TestEmptyEnvironmentVariables sets each key's variable to "" in turn.
// Where empty has a meaning (disable, none, generate, derive) it takes
// effect; everywhere else it is an error naming the key and the variable,
// never a silent fall-back to the default.
func TestEmptyEnvironmentVariables(t *testing.T) {
	accepted := map[string]func(config.Config) string{
		"server.trusted_proxies": func(c config.Config) string { return strings.Join(c.Server.TrustedProxies, ",") },
		"admin.listen":           func(c config.Config) string { return c.Admin.Listen },
		"admin.token":            func(c config.Config) string { return c.Admin.Token },
		"tenancy.strategy":       func(c config.Config) string { return c.Tenancy.Strategy },
		"tenants":                func(c config.Config) string { return fmt.Sprint(len(c.Tenants)) },
		"web.session_key":        func(c config.Config) string { return c.Web.SessionKey },
	}
	for _, tc := range []struct {
		key  string
		want string // the value accepted, or "" when Load must refuse
	}{
		{"server.listen", ""},
		{"server.trusted_proxies", ""},
		{"server.read_timeout", ""},
		{"server.read_header_timeout", ""},
		{"server.write_timeout", ""},
		{"server.idle_timeout", ""},
		{"server.shutdown_timeout", ""},
		{"server.max_body_bytes", ""},
		{"admin.listen", ""},
		{"admin.token", ""},
		{"database.driver", ""},
		{"database.dsn", ""},
		{"database.max_open_conns", ""},
		{"database.max_idle_conns", ""},
		{"database.conn_max_lifetime", ""},
		{"tenancy.strategy", "prefix"},
		{"tenancy.negative_cache_ttl", ""},
		{"tenancy.refresh_interval", ""},
		{"tenancy.max_concurrent_per_tenant", ""},
		{"tenancy.concurrency_wait", ""},
		{"tenancy.rate_limit", ""},
		{"tenancy.rate_burst", ""},
		{"tenancy.refusal_hold", ""},
		{"tenancy.max_held_refusals", ""},
		{"tenants", "0"},
		{"log.level", ""},
		{"log.format", ""},
		{"web.session_key", ""},
	} {
		t.Run(tc.key, func(t *testing.T) {
			chdir(t)
			env := "TENANTRY_" + strings.ToUpper(strings.ReplaceAll(tc.key, ".", "_"))
			t.Setenv(env, "")
			c, err := config.Load(nil)
			get, ok := accepted[tc.key]
			if !ok {
				if err == nil {
					t.Fatalf("%s= was accepted; want an error", env)
				}
				for _, want := range []string{"config: " + tc.key + ": ", env + " is set but empty", "allowed: "} {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("error %q does not contain %q", err, want)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("%s=: %v", env, err)
			}
			if got := get(c); got != tc.want {
				t.Errorf("%s=: %s = %q, want %q", env, tc.key, got, tc.want)
			}
		})
	}
}

// TestFlagOverridesEmptyVariable: a flag wins over the environment, so an
// empty variable it overrides is not an error.
func TestFlagOverridesEmptyVariable(t *testing.T) {
	chdir(t)
	t.Setenv("TENANTRY_DATABASE_DSN", "")
	t.Setenv("TENANTRY_ADMIN_LISTEN", "")
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	config.Flags(fs)
	if err := fs.Parse([]string{"--db-dsn", "other.db", "--admin-listen", "127.0.0.1:9100"}); err != nil {
		t.Fatal(err)
	}
	c, err := config.Load(fs)
	if err != nil {
		t.Fatal(err)
	}
	if c.Database.DSN != "other.db" || c.Admin.Listen != "127.0.0.1:9100" {
		t.Errorf("dsn, admin.listen = %q, %q; want the flags' other.db, 127.0.0.1:9100", c.Database.DSN, c.Admin.Listen)
	}
}

// TestTenantLimits: the per-tenant limits' defaults (the refusal hold's
// included), the concurrency limit derived from the pool unless it is set
// (0 included: unlimited), and values from a file and the environment.
func TestTenantLimits(t *testing.T) {
	for _, tc := range []struct {
		name  string
		env   map[string]string
		file  string
		want  config.Tenancy
		check func(config.Tenancy) config.Tenancy
	}{
		{name: "defaults", want: config.Tenancy{MaxConcurrentPerTenant: 8, ConcurrencyWait: time.Second, RefusalHold: time.Second, MaxHeldRefusals: 1024}},
		{name: "half of a larger pool", env: map[string]string{"TENANTRY_DATABASE_MAX_OPEN_CONNS": "40", "TENANTRY_DATABASE_MAX_IDLE_CONNS": "40"},
			want: config.Tenancy{MaxConcurrentPerTenant: 20, ConcurrencyWait: time.Second, RefusalHold: time.Second, MaxHeldRefusals: 1024}},
		{name: "never below one", env: map[string]string{"TENANTRY_DATABASE_MAX_OPEN_CONNS": "1", "TENANTRY_DATABASE_MAX_IDLE_CONNS": "1"},
			want: config.Tenancy{MaxConcurrentPerTenant: 1, ConcurrencyWait: time.Second, RefusalHold: time.Second, MaxHeldRefusals: 1024}},
		{name: "0 from the environment is unlimited", env: map[string]string{"TENANTRY_TENANCY_MAX_CONCURRENT_PER_TENANT": "0"},
			want: config.Tenancy{MaxConcurrentPerTenant: 0, ConcurrencyWait: time.Second, RefusalHold: time.Second, MaxHeldRefusals: 1024}},
		{name: "0 from a file is unlimited", file: "database:\n  max_open_conns: 64\n  max_idle_conns: 64\ntenancy:\n  max_concurrent_per_tenant: 0\n",
			want: config.Tenancy{MaxConcurrentPerTenant: 0, ConcurrencyWait: time.Second, RefusalHold: time.Second, MaxHeldRefusals: 1024}},
		{name: "every key from a file", file: "tenancy:\n  max_concurrent_per_tenant: 3\n  concurrency_wait: 250ms\n  rate_limit: 12.5\n  rate_burst: 40\n" +
			"  refusal_hold: 500ms\n  max_held_refusals: 64\n",
			want: config.Tenancy{MaxConcurrentPerTenant: 3, ConcurrencyWait: 250 * time.Millisecond, RateLimit: 12.5, RateBurst: 40,
				RefusalHold: 500 * time.Millisecond, MaxHeldRefusals: 64}},
		{name: "every key from the environment", env: map[string]string{"TENANTRY_TENANCY_MAX_CONCURRENT_PER_TENANT": "5",
			"TENANTRY_TENANCY_CONCURRENCY_WAIT": "0s", "TENANTRY_TENANCY_RATE_LIMIT": "0.5", "TENANTRY_TENANCY_RATE_BURST": "2",
			"TENANTRY_TENANCY_REFUSAL_HOLD": "9s", "TENANTRY_TENANCY_MAX_HELD_REFUSALS": "10000"},
			want: config.Tenancy{MaxConcurrentPerTenant: 5, RateLimit: 0.5, RateBurst: 2, RefusalHold: 9 * time.Second, MaxHeldRefusals: 10000}},
		{name: "holding off: 0 from a file", file: "tenancy:\n  refusal_hold: 0\n  max_held_refusals: 0\n",
			want: config.Tenancy{MaxConcurrentPerTenant: 8, ConcurrencyWait: time.Second}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := loadFrom(t, tc.env, tc.file).Tenancy
			got.Strategy, got.NegativeCacheTTL, got.RefreshInterval = "", 0, 0
			if got != tc.want {
				t.Errorf("limits = %+v, want %+v", got, tc.want)
			}
		})
	}
	if d := config.Default().Tenancy.MaxConcurrentPerTenant; d != config.DefaultMaxConcurrent(config.Default().Database.MaxOpenConns) {
		t.Errorf("Default() concurrency %d is not derived from its own pool", d)
	}
}

// TestDeadlines: the deadline keys' defaults, their empty and invalid
// values, and the limits they must keep relative to each other.
func TestDeadlines(t *testing.T) {
	t.Run("defaults", func(t *testing.T) {
		chdir(t)
		c, err := config.Load(nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			key       string
			got, want time.Duration
		}{
			{"server.request_timeout", c.Server.RequestTimeout, 10 * time.Second},
			{"database.statement_timeout", c.Database.StatementTimeout, 15 * time.Second},
			{"database.lock_timeout", c.Database.LockTimeout, 5 * time.Second},
			{"database.connect_timeout", c.Database.ConnectTimeout, 30 * time.Second},
		} {
			if tc.got != tc.want {
				t.Errorf("%s = %v, want %v", tc.key, tc.got, tc.want)
			}
		}
	})
	t.Run("zero disables", func(t *testing.T) {
		chdir(t)
		t.Setenv("TENANTRY_DATABASE_DRIVER", "postgres")
		t.Setenv("TENANTRY_DATABASE_DSN", "postgres://x")
		for _, k := range []string{"STATEMENT_TIMEOUT", "LOCK_TIMEOUT", "CONNECT_TIMEOUT"} {
			t.Setenv("TENANTRY_DATABASE_"+k, "0")
		}
		c, err := config.Load(nil)
		if err != nil {
			t.Fatal(err)
		}
		if d := c.Database; d.StatementTimeout != 0 || d.LockTimeout != 0 || d.ConnectTimeout != 0 {
			t.Errorf("timeouts = %v %v %v, want all 0", d.StatementTimeout, d.LockTimeout, d.ConnectTimeout)
		}
	})
	for _, tc := range []struct {
		name    string
		env     map[string]string
		wantKey string
		want    string
	}{
		{"request timeout empty", map[string]string{"TENANTRY_SERVER_REQUEST_TIMEOUT": ""}, "server.request_timeout", "is set but empty"},
		{"request timeout zero", map[string]string{"TENANTRY_SERVER_REQUEST_TIMEOUT": "0"}, "server.request_timeout", "positive duration"},
		{"request timeout not below write timeout", map[string]string{"TENANTRY_SERVER_REQUEST_TIMEOUT": "30s"}, "server.request_timeout", "below server.write_timeout (30s)"},
		{"statement timeout negative", map[string]string{"TENANTRY_DATABASE_STATEMENT_TIMEOUT": "-1s"}, "database.statement_timeout", "0 or a positive duration"},
		{"statement timeout undecodable", map[string]string{"TENANTRY_DATABASE_STATEMENT_TIMEOUT": "soon"}, "database.statement_timeout", "or 0 to disable"},
		{"lock timeout empty", map[string]string{"TENANTRY_DATABASE_LOCK_TIMEOUT": ""}, "database.lock_timeout", "is set but empty"},
		{"connect timeout undecodable", map[string]string{"TENANTRY_DATABASE_CONNECT_TIMEOUT": "30"}, "database.connect_timeout", "or 0 to try once"},
		{"sqlite lock timeout above the request's", map[string]string{"TENANTRY_DATABASE_LOCK_TIMEOUT": "10s"}, "database.lock_timeout", "below server.request_timeout (10s) on SQLite"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			chdir(t)
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			_, err := config.Load(nil)
			if err == nil {
				t.Fatalf("Load accepted %v", tc.env)
			}
			if !strings.Contains(err.Error(), "config: "+tc.wantKey+": ") || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q should name %q and say %q", err, tc.wantKey, tc.want)
			}
		})
	}
	t.Run("postgres lock timeout may exceed the request's", func(t *testing.T) {
		chdir(t)
		t.Setenv("TENANTRY_DATABASE_DRIVER", "postgres")
		t.Setenv("TENANTRY_DATABASE_DSN", "postgres://x")
		t.Setenv("TENANTRY_DATABASE_LOCK_TIMEOUT", "20s")
		if _, err := config.Load(nil); err != nil {
			t.Errorf("Load: %v; on PostgreSQL the request deadline cancels a lock wait itself", err)
		}
	})
}

// TestLendLimit: the work-conserving concurrency limit lends up to three
// quarters of the pool and always keeps one connection back.
func TestLendLimit(t *testing.T) {
	for _, tc := range []struct{ pool, want int }{{1, 0}, {2, 1}, {4, 3}, {16, 12}, {32, 24}, {0, 0}} {
		if got := config.LendLimit(tc.pool); got != tc.want {
			t.Errorf("LendLimit(%d) = %d, want %d", tc.pool, got, tc.want)
		}
	}
}

// database.home_wait defaults to config.DefaultHomeWait and takes 0 (any
// connection at once) from a file.
func TestHomeWait(t *testing.T) {
	for _, tc := range []struct {
		name, file string
		want       time.Duration
	}{
		{"default", "", config.DefaultHomeWait},
		{"0 from a file", "database:\n  home_wait: 0\n", 0},
		{"a duration from a file", "database:\n  home_wait: 15ms\n", 15 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := loadFrom(t, nil, tc.file).Database.HomeWait; got != tc.want {
				t.Errorf("database.home_wait = %v, want %v", got, tc.want)
			}
		})
	}
}

// loadFrom loads the configuration in a fresh directory with env set and,
// unless file is empty, file as its config.yaml.
func loadFrom(t *testing.T, env map[string]string, file string) config.Config {
	t.Helper()
	dir := chdir(t)
	for k, v := range env {
		t.Setenv(k, v)
	}
	if file != "" {
		if err := os.WriteFile(filepath.Join(dir, "config.yaml"), []byte(file), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	c, err := config.Load(nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
