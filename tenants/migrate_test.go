package tenants_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/fstest"

	"tenantry/config"
	"tenantry/internal/testenv"
	"tenantry/migrations"
	"tenantry/tenants"
)

// base is the version the embedded tenant set brings a tenant to; the
// tests provision tenants there and add a migration after it.
var base = migrations.Tenant().Latest()

// TestMigrateThousandTenants provisions 1,000 tenants, applies an ADD
// COLUMN migration to all of them, and checks that every schema got it
// exactly once and that a second run touches nothing.
func TestMigrateThousandTenants(t *testing.T) {
	const n = 1000
	f := newFleet(t, "postgres", tenants.StrategySchema)
	ctx := context.Background()
	names := f.provision(t, migrations.Tenant(), n)

	next := withMigration(t, "nickname", addNickname)
	c := f.catalog(t, next)
	var started, last int
	rep, err := c.Migrate(ctx, tenants.MigrateOptions{
		Jobs:     4,
		Start:    func(total int) { started = total },
		Progress: func(p tenants.Progress) { last = p.Done },
	})
	if err != nil {
		t.Fatalf("Migrate: %v (%+v)", err, rep.Failures)
	}
	if rep.Migrated != n || rep.UpToDate != 0 || rep.Failed != 0 || started != n || last != n {
		t.Fatalf("report %+v, Start(%d), last Done %d; want %d migrated", rep, started, last, n)
	}

	// One query each over every schema: versions, columns and records.
	var atLatest, withColumn, records int64
	tenantsTable := migrations.Quote(f.layout.SharedTable("tenants"))
	if err := f.db.Raw("SELECT count(*) FROM "+tenantsTable+" WHERE schema_version = ?", next.Latest()).Scan(&atLatest).Error; err != nil {
		t.Fatal(err)
	}
	err = f.db.Raw("SELECT count(*) FROM information_schema.columns WHERE table_name = 'users' AND column_name = 'nickname' AND table_schema LIKE 't%'").Scan(&withColumn).Error
	if err != nil {
		t.Fatal(err)
	}
	parts := make([]string, len(names))
	for i, s := range names {
		parts[i] = "SELECT version FROM " + migrations.Quote(s+".schema_migrations") + " WHERE version = " + fmt.Sprint(next.Latest())
	}
	if err := f.db.Raw("SELECT count(*) FROM (" + strings.Join(parts, " UNION ALL ") + ") AS r").Scan(&records).Error; err != nil {
		t.Fatal(err)
	}
	if atLatest != n || withColumn != n || records != n {
		t.Errorf("at latest %d, with column %d, version-%d records %d; want %d each", atLatest, withColumn, next.Latest(), records, n)
	}

	rep, err = c.Migrate(ctx, tenants.MigrateOptions{Jobs: 4})
	if err != nil || rep.Migrated != 0 || rep.UpToDate != n {
		t.Errorf("second run: %+v, %v; want all %d up to date", rep, err, n)
	}
}

// TestMigrateFailingTenant checks that a migration failing on one tenant
// rolls that tenant back whole while the others are migrated, and that a
// second run, once the cause is fixed, finishes it without touching the
// rest.
func TestMigrateFailingTenant(t *testing.T) {
	eachLayout(t, func(t *testing.T, f *fleet) {
		ctx := context.Background()
		names := f.provision(t, migrations.Tenant(), 3)
		bad := names[1]
		// Two users of one name make the unique index fail on bad
		// only, after its ADD COLUMN has already run.
		f.insertUser(t, bad, "Ann", "ann1@example.com")
		f.insertUser(t, bad, "Ann", "ann2@example.com")
		next := withMigration(t, "unique_names", addNickname+"\n"+
			`CREATE UNIQUE INDEX {{index "users_name_key"}} ON {{table "users"}} (name);`)
		c := f.catalog(t, next)

		rep, err := c.Migrate(ctx, tenants.MigrateOptions{Jobs: 2})
		if !errors.Is(err, tenants.ErrMigrateFailed) {
			t.Fatalf("Migrate error = %v, want ErrMigrateFailed", err)
		}
		if rep.Migrated != 2 || rep.Failed != 1 || len(rep.Failures) != 1 || rep.Failures[0].Tenant != bad {
			t.Fatalf("report %+v, want 2 migrated and %s failed", rep, bad)
		}
		if !strings.Contains(rep.Failures[0].Error, fmt.Sprintf("%04d_unique_names", next.Latest())) {
			t.Errorf("failure %q does not name the migration", rep.Failures[0].Error)
		}
		before := map[string][]record{}
		for _, s := range names {
			wantV, wantCol := next.Latest(), true
			if s == bad {
				wantV, wantCol = base, false
			}
			before[s] = f.records(t, s)
			if got := f.version(t, s); got != wantV {
				t.Errorf("%s: catalog version %d, want %d", s, got, wantV)
			}
			if got := len(before[s]); got != wantV {
				t.Errorf("%s: %d records, want %d", s, got, wantV)
			}
			if got := f.hasColumn(t, s, "users", "nickname"); got != wantCol {
				t.Errorf("%s: nickname column present = %v, want %v", s, got, wantCol)
			}
		}

		if err := f.db.Exec("DELETE FROM "+migrations.Quote(f.layout.Table(bad, "users"))+" WHERE email = ?", "ann2@example.com").Error; err != nil {
			t.Fatal(err)
		}
		rep, err = c.Migrate(ctx, tenants.MigrateOptions{Jobs: 2})
		if err != nil || rep.Migrated != 1 || rep.UpToDate != 2 {
			t.Fatalf("re-run: %+v, %v; want 1 migrated, 2 up to date", rep, err)
		}
		for _, s := range names {
			if got := f.version(t, s); got != next.Latest() {
				t.Errorf("%s: version %d after re-run, want %d", s, got, next.Latest())
			}
			if s != bad && !slices.Equal(f.records(t, s), before[s]) {
				t.Errorf("%s: records changed by the re-run: %v, was %v", s, f.records(t, s), before[s])
			}
		}
	})
}

// TestMigrateConcurrentRuns starts two runners, each with its own pool as
// two processes would have, on the same tenants: both succeed and every
// tenant is migrated exactly once.
func TestMigrateConcurrentRuns(t *testing.T) {
	const n = 40
	f := newFleet(t, "postgres", tenants.StrategySchema)
	names := f.provision(t, migrations.Tenant(), n)
	next := withMigration(t, "nickname", addNickname)

	reps := make([]tenants.MigrateReport, 2)
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for i := range 2 {
		db, layout, _ := openScoped(t, f.dbc, tenants.StrategySchema)
		c := tenants.NewCatalog(db, layout, testenv.Logger(t), tenants.WithMigrations(next))
		wg.Go(func() { reps[i], errs[i] = c.Migrate(context.Background(), tenants.MigrateOptions{Jobs: 3}) })
	}
	wg.Wait()
	for i := range 2 {
		if errs[i] != nil || reps[i].Failed != 0 || reps[i].Total != n {
			t.Fatalf("runner %d: %+v, %v", i, reps[i], errs[i])
		}
	}
	if got := reps[0].Migrated + reps[1].Migrated; got != n {
		t.Errorf("migrated %d + %d = %d, want %d in all", reps[0].Migrated, reps[1].Migrated, got, n)
	}
	for _, s := range names {
		if rs := f.records(t, s); len(rs) != next.Latest() || rs[len(rs)-1].Version != next.Latest() {
			t.Errorf("%s: records %v, want versions 1 to %d once each", s, rs, next.Latest())
		}
	}
}

// editedUsers is the embedded tenant set with 0001_users's text changed
// to sql in both dialects.
func editedUsers(t testing.TB, sql string) migrations.Set {
	t.Helper()
	const dir = "../migrations/sql/tenant"
	fsys := fstest.MapFS{}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		fsys["m/"+e.Name()] = &fstest.MapFile{Data: b}
	}
	fsys["m/0001_users.postgres.sql"] = &fstest.MapFile{Data: []byte(sql)}
	fsys["m/0001_users.sqlite.sql"] = &fstest.MapFile{Data: []byte(sql)}
	set, err := migrations.Load(fsys, "m")
	if err != nil {
		t.Fatal(err)
	}
	if len(set) != len(migrations.Tenant()) {
		t.Fatalf("%s holds %d migrations, the binary %d", dir, len(set), len(migrations.Tenant()))
	}
	return set
}

// driftedUsers is 0001_users with text other than the embedded file's,
// and a new migration after the embedded ones.
func driftedUsers(t testing.TB) migrations.Set {
	t.Helper()
	set, err := editedUsers(t, `CREATE TABLE {{table "users"}} (id integer PRIMARY KEY, name text, email text);`).
		Append("nickname", map[migrations.Dialect]string{migrations.Postgres: addNickname, migrations.SQLite: addNickname})
	if err != nil {
		t.Fatal(err)
	}
	return set
}

// TestMigrateChecksumDrift edits an applied migration and adds a new one:
// the run, and the dry run before it, fail with ErrChecksum instead of
// re-running the edited one or applying the new one on top of it.
func TestMigrateChecksumDrift(t *testing.T) {
	eachLayout(t, func(t *testing.T, f *fleet) {
		names := f.provision(t, migrations.Tenant(), 1)
		c := f.catalog(t, driftedUsers(t))
		for _, dry := range []bool{true, false} {
			rep, err := c.Migrate(context.Background(), tenants.MigrateOptions{DryRun: dry})
			if !errors.Is(err, migrations.ErrChecksum) || rep.Migrated != 0 || len(rep.Pending) != 0 {
				t.Fatalf("dry run %v: %+v, %v; want ErrChecksum and nothing migrated or planned", dry, rep, err)
			}
		}
		if got := f.version(t, names[0]); got != base {
			t.Errorf("version %d, want %d", got, base)
		}
	})
}

// TestMigrateChecksumDriftWithNothingPending edits an applied migration
// while every tenant is up to date, and then while one is behind: the run
// must not report "up to date", and must not apply anything to the tenant
// that is behind, which would let tenants' schemas diverge.
func TestMigrateChecksumDriftWithNothingPending(t *testing.T) {
	eachLayout(t, func(t *testing.T, f *fleet) {
		ctx := context.Background()
		f.provision(t, migrations.Tenant(), 3)
		edited := editedUsers(t, `CREATE TABLE {{table "users"}} (id integer PRIMARY KEY);`)
		for _, dry := range []bool{true, false} {
			rep, err := f.catalog(t, edited).Migrate(ctx, tenants.MigrateOptions{DryRun: dry})
			if !errors.Is(err, migrations.ErrChecksum) || rep.UpToDate != 0 {
				t.Fatalf("all up to date, dry run %v: %+v, %v; want ErrChecksum and none reported up to date", dry, rep, err)
			}
		}

		if rep, err := f.catalog(t, withMigration(t, "nickname", addNickname)).Migrate(ctx, tenants.MigrateOptions{}); err != nil {
			t.Fatalf("migrating an unchanged fleet: %+v, %v", rep, err)
		}
		if _, err := f.catalog(t, migrations.Tenant()).Create(ctx, tenants.Spec{Name: "late", Hosts: []string{"late.test"}}); err != nil {
			t.Fatal(err)
		}
		drifted := withMigration(t, "nickname", addNickname+" -- edited after it was applied")
		rep, err := f.catalog(t, drifted).Migrate(ctx, tenants.MigrateOptions{})
		if !errors.Is(err, migrations.ErrChecksum) || rep.Migrated != 0 {
			t.Fatalf("drift with one tenant behind: %+v, %v; want ErrChecksum and nothing migrated", rep, err)
		}
		if got := f.version(t, "late"); got != base {
			t.Errorf("the tenant behind was migrated to %d despite the drift, want %d", got, base)
		}
	})
}

// TestMigrateDryRun lists what would run and changes nothing.
func TestMigrateDryRun(t *testing.T) {
	eachLayout(t, func(t *testing.T, f *fleet) {
		names := f.provision(t, migrations.Tenant(), 3)
		c := f.catalog(t, withMigration(t, "nickname", addNickname))
		rep, err := c.Migrate(context.Background(), tenants.MigrateOptions{DryRun: true})
		if err != nil {
			t.Fatal(err)
		}
		var want []tenants.TenantPlan
		for _, s := range names {
			want = append(want, tenants.TenantPlan{Tenant: s, Database: config.DefaultPlacement, From: base, To: base + 1, Migrations: []string{fmt.Sprintf("%04d_nickname", base+1)}})
		}
		if rep.Migrated != 0 || fmt.Sprint(rep.Pending) != fmt.Sprint(want) {
			t.Errorf("dry run: %+v, want pending %v", rep, want)
		}
		for _, s := range names {
			if f.version(t, s) != base || len(f.records(t, s)) != base || f.hasColumn(t, s, "users", "nickname") {
				t.Errorf("%s changed by a dry run", s)
			}
		}
	})
}

// TestMigrateSelection covers --tenant, tenants newer than the binary,
// and what MigrationStatus reports before and after.
func TestMigrateSelection(t *testing.T) {
	f := newFleet(t, "sqlite", tenants.StrategyPrefix)
	ctx := context.Background()
	names := f.provision(t, migrations.Tenant(), 3)
	c := f.catalog(t, withMigration(t, "nickname", addNickname))

	st, err := c.MigrationStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Latest != base+1 || st.Behind != 3 || st.UpToDate != 0 || len(st.Tenants) != 3 || st.Tenants[0].Pending != 1 || st.Shared != migrations.Shared().Latest() {
		t.Errorf("status before: %+v", st)
	}

	if _, err := c.Migrate(ctx, tenants.MigrateOptions{Tenant: "nobody"}); !errors.Is(err, tenants.ErrNotFound) {
		t.Errorf("unknown tenant: %v, want ErrNotFound", err)
	}
	rep, err := c.Migrate(ctx, tenants.MigrateOptions{Tenant: names[0]})
	if err != nil || rep.Total != 1 || rep.Migrated != 1 {
		t.Fatalf("one tenant: %+v, %v", rep, err)
	}
	if f.version(t, names[0]) != base+1 || f.version(t, names[1]) != base {
		t.Errorf("--tenant %s migrated others too", names[0])
	}

	// A binary that knows only the embedded set must not touch a tenant
	// at the version after it.
	rep, err = f.catalog(t, migrations.Tenant()).Migrate(ctx, tenants.MigrateOptions{})
	if !errors.Is(err, tenants.ErrMigrateFailed) || rep.Failed != 1 || !errors.Is(rep.Failures[0].Err, migrations.ErrUnknownVersion) {
		t.Errorf("old binary: %+v, %v; want %s failed as unknown version", rep, err, names[0])
	}

	st, err = c.MigrationStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []tenants.TenantVersion{
		{Name: names[0], Schema: names[0], Database: config.DefaultPlacement, Status: tenants.StatusActive, Version: base + 1, Pending: 0},
		{Name: names[1], Schema: names[1], Database: config.DefaultPlacement, Status: tenants.StatusActive, Version: base, Pending: 1},
		{Name: names[2], Schema: names[2], Database: config.DefaultPlacement, Status: tenants.StatusActive, Version: base, Pending: 1},
	}
	if !slices.Equal(st.Tenants, want) || st.Behind != 2 || st.UpToDate != 1 {
		t.Errorf("status after: %+v, want tenants %+v", st, want)
	}
}
