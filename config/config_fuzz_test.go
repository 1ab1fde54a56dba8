package config_test

import (
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"tenantry/config"
)

// configVariants are seeds beside the shipped config.yaml: values of the
// wrong type or shape, numbers out of range, YAML's special floats, and
// YAML features (aliases, tags, documents) a hand-written file may carry.
var configVariants = []string{
	"",
	"{}",
	"[]",
	"null",
	"server: 5",
	"server: [1, 2]",
	"server:\n  listen: \":5000\"",
	"server:\n  listen: [\":5000\", \":5000\"]",
	"server:\n  listen: []",
	"server:\n  read_timeout: -5s",
	"server:\n  read_timeout: 0",
	"server:\n  read_timeout: 5",
	"server:\n  read_timeout: 1.5",
	"server:\n  read_timeout: 1e30",
	"server:\n  read_timeout: 9223372036854775807",
	"server:\n  read_timeout: 9223372036854775808",
	"server:\n  read_timeout: 2562048h",
	"server:\n  read_timeout: 1ns",
	"server:\n  read_timeout: [5s]",
	"server:\n  read_timeout: {a: 1}",
	"server:\n  read_timeout: .nan",
	"server:\n  max_body_bytes: 1e30",
	"server:\n  max_body_bytes: -1",
	"server:\n  max_body_bytes: 0x10",
	"server:\n  max_body_bytes: 1_000",
	"server:\n  max_body_bytes: .inf",
	"server:\n  max_body_bytes: 1.5",
	"server:\n  trusted_proxies: [\"10.0.0.0/8\", \"::1\", \"bogus\"]",
	"admin:\n  listen: \"0.0.0.0:9000\"",
	"admin:\n  listen: \":5000\"\nserver:\n  listen: [\":5000\"]",
	"database:\n  driver: postgres\n  dsn: \"\"",
	"database:\n  max_open_conns: 0",
	"database:\n  max_open_conns: 1e20",
	"database:\n  max_open_conns: -9223372036854775808",
	"database:\n  max_idle_conns: 17",
	"database:\n  pool_groups: 99",
	"database:\n  statement_cache_capacity: 70000",
	"database:\n  plan_cache_mode: always",
	"tenancy:\n  strategy: schema",
	"tenancy:\n  negative_cache_ttl: .inf",
	"tenancy:\n  rate_limit: .nan",
	"tenancy:\n  rate_limit: .inf",
	"tenancy:\n  rate_limit: -1",
	"tenancy:\n  max_concurrent_per_tenant: -1",
	"tenants: 5",
	"tenants: [5]",
	"tenants: [{}]",
	"tenants: [{name: a, hosts: []}]",
	"tenants: [{name: a, hosts: \"a.test\"}]",
	"tenants:\n  - name: a\n    hosts: [a.test]\n    extra: 1",
	"tenants: &a [*a]",
	"x: &a [a, a, a]\ny: &b [*a, *a, *a]\nz: &c [*b, *b, *b]\nw: [*c, *c, *c]",
	"log:\n  level: !!binary aW5mbw==",
	"log: {level: INFO, format: JSON}",
	"log:\n\tlevel: info",
	"--- \nlog: {level: info}\n---\nlog: {level: chatty}",
	"server:\n  listen: [\":5000\"]\nserver:\n  listen: [\":6000\"]",
	"\xff\xfe",
	"a: \x00",
}

// FuzzConfigLoad writes any bytes as a config file and loads it: Load
// never panics, refuses with an error that says it is the configuration's,
// or returns a Config that passes its own Validate with every number in
// range: no negative duration, count or size, no NaN or infinite rate.
func FuzzConfigLoad(f *testing.F) {
	shipped, err := os.ReadFile("../config.yaml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(shipped)
	for _, v := range configVariants {
		f.Add([]byte(v))
		// The same over the shipped file: later keys win.
		f.Add(append(append([]byte{}, shipped...), "\n"+v...))
	}
	// One file per fuzzing process, rewritten for each input: the fuzz
	// function never runs concurrently within a process.
	path := filepath.Join(f.TempDir(), "config.yaml")
	f.Fuzz(func(t *testing.T, yaml []byte) {
		c, err := loadYAML(t, path, string(yaml))
		if err != nil {
			if !strings.HasPrefix(err.Error(), "config: ") {
				t.Fatalf("Load error %q does not say it is about the configuration", err)
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("Load returned a Config its own Validate refuses: %v", err)
		}
		if c.Tenancy.Strategy == "" {
			t.Fatalf("Load left tenancy.strategy empty")
		}
		checkInRange(t, "", reflect.ValueOf(c))
	})
}

// checkInRange fails t for any negative duration or number, or NaN or
// infinite float, anywhere in v: every such key of Config is a timeout, a
// size, a count or a rate. It walks the struct rather than naming fields
// so that keys added later are covered too.
func checkInRange(t *testing.T, key string, v reflect.Value) {
	t.Helper()
	switch v.Kind() {
	case reflect.Struct:
		for i := range v.NumField() {
			name := v.Type().Field(i).Tag.Get("mapstructure")
			if name == "" {
				name = v.Type().Field(i).Name
			}
			if key != "" {
				name = key + "." + name
			}
			checkInRange(t, name, v.Field(i))
		}
	case reflect.Slice:
		for i := range v.Len() {
			checkInRange(t, key, v.Index(i))
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if v.Int() < 0 {
			if v.Type() == reflect.TypeFor[time.Duration]() {
				t.Fatalf("%s: negative duration %v passed Validate", key, time.Duration(v.Int()))
			}
			t.Fatalf("%s: negative %d passed Validate", key, v.Int())
		}
	case reflect.Float32, reflect.Float64:
		if f := v.Float(); f < 0 || math.IsNaN(f) || math.IsInf(f, 0) {
			t.Fatalf("%s: %v passed Validate", key, f)
		}
	}
}

// loadYAML loads yaml as the config file, as FuzzConfigLoad does.
func loadYAML(t *testing.T, path string, yaml string) (config.Config, error) {
	t.Helper()
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	config.Flags(fs)
	if err := fs.Parse([]string{"--config", path}); err != nil {
		t.Fatal(err)
	}
	return config.Load(fs)
}

// TestLoadRefusesNumbersItWouldChange holds what the fuzz seeds showed: a
// YAML number that decoding would silently turn into another value is
// refused, naming the key; numbers that decode exactly still load.
func TestLoadRefusesNumbersItWouldChange(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.yaml")
	for _, tc := range []struct {
		yaml string
		want string // the error names this; "" when it loads
		ok   func(config.Config) bool
	}{
		// Bare numbers were nanoseconds: 5 loaded as 5ns, 1.5 as 1ns.
		{"server:\n  read_timeout: 5", `server.read_timeout: 5 is not allowed (allowed: a positive duration such as 5s, 1m30s or 250ms): a duration needs a unit`, nil},
		{"server:\n  read_timeout: 1.5", "server.read_timeout: 1.5 is not allowed", nil},
		{"server:\n  read_timeout: 9223372036854775807", "server.read_timeout: 9223372036854775807 is not allowed", nil},
		{"tenancy:\n  negative_cache_ttl: 1e3", "tenancy.negative_cache_ttl: 1000 is not allowed", nil},
		// Fractions were truncated, numbers past int64 wrapped.
		{"server:\n  max_body_bytes: 1.5", "server.max_body_bytes: 1.5 is not allowed (allowed: a positive whole number of bytes such as 1048576): not a whole number in range", nil},
		{"server:\n  max_body_bytes: 1e30", "server.max_body_bytes: 1e+30 is not allowed", nil},
		{"server:\n  max_body_bytes: .inf", "server.max_body_bytes: +Inf is not allowed", nil},
		{"server:\n  max_body_bytes: .nan", "server.max_body_bytes: NaN is not allowed", nil},
		{"server:\n  max_body_bytes: 9223372036854775808", "server.max_body_bytes: 9223372036854775808 is not allowed (allowed: a positive whole number of bytes such as 1048576): out of range", nil},
		{"database:\n  max_open_conns: 1e20", "database.max_open_conns: 1e+20 is not allowed", nil},
		// What decodes exactly still loads.
		{"server:\n  read_timeout: 1m30s", "", func(c config.Config) bool { return c.Server.ReadTimeout == 90*time.Second }},
		{"server:\n  max_body_bytes: 1e6", "", func(c config.Config) bool { return c.Server.MaxBodyBytes == 1_000_000 }},
		{"server:\n  max_body_bytes: 2048", "", func(c config.Config) bool { return c.Server.MaxBodyBytes == 2048 }},
		{"server:\n  max_body_bytes: \"4096\"", "", func(c config.Config) bool { return c.Server.MaxBodyBytes == 4096 }},
		{"database:\n  max_open_conns: 4.0\n  max_idle_conns: 4", "", func(c config.Config) bool { return c.Database.MaxOpenConns == 4 }},
		{"database:\n  pool_groups: 0", "", func(c config.Config) bool { return c.Database.PoolGroups == 0 }},
	} {
		c, err := loadYAML(t, path, tc.yaml)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%q: %v, want it loaded", tc.yaml, err)
		case tc.want == "" && !tc.ok(c):
			t.Errorf("%q: loaded as %+v", tc.yaml, c)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%q: err = %v, want one containing %q", tc.yaml, err, tc.want)
		}
	}
}
