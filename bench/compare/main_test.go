package main

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"tenantry/config"
)

func TestParseCounts(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []int
		ok   bool
	}{
		{"100", []int{100}, true},
		{"10000, 1,100,1000,1", []int{1, 100, 1000, 10000}, true},
		{"0", nil, false},
		{"1,,2", nil, false},
		{"ten", nil, false},
	} {
		got, err := parseCounts(c.in)
		if (err == nil) != c.ok || !slices.Equal(got, c.want) {
			t.Errorf("parseCounts(%q) = %v, %v; want %v, ok=%v", c.in, got, err, c.want, c.ok)
		}
	}
}

func TestThousands(t *testing.T) {
	for in, want := range map[int]string{0: "0", 999: "999", 1000: "1,000", 10000: "10,000", 1234567: "1,234,567", -2500: "-2,500"} {
		if got := thousands(in); got != want {
			t.Errorf("thousands(%d) = %q, want %q", in, got, want)
		}
	}
}

// TestConfigYAMLLoads: the generated configuration is one config.Load
// accepts, with the admin API on and, when this tree knows them, the
// optional pool keys set.
func TestConfigYAMLLoads(t *testing.T) {
	cases := []options{{pool: 32}}
	if hasKey(config.Database{}, "pool_groups") && hasKey(config.Database{}, "statement_cache_capacity") {
		cases = append(cases, options{pool: 32, poolGroups: 4, stmtCache: 256})
	}
	if hasKey(config.Database{}, "home_wait") {
		cases = append(cases, options{pool: 32, homeWait: "0"}, options{pool: 32, homeWait: "5ms"})
	}
	for _, o := range cases {
		path := filepath.Join(t.TempDir(), "config.yaml")
		if err := os.WriteFile(path, []byte(configYAML(o, "postgres://postgres@127.0.0.1:5432/x?sslmode=disable", "secret")), 0o600); err != nil {
			t.Fatal(err)
		}
		fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
		config.Flags(fs)
		if err := fs.Parse([]string{"--config", path}); err != nil {
			t.Fatal(err)
		}
		c, err := config.Load(fs)
		if err != nil {
			t.Fatalf("options %+v: %v", o, err)
		}
		if c.Admin.Listen != adminListen || c.Admin.Token != "secret" || c.Database.MaxOpenConns != 32 || c.Tenancy.Strategy != "schema" ||
			(o.homeWait != "" && c.Database.HomeWait.String() != mustDuration(t, o.homeWait).String()) {
			t.Errorf("options %+v: loaded admin %+v, database %+v, tenancy %+v", o, c.Admin, c.Database, c.Tenancy)
		}
	}
}

func mustDuration(t *testing.T, s string) time.Duration {
	t.Helper()
	d, err := time.ParseDuration(s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestCheckConfigKeysRefusesUnknownKeys(t *testing.T) {
	if hasKey(config.Database{}, "no_such_key") {
		t.Fatal("hasKey found a key that does not exist")
	}
	if !hasKey(config.Database{}, "max_open_conns") {
		t.Error("hasKey missed database.max_open_conns")
	}
	if err := checkConfigKeys(options{}); err != nil {
		t.Errorf("checkConfigKeys with the defaults: %v", err)
	}
}
