package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"tenantry/config"
	"tenantry/database"
	"tenantry/internal/testenv"
	"tenantry/tenants"
)

// cli runs the tenantry command line in-process on dbc, as an operator
// would with --db-driver and --db-dsn, and returns what it printed.
func cli(t *testing.T, dbc config.Database, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	// No configured tenants and no admin listener: only what the test
	// creates exists, and nothing listens.
	cfg := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(cfg, []byte("tenants: []\nadmin:\n  listen: \"\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	root := newRoot(&out, &errOut)
	root.SetArgs(append([]string{"--config", cfg, "--db-driver", dbc.Driver, "--db-dsn", dbc.DSN}, args...))
	err = root.ExecuteContext(context.Background())
	return out.String(), errOut.String(), err
}

// mustCLI is cli for commands that must succeed.
func mustCLI(t *testing.T, dbc config.Database, args ...string) string {
	t.Helper()
	out, errOut, err := cli(t, dbc, args...)
	if err != nil {
		t.Fatalf("tenantry %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, out, errOut)
	}
	return out
}

// legacyTenant adds a catalog row at version 0, as a binary from before
// the first tenant migration would have left it. With brokenUsers its
// storage already holds a users table, so migrating it fails.
func legacyTenant(t *testing.T, dbc config.Database, name string, brokenUsers bool) {
	t.Helper()
	db, _, err := database.Open(context.Background(), dbc, testenv.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer database.Close(db)
	now := time.Now().UTC()
	stmts := []string{"INSERT INTO tenants (name, schema, status, schema_version, created_at, updated_at) VALUES (?, ?, 'active', 0, ?, ?)"}
	users := name + "_users"
	if dbc.Driver == "postgres" {
		stmts = append(stmts, "CREATE SCHEMA "+name)
		users = name + ".users"
	}
	if brokenUsers {
		stmts = append(stmts, "CREATE TABLE "+users+" (id integer)")
	}
	for i, q := range stmts {
		var args []any
		if i == 0 {
			args = []any{name, name, now, now}
		}
		if err := db.Exec(q, args...).Error; err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

// TestCLI drives the migrate and tenants commands end to end on each
// database: status, dry run, a run with a failing tenant, and the whole
// offboarding cycle including re-creating a removed tenant.
func TestCLI(t *testing.T) {
	for _, driver := range testenv.Drivers {
		t.Run(driver, func(t *testing.T) {
			t.Parallel()
			dbc := testenv.Database(t, driver)
			mustCLI(t, dbc, "tenants", "add", "--name", "acme", "--host", "acme.test")
			mustCLI(t, dbc, "tenants", "add", "--name", "bolt", "--host", "bolt.test:8080")
			legacyTenant(t, dbc, "old", false)

			status := mustCLI(t, dbc, "migrate", "status")
			for _, want := range []string{
				`(?m)^old\s+old\s+active\s+0\s+1$`,
				`(?m)^acme\s+acme\s+active\s+1\s+0$`,
				`code version 1 \(shared 1 of 1\): 3 tenants, 2 up to date, 1 behind, 0 ahead`,
			} {
				if !regexp.MustCompile(want).MatchString(status) {
					t.Errorf("migrate status: no match for %s in\n%s", want, status)
				}
			}
			if out := mustCLI(t, dbc, "migrate", "status", "--behind"); strings.Contains(out, "acme") || !strings.Contains(out, "old") {
				t.Errorf("migrate status --behind:\n%s", out)
			}

			dry := mustCLI(t, dbc, "migrate", "--dry-run")
			if !strings.Contains(dry, "dry run: 1 of 3 tenants would be migrated to version 1; 2 up to date") ||
				!regexp.MustCompile(`old\s+0 → 1\s+0001_users`).MatchString(dry) {
				t.Errorf("migrate --dry-run:\n%s", dry)
			}
			if after := mustCLI(t, dbc, "migrate", "status"); after != status {
				t.Errorf("dry run changed the status:\n%s\nwas:\n%s", after, status)
			}

			legacyTenant(t, dbc, "broken", true)
			out, errOut, err := cli(t, dbc, "migrate", "--jobs", "2")
			if err == nil || !strings.Contains(err.Error(), "1 of 4 tenants") {
				t.Errorf("migrate with a broken tenant: err = %v, want 1 of 4 failed", err)
			}
			if !strings.Contains(out, "4 tenants: 1 migrated to version 1, 2 up to date, 1 failed") ||
				!regexp.MustCompile(`(?m)^  broken: .*0001_users`).MatchString(out) {
				t.Errorf("migrate report:\n%s", out)
			}
			if !strings.Contains(errOut, "migrate progress") {
				t.Errorf("no progress lines on a non-terminal stderr:\n%s", errOut)
			}
			var st tenants.StatusReport
			if err := json.Unmarshal([]byte(mustCLI(t, dbc, "migrate", "status", "--json")), &st); err != nil {
				t.Fatal(err)
			}
			if st.Behind != 1 || st.UpToDate != 3 {
				t.Errorf("status after the run: %+v, want only broken behind", st)
			}
			if _, _, err := cli(t, dbc, "migrate", "--tenant", "nobody"); err == nil || !strings.Contains(err.Error(), "tenant not found") {
				t.Errorf("migrate --tenant nobody: %v", err)
			}

			for _, step := range []struct {
				args []string
				want string
			}{
				{[]string{"tenants", "suspend", "acme"}, "suspended"},
				{[]string{"tenants", "resume", "acme"}, "active"},
				{[]string{"tenants", "remove", "acme"}, "removed acme; data kept as archived_"},
				{[]string{"tenants", "add", "--name", "acme", "--host", "acme.test"}, "acme"},
				{[]string{"tenants", "remove", "--drop-data", "bolt"}, "removed bolt and dropped its data"},
			} {
				if out := mustCLI(t, dbc, step.args...); !strings.Contains(out, step.want) {
					t.Errorf("tenantry %s: %q not in\n%s", strings.Join(step.args, " "), step.want, out)
				}
			}
			var list []struct{ Name, Status string }
			if err := json.Unmarshal([]byte(mustCLI(t, dbc, "tenants", "list", "--json")), &list); err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, l := range list {
				names = append(names, l.Name+"="+l.Status)
			}
			if got := strings.Join(names, ","); got != "acme=active,broken=active,old=active" {
				t.Errorf("tenants list = %s", got)
			}
			if _, _, err := cli(t, dbc, "tenants", "suspend", "bolt"); err == nil || !strings.Contains(err.Error(), "tenant not found") {
				t.Errorf("suspend a removed tenant: %v", err)
			}
		})
	}
}
