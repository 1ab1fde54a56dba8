package config_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"tenantry/config"
)

// TestPlacements: the databases list from the file, its DSNs from the
// environment, and the names and drivers it refuses.
func TestPlacements(t *testing.T) {
	const pg = "database:\n  driver: postgres\n  dsn: postgres://a/main\n"
	for _, tc := range []struct {
		name    string
		file    string
		env     map[string]string
		want    []config.Placement
		control string
		wantErr string
	}{
		{name: "none by default", control: "main"},
		{name: "from the file", file: pg + "databases:\n  - {name: b, dsn: postgres://b/x}\n  - {name: c-2, dsn: postgres://c/x}\n",
			want: []config.Placement{{Name: "b", DSN: "postgres://b/x"}, {Name: "c-2", DSN: "postgres://c/x"}}, control: "main"},
		{name: "DSN from the environment", file: pg + "databases:\n  - {name: c-2, dsn: postgres://c/x}\n",
			env:  map[string]string{"TENANTRY_DATABASES_C_2_DSN": "postgres://secret@c/x"},
			want: []config.Placement{{Name: "c-2", DSN: "postgres://secret@c/x"}}, control: "main"},
		{name: "DSN only in the environment", file: pg + "databases:\n  - {name: b}\n",
			env:  map[string]string{"TENANTRY_DATABASES_B_DSN": "postgres://b/x"},
			want: []config.Placement{{Name: "b", DSN: "postgres://b/x"}}, control: "main"},
		{name: "control renamed", file: pg + "  name: primary\ndatabases:\n  - {name: main, dsn: postgres://b/x}\n",
			want: []config.Placement{{Name: "main", DSN: "postgres://b/x"}}, control: "primary"},
		{name: "missing DSN", file: pg + "databases:\n  - {name: b}\n", wantErr: "databases[0].dsn"},
		{name: "name of the control database", file: pg + "databases:\n  - {name: main, dsn: postgres://b/x}\n", wantErr: "databases[0].name"},
		{name: "duplicate", file: pg + "databases:\n  - {name: b, dsn: postgres://b/x}\n  - {name: b, dsn: postgres://c/x}\n", wantErr: "databases[1].name"},
		{name: "upper case", file: pg + "databases:\n  - {name: B, dsn: postgres://b/x}\n", wantErr: "databases[0].name"},
		{name: "bad control name", file: pg + "  name: \"1st\"\n", wantErr: "database.name"},
		{name: "SQLite has no placements", file: "databases:\n  - {name: b, dsn: postgres://b/x}\n", wantErr: "databases:"},
		{name: "misspelt field", file: pg + "databases:\n  - {name: b, dns: postgres://b/x}\n", wantErr: "dns"},
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
			c, err := config.Load(nil)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Load: %v, want an error naming %s", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(c.Databases, tc.want) || c.Database.Name != tc.control {
				t.Errorf("databases %+v (control %q), want %+v (control %q)", c.Databases, c.Database.Name, tc.want, tc.control)
			}
			if got := c.Placements(); len(got) != 1+len(tc.want) || got[0].Name != tc.control {
				t.Errorf("Placements() = %+v", got)
			}
		})
	}
}
