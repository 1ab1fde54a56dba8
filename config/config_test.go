package config_test

import (
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
