package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
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
				`(?m)^old\s+old\s+active\s+0\s+2$`,
				`(?m)^acme\s+acme\s+active\s+2\s+0$`,
				`code version 2 \(shared 4 of 4\): 3 tenants, 2 up to date, 1 behind, 0 ahead`,
			} {
				if !regexp.MustCompile(want).MatchString(status) {
					t.Errorf("migrate status: no match for %s in\n%s", want, status)
				}
			}
			if out := mustCLI(t, dbc, "migrate", "status", "--behind"); strings.Contains(out, "acme") || !strings.Contains(out, "old") {
				t.Errorf("migrate status --behind:\n%s", out)
			}

			dry := mustCLI(t, dbc, "migrate", "--dry-run")
			if !strings.Contains(dry, "dry run: 1 of 3 tenants would be migrated to version 2; 2 up to date") ||
				!regexp.MustCompile(`old\s+0 → 2\s+0001_users, 0002_idempotency_keys`).MatchString(dry) {
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
			if !strings.Contains(out, "4 tenants: 1 migrated to version 2, 2 up to date, 1 failed") ||
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
			if _, _, err := cli(t, dbc, "migrate", "--tenant", "nobody"); !errors.Is(err, tenants.ErrNotFound) {
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
			if _, _, err := cli(t, dbc, "tenants", "suspend", "bolt"); !errors.Is(err, tenants.ErrNotFound) {
				t.Errorf("suspend a removed tenant: %v", err)
			}
		})
	}
}

// dbObjects lists every table the database holds (schema-qualified on
// PostgreSQL, where it also lists every schema besides public), and counts
// the shared schema_migrations rows when that table exists.
func dbObjects(t *testing.T, dbc config.Database) (objects []string, sharedRecords int) {
	t.Helper()
	db, _, err := database.Open(context.Background(), dbc, testenv.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer database.Close(db)
	q := "SELECT type || ' ' || name FROM sqlite_master ORDER BY 1"
	records := "schema_migrations"
	if dbc.Driver == "postgres" {
		q = `SELECT 'table ' || table_schema || '.' || table_name FROM information_schema.tables
			WHERE table_schema NOT IN ('pg_catalog', 'information_schema')
			UNION ALL SELECT 'schema ' || nspname FROM pg_namespace
			WHERE nspname NOT IN ('public', 'information_schema') AND nspname NOT LIKE 'pg\_%' ORDER BY 1`
		records = "public.schema_migrations"
	}
	if err := db.Raw(q).Scan(&objects).Error; err != nil {
		t.Fatal(err)
	}
	var n []int
	for _, o := range objects {
		if strings.HasSuffix(o, " "+records) {
			if err := db.Raw("SELECT count(*) FROM " + records).Scan(&n).Error; err != nil {
				t.Fatal(err)
			}
			return objects, n[0]
		}
	}
	return objects, 0
}

// TestReadOnlyMigrateCommands: migrate --dry-run and migrate status only
// look. On a fresh database they report the pending shared migrations and
// that there are no tenants yet, and leave no table, schema or record
// behind; after a real migrate they report the shared schema up to date;
// and with a shared migration pending under an existing catalog, the dry
// run lists it instead of applying it.
func TestReadOnlyMigrateCommands(t *testing.T) {
	for _, tc := range []struct {
		name, driver string
		args         []string
	}{
		{"sqlite", "sqlite", nil},
		{"postgres schema", "postgres", nil},
		// Bootstrap would also create the tenantry_tenants schema here.
		{"postgres prefix", "postgres", []string{"--strategy", "prefix"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dbc := testenv.Database(t, tc.driver)
			run := func(args ...string) string { t.Helper(); return mustCLI(t, dbc, append(tc.args, args...)...) }
			before, _ := dbObjects(t, dbc)

			const fresh = "shared: version 0 of 4, pending: 0001_catalog, 0002_tenant_limits, 0003_tenant_removal, 0004_placements; no tenants yet"
			for _, c := range []struct {
				args []string
				want string
			}{
				{[]string{"migrate", "--dry-run"}, "dry run: " + fresh + "\n"},
				{[]string{"migrate", "status"}, fresh + "\n"},
				{[]string{"migrate", "status", "--behind"}, fresh + "\n"},
			} {
				if got := run(c.args...); got != c.want {
					t.Errorf("tenantry %s on a fresh database:\n got %q\nwant %q", strings.Join(c.args, " "), got, c.want)
				}
			}
			var dry struct {
				Shared struct {
					Version, Latest int
					Pending         []string
					Catalog         bool
				}
				Total int
			}
			if err := json.Unmarshal([]byte(run("migrate", "--dry-run", "--json")), &dry); err != nil {
				t.Fatal(err)
			}
			if dry.Shared.Version != 0 || dry.Shared.Latest != 4 || strings.Join(dry.Shared.Pending, ",") != "0001_catalog,0002_tenant_limits,0003_tenant_removal,0004_placements" || dry.Shared.Catalog || dry.Total != 0 {
				t.Errorf("migrate --dry-run --json on a fresh database: %+v", dry)
			}
			var st struct {
				Shared        int
				SharedLatest  int      `json:"shared_latest"`
				SharedPending []string `json:"shared_pending"`
				Catalog       bool
				Tenants       []any
			}
			if err := json.Unmarshal([]byte(run("migrate", "status", "--json")), &st); err != nil {
				t.Fatal(err)
			}
			if st.Shared != 0 || st.SharedLatest != 4 || strings.Join(st.SharedPending, ",") != "0001_catalog,0002_tenant_limits,0003_tenant_removal,0004_placements" || st.Catalog || st.Tenants == nil || len(st.Tenants) != 0 {
				t.Errorf("migrate status --json on a fresh database: %+v", st)
			}
			if _, _, err := cli(t, dbc, append(tc.args, "migrate", "--dry-run", "--tenant", "acme")...); !errors.Is(err, tenants.ErrNotFound) {
				t.Errorf("migrate --dry-run --tenant acme on a fresh database: err = %v, want tenant not found", err)
			}
			if after, records := dbObjects(t, dbc); strings.Join(after, ",") != strings.Join(before, ",") || records != 0 {
				t.Fatalf("the read-only commands changed the database: %v (%d shared records), was %v", after, records, before)
			}

			run("migrate")
			if _, records := dbObjects(t, dbc); records != 4 {
				t.Errorf("after migrate: %d shared records, want 4", records)
			}
			if got, want := run("migrate", "status"), "code version 2 (shared 4 of 4): 0 tenants"; !strings.Contains(got, want) || strings.Contains(got, "pending") {
				t.Errorf("migrate status after migrate: %q does not show %q alone", got, want)
			}
			run("tenants", "add", "--name", "acme", "--host", "acme.test")
			if got, want := run("migrate", "--dry-run"), "dry run: shared: version 4 of 4, up to date\n"+
				"dry run: 0 of 1 tenants would be migrated to version 2; 1 up to date\n"; got != want {
				t.Errorf("migrate --dry-run after migrate:\n got %q\nwant %q", got, want)
			}

			// A shared migration pending under an existing catalog, as after
			// upgrading to a binary with a new one: forget 0001's record.
			forgetSharedRecords(t, dbc)
			if got, want := run("migrate", "--dry-run"), "dry run: shared: version 0 of 4, pending: 0001_catalog, 0002_tenant_limits, 0003_tenant_removal, 0004_placements\n"; !strings.HasPrefix(got, want) ||
				!strings.Contains(got, "1 up to date") {
				t.Errorf("migrate --dry-run with a shared migration pending:\n got %q\nwant it to start %q and list acme up to date", got, want)
			}
			status := run("migrate", "status")
			for _, want := range []string{`(?m)^acme\s+acme\s+active\s+2\s+0$`, `(?m)^code version 2 \(shared 0 of 4\)`, `(?m)^shared: version 0 of 4, pending: 0001_catalog, 0002_tenant_limits, 0003_tenant_removal, 0004_placements$`} {
				if !regexp.MustCompile(want).MatchString(status) {
					t.Errorf("migrate status with a shared migration pending: no match for %s in\n%s", want, status)
				}
			}
			if _, records := dbObjects(t, dbc); records != 0 {
				t.Errorf("the dry run applied the pending shared migration: %d records", records)
			}
		})
	}
}

func forgetSharedRecords(t *testing.T, dbc config.Database) {
	t.Helper()
	db, _, err := database.Open(context.Background(), dbc, testenv.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer database.Close(db)
	table := "schema_migrations"
	if dbc.Driver == "postgres" {
		table = "public.schema_migrations"
	}
	if err := db.Exec("DELETE FROM " + table).Error; err != nil {
		t.Fatal(err)
	}
}
