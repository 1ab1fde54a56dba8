package tenants_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"

	"tenantry/config"
	"tenantry/database"
	"tenantry/internal/testenv"
	"tenantry/migrations"
	"tenantry/tenants"
)

// spread is a control database on the shared server and two placements,
// "east" and "west", each a database of its own on a private cluster, with
// tenants on all three.
type spread struct {
	// fleet gives the control database and layout, and with them the
	// catalog and each tenant's recorded version.
	fleet
	// on maps each tenant to its placement, "" for the control database.
	on map[string]string
}

// placementDB creates a database of its own on cluster and returns its URL.
func placementDB(t *testing.T, cluster *testenv.Cluster) string {
	t.Helper()
	admin, err := sql.Open("pgx", cluster.DSN())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	name := strings.ReplaceAll(testenv.Unique("place"), "-", "_")
	if _, err := admin.Exec("CREATE DATABASE " + name); err != nil {
		t.Fatalf("create database on cluster %d: %v", cluster.Port(), err)
	}
	u, err := url.Parse(cluster.DSN())
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	return u.String()
}

// newSpread opens a pool over a fresh control database and a fresh
// database on each cluster, as app.Open does with config databases, and
// creates perDB tenants on each: m0…, e0…, w0….
func newSpread(t *testing.T, east, west *testenv.Cluster, perDB int) *spread {
	t.Helper()
	ctx := context.Background()
	dbc := testenv.Postgres(t)
	dbc.MaxOpenConns, dbc.MaxIdleConns = 8, 8
	places := []config.Placement{{Name: "east", DSN: placementDB(t, east)}, {Name: "west", DSN: placementDB(t, west)}}
	db, dialect, err := database.Open(ctx, dbc, testenv.Logger(t),
		database.RouteBy(tenants.RouteKey), database.WithPlacements(places, tenants.PlacementKey))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = database.Close(db) })
	layout, err := tenants.NewLayout(tenants.StrategySchema, dialect)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tenants.NewScope(db, layout); err != nil {
		t.Fatal(err)
	}
	s := &spread{fleet: fleet{db: db, layout: layout}, on: map[string]string{}}
	c := s.catalog(t, migrations.Tenant())
	if err := c.Bootstrap(ctx); err != nil {
		t.Fatal(err)
	}
	// Spec.Database names the control database too: left empty it
	// would mean the database with the fewest tenants.
	for _, p := range []struct{ prefix, database, placement string }{{"m", dbc.Name, ""}, {"e", "east", "east"}, {"w", "west", "west"}} {
		for i := range perDB {
			name := fmt.Sprintf("%s%d", p.prefix, i)
			if _, err := c.Create(ctx, tenants.Spec{Name: name, Hosts: []string{name + ".test"}, Database: p.database}); err != nil {
				t.Fatalf("create %s on %s: %v", name, p.database, err)
			}
			s.on[name] = p.placement
		}
	}
	return s
}

// names returns the tenants, in name order.
func (s *spread) names() []string {
	var out []string
	for n := range s.on {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// exec runs a statement on the tenant's own database.
func (s *spread) exec(t testing.TB, tenant, q string, args ...any) {
	t.Helper()
	if err := s.db.WithContext(database.OnPlacement(context.Background(), s.on[tenant])).Exec(q, args...).Error; err != nil {
		t.Fatalf("%s on %s's database: %v", q, tenant, err)
	}
}

// nicknames counts, on each database ("" the control one), the tenant's
// users tables with a nickname column, straight from the database's own
// catalog: 1 on the tenant's database once migrated, 0 everywhere else.
func (s *spread) nicknames(t testing.TB, tenant string) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	for _, p := range []string{"", "east", "west"} {
		var n int64
		err := s.db.WithContext(database.OnPlacement(context.Background(), p)).Raw(
			"SELECT count(*) FROM information_schema.columns WHERE table_schema = ? AND table_name = 'users' AND column_name = 'nickname'",
			tenant).Scan(&n).Error
		if err != nil {
			t.Fatalf("nickname column of %s on %q: %v", tenant, p, err)
		}
		out[p] = n
	}
	return out
}

// checkMigrated checks each tenant's catalog version and, on every
// database, its nickname column: migrated tenants have it on their own
// database only, the others nowhere.
func (s *spread) checkMigrated(t testing.TB, latest int, migrated func(tenant string) bool) {
	t.Helper()
	for _, n := range s.names() {
		wantV, want := base, map[string]int64{"": 0, "east": 0, "west": 0}
		if migrated(n) {
			wantV, want[s.on[n]] = latest, 1
		}
		if got := s.version(t, n); got != wantV {
			t.Errorf("%s: catalog version %d, want %d", n, got, wantV)
		}
		if got := s.nicknames(t, n); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s (on %q): nickname columns per database %v, want %v", n, s.on[n], got, want)
		}
	}
}

// dbCounts is a DatabaseReport without its jobs, which depend on the
// machine's CPUs.
func dbCounts(rep tenants.MigrateReport) string {
	var parts []string
	for _, d := range rep.Databases {
		parts = append(parts, fmt.Sprintf("%s: %d total, %d migrated, %d up to date, %d failed, %d pending",
			d.Name, d.Total, d.Migrated, d.UpToDate, d.Failed, d.Pending))
	}
	return strings.Join(parts, "; ")
}

// TestMigratePlacements runs the migration runner over tenants spread
// on three databases: the control one and two private clusters, shared
// by the subtests (each has databases of its own on them), the one that
// stops a cluster last.
func TestMigratePlacements(t *testing.T) {
	east, west := testenv.StartCluster(t), testenv.StartCluster(t)
	ctx := context.Background()
	next := withMigration(t, "nickname", addNickname)
	latest := next.Latest()

	t.Run("every database in one run", func(t *testing.T) {
		s := newSpread(t, east, west, 2)
		c := s.catalog(t, next)

		st, err := c.MigrationStatus(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, v := range st.Tenants {
			got = append(got, v.Name+"@"+v.Database)
		}
		if want := "e0@east e1@east m0@main m1@main w0@west w1@west"; strings.Join(got, " ") != want || st.Behind != 6 {
			t.Errorf("status: tenants %v, %d behind; want %s, all behind", got, st.Behind, want)
		}
		if got, want := fmt.Sprint(st.Databases), "[{main 2 0 2 0} {east 2 0 2 0} {west 2 0 2 0}]"; got != want {
			t.Errorf("status per database: %s, want %s", got, want)
		}

		dry, err := c.Migrate(ctx, tenants.MigrateOptions{DryRun: true})
		if err != nil {
			t.Fatalf("dry run: %v", err)
		}
		got = got[:0]
		for _, p := range dry.Pending {
			got = append(got, p.Tenant+"@"+p.Database)
		}
		if want := "e0@east e1@east m0@main m1@main w0@west w1@west"; strings.Join(got, " ") != want {
			t.Errorf("dry run pending %v, want %s", got, want)
		}

		var started, done int
		rep, err := c.Migrate(ctx, tenants.MigrateOptions{Jobs: 2,
			Start: func(n int) { started = n }, Progress: func(p tenants.Progress) { done = p.Done }})
		if err != nil {
			t.Fatalf("Migrate: %v (%+v)", err, rep.Failures)
		}
		want := "main: 2 total, 2 migrated, 0 up to date, 0 failed, 0 pending; " +
			"east: 2 total, 2 migrated, 0 up to date, 0 failed, 0 pending; " +
			"west: 2 total, 2 migrated, 0 up to date, 0 failed, 0 pending"
		if rep.Migrated != 6 || started != 6 || done != 6 || dbCounts(rep) != want {
			t.Errorf("report %+v (Start %d, last Done %d), per database %q; want 6 migrated, %q", rep, started, done, dbCounts(rep), want)
		}
		s.checkMigrated(t, latest, func(string) bool { return true })

		if rep, err := c.Migrate(ctx, tenants.MigrateOptions{}); err != nil || rep.UpToDate != 6 || rep.Migrated != 0 {
			t.Errorf("second run: %+v, %v; want all 6 up to date", rep, err)
		}
	})

	t.Run("a failing tenant on one database", func(t *testing.T) {
		s := newSpread(t, east, west, 2)
		// Two users of one name make the unique index fail on e1 only,
		// after its ADD COLUMN has already run.
		for _, email := range []string{"ann1@example.com", "ann2@example.com"} {
			s.exec(t, "e1", `INSERT INTO "e1"."users" (name, email, created_at, updated_at) VALUES ('Ann', ?, now(), now())`, email)
		}
		c := s.catalog(t, withMigration(t, "nickname", addNickname+"\n"+
			`CREATE UNIQUE INDEX {{index "users_name_key"}} ON {{table "users"}} (name);`))
		rep, err := c.Migrate(ctx, tenants.MigrateOptions{Jobs: 2})
		if !errors.Is(err, tenants.ErrMigrateFailed) {
			t.Fatalf("Migrate error = %v, want ErrMigrateFailed", err)
		}
		if len(rep.Failures) != 1 || rep.Failures[0].Tenant != "e1" || rep.Failures[0].Database != "east" || rep.Migrated != 5 {
			t.Fatalf("report %+v, want 5 migrated and e1 on east failed", rep)
		}
		if got, want := rep.Databases[1], (tenants.DatabaseReport{Name: "east", Jobs: rep.Databases[1].Jobs, Total: 2, Migrated: 1, Failed: 1}); got != want {
			t.Errorf("east's report %+v, want %+v", got, want)
		}
		s.checkMigrated(t, latest, func(n string) bool { return n != "e1" })
	})

	t.Run("drift on one database stops the run", func(t *testing.T) {
		s := newSpread(t, east, west, 1)
		// As if west were restored from a backup taken under an edited
		// 0001_users.
		s.exec(t, "w0", `UPDATE "w0"."schema_migrations" SET checksum = 'edited' WHERE version = 1`)
		for _, dry := range []bool{true, false} {
			rep, err := s.catalog(t, next).Migrate(ctx, tenants.MigrateOptions{DryRun: dry})
			if !errors.Is(err, migrations.ErrChecksum) || !strings.Contains(err.Error(), "on database west") ||
				rep.Migrated != 0 || rep.UpToDate != 0 || len(rep.Pending) != 0 {
				t.Fatalf("dry run %v: %+v, %v; want ErrChecksum naming west, nothing migrated or planned", dry, rep, err)
			}
		}
		s.checkMigrated(t, latest, func(string) bool { return false })
	})

	t.Run("a stopped database fails only its tenants", func(t *testing.T) {
		s := newSpread(t, east, west, 2)
		if err := west.Stop(); err != nil {
			t.Fatal(err)
		}
		c := s.catalog(t, next)
		rep, err := c.Migrate(ctx, tenants.MigrateOptions{Jobs: 2})
		if !errors.Is(err, tenants.ErrMigrateFailed) {
			t.Fatalf("Migrate error = %v, want ErrMigrateFailed", err)
		}
		var failed []string
		for _, f := range rep.Failures {
			failed = append(failed, f.Tenant+"@"+f.Database)
			if !errors.Is(f.Err, database.ErrUnavailable) {
				t.Errorf("%s failed with %v, want database.ErrUnavailable", f.Tenant, f.Err)
			}
		}
		if strings.Join(failed, " ") != "w0@west w1@west" || rep.Migrated != 4 {
			t.Fatalf("report %+v, want 4 migrated and w0, w1 on west failed", rep)
		}
		for _, n := range []string{"m0", "m1", "e0", "e1"} {
			if got := s.version(t, n); got != latest {
				t.Errorf("%s: version %d, want %d", n, got, latest)
			}
		}
		// The catalog alone answers the status while west is down.
		st, err := c.MigrationStatus(ctx)
		if err != nil || st.Behind != 2 || st.UpToDate != 4 {
			t.Errorf("status with west down: %+v, %v; want w0 and w1 behind", st, err)
		}
		if err := west.Start(); err != nil {
			t.Fatal(err)
		}
		if rep, err := c.Migrate(ctx, tenants.MigrateOptions{}); err != nil || rep.Migrated != 2 || rep.UpToDate != 4 {
			t.Errorf("run after west is back: %+v, %v; want w0 and w1 migrated", rep, err)
		}
		s.checkMigrated(t, latest, func(string) bool { return true })
	})
}
