package doctor_test

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib"

	"tenantry/config"
	"tenantry/database"
	"tenantry/doctor"
	"tenantry/internal/testenv"
	"tenantry/migrations"
	"tenantry/tenants"
)

// placed is a finding without its message, with its database.
type placed struct {
	Check    string
	Severity doctor.Severity
	Database string
	Tenant   string
	Object   string
}

func (p placed) String() string {
	return fmt.Sprintf("%s/%s db=%q tenant=%q object=%q", p.Check, p.Severity, p.Database, p.Tenant, p.Object)
}

// wantFindings fails t unless rep's findings are exactly want, in any
// order.
func wantFindings(t *testing.T, rep doctor.Report, want ...placed) {
	t.Helper()
	strs := func(ps []placed) []string {
		out := []string{}
		for _, p := range ps {
			out = append(out, p.String())
		}
		slices.Sort(out)
		return out
	}
	var got []placed
	for _, f := range rep.Findings {
		got = append(got, placed{f.Check, f.Severity, f.Database, f.Tenant, f.Object})
	}
	if g, w := strs(got), strs(want); !slices.Equal(g, w) {
		t.Fatalf("findings %v, want %v:\n%s", g, w, dump(rep))
	}
}

// TestRunPlacements audits tenants on two databases: the control one on
// the shared server and "b", a private cluster's. Each step breaks the
// deployment one way, checks that the doctor reports exactly that, on the
// right database, and repairs it; the last stops the cluster.
func TestRunPlacements(t *testing.T) {
	cl := testenv.StartCluster(t)
	env := testenv.Start(t, "postgres", func(c *config.Config) {
		c.Databases = []config.Placement{{Name: "b", DSN: cl.DSN()}}
	})
	a := env.App
	ctx := context.Background()
	for _, s := range []tenants.Spec{
		{Name: "acme", Database: "main", Hosts: []string{"acme.example"}},
		{Name: "bx", Database: "b", Hosts: []string{"bx.example"}},
		{Name: "by", Database: "b", Hosts: []string{"by.example"}},
	} {
		if _, err := a.Catalog.Create(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	all, err := a.Catalog.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	perDB := map[string]int{}
	for _, tn := range all {
		perDB[a.Catalog.DatabaseName(&tn)]++
	}
	catalog := migrations.Quote(a.Catalog.Layout().SharedTable("tenants"))
	on := func(db string, stmts ...string) {
		t.Helper()
		for _, q := range stmts {
			if err := a.DB.WithContext(database.OnPlacement(ctx, db)).Exec(q).Error; err != nil {
				t.Fatalf("%s on %s: %v", q, db, err)
			}
		}
	}
	run := func() doctor.Report {
		t.Helper()
		rep, err := doctor.Run(ctx, doctor.Deps{DB: a.DB, Layout: a.Catalog.Layout(), Migrations: a.Catalog.Migrations(), Pool: a.Config.Database})
		if err != nil {
			t.Fatal(err)
		}
		checkCounts(t, rep)
		return rep
	}
	// message returns the message of the one finding on object.
	message := func(t *testing.T, rep doctor.Report, check, object string) string {
		t.Helper()
		for _, f := range rep.Findings {
			if f.Check == check && f.Object == object {
				return f.Message
			}
		}
		t.Fatalf("no %s finding on %s:\n%s", check, object, dump(rep))
		return ""
	}

	t.Run("clean", func(t *testing.T) {
		rep := run()
		if len(rep.Findings) != 0 {
			t.Fatalf("clean deployment on two databases has findings:\n%s", dump(rep))
		}
		want := fmt.Sprint([]doctor.DatabaseResult{{Name: "main", Tenants: perDB["main"]}, {Name: "b", Tenants: perDB["b"]}})
		if got := fmt.Sprint(rep.Databases); got != want || rep.Tenants != len(all) {
			t.Errorf("databases %s for %d tenants, want %s for %d", got, rep.Tenants, want, len(all))
		}
	})

	t.Run("table dropped on b", func(t *testing.T) {
		on("b", `DROP TABLE "bx"."users"`)
		rep := run()
		wantFindings(t, rep, placed{doctor.CheckStorage, doctor.Error, "b", "bx", "bx.users"})
		if msg := message(t, rep, doctor.CheckStorage, "bx.users"); !strings.Contains(msg, "on database b") {
			t.Errorf("message does not name database b: %s", msg)
		}
		if _, err := a.Catalog.Remove(ctx, "bx", true); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("orphans on b", func(t *testing.T) {
		// stray is nobody's; acme is the schema of a tenant placed on the
		// control database, as an interrupted move leaves it on b.
		on("b", `CREATE SCHEMA stray`, `CREATE TABLE stray.t (id int)`,
			`CREATE SCHEMA acme`, `CREATE TABLE acme.users (id int)`)
		rep := run()
		wantFindings(t, rep,
			placed{doctor.CheckOrphans, doctor.Error, "b", "", "stray"},
			placed{doctor.CheckOrphans, doctor.Error, "b", "", "acme"})
		if msg := message(t, rep, doctor.CheckOrphans, "acme"); !strings.Contains(msg, "tenant acme, placed on database main") ||
			!strings.Contains(msg, "interrupted move") {
			t.Errorf("orphan acme on b does not say it is acme's, placed on main, left by a move: %s", msg)
		}
		on("b", `DROP SCHEMA stray CASCADE`)
	})

	t.Run("move unfinished", func(t *testing.T) {
		// acme's schema is on b already (above): with moving_to = 'b' it is
		// the move's copy, a warning, as is the move itself.
		on("main", `UPDATE `+catalog+` SET moving_to = 'b' WHERE name = 'acme'`)
		rep := run()
		wantFindings(t, rep,
			placed{doctor.CheckPlacements, doctor.Warning, "main", "acme", "acme"},
			placed{doctor.CheckOrphans, doctor.Warning, "b", "", "acme"})
		if msg := message(t, rep, doctor.CheckPlacements, "acme"); !strings.Contains(msg, "interrupted") || !strings.Contains(msg, "RecoverMoves") {
			t.Errorf("move with no lock held is not called interrupted, or gives no way out: %s", msg)
		}

		// A process holding the move lock is a move running.
		lock, err := sql.Open("pgx", a.Config.Database.DSN)
		if err != nil {
			t.Fatal(err)
		}
		defer lock.Close()
		conn, err := lock.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock(hashtext('tenantry:move:acme'))"); err != nil {
			t.Fatal(err)
		}
		rep = run()
		if msg := message(t, rep, doctor.CheckPlacements, "acme"); !strings.Contains(msg, "in progress") {
			t.Errorf("move whose lock is held is not called in progress: %s", msg)
		}
		if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_unlock(hashtext('tenantry:move:acme'))"); err != nil {
			t.Fatal(err)
		}
		on("main", `UPDATE `+catalog+` SET moving_to = '' WHERE name = 'acme'`)
		on("b", `DROP SCHEMA acme CASCADE`)
	})

	t.Run("tenant on a database not configured", func(t *testing.T) {
		on("main", `UPDATE `+catalog+` SET database = 'ghost' WHERE name = 'by'`)
		rep := run()
		// by's schema on b is then an orphan: no tenant placed on b owns it.
		wantFindings(t, rep,
			placed{doctor.CheckPlacements, doctor.Error, "ghost", "by", "ghost"},
			placed{doctor.CheckOrphans, doctor.Error, "b", "", "by"})
		if last := rep.Databases[len(rep.Databases)-1]; last.Name != "ghost" || last.Tenants != 1 || last.Skipped == "" {
			t.Errorf("databases %+v: want ghost listed last, 1 tenant, skipped", rep.Databases)
		}
		on("main", `UPDATE `+catalog+` SET database = 'b' WHERE name = 'by'`)
		if rep := run(); len(rep.Findings) != 0 {
			t.Fatalf("repaired deployment has findings:\n%s", dump(rep))
		}
	})

	t.Run("b unreachable", func(t *testing.T) {
		// The control database's tenants are still audited: acme's
		// dropped table is found.
		on("main", `DROP TABLE "acme"."users"`)
		if err := cl.Stop(); err != nil {
			t.Fatal(err)
		}
		rep := run()
		wantFindings(t, rep,
			placed{doctor.CheckPlacements, doctor.Error, "b", "", "b"},
			placed{doctor.CheckStorage, doctor.Error, "main", "acme", "acme.users"})
		if msg := message(t, rep, doctor.CheckPlacements, "b"); !strings.Contains(msg, "database b cannot be reached") || !strings.Contains(msg, "by") {
			t.Errorf("message does not say b cannot be reached and name its tenants: %s", msg)
		}
		if b := rep.Databases[1]; b.Name != "b" || b.Skipped == "" {
			t.Errorf("databases %+v: want b skipped", rep.Databases)
		}
	})
}
