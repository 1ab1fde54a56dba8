package migrations_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"gorm.io/gorm"

	"tenantry/database"
	"tenantry/internal/testenv"
	"tenantry/migrations"
)

func file(s string) *fstest.MapFile { return &fstest.MapFile{Data: []byte(s)} }

// openDB opens a fresh database of driver for one test, closed after it.
func openDB(t *testing.T, driver string) (*gorm.DB, migrations.Dialect) {
	t.Helper()
	db, dialect, err := database.Open(context.Background(), testenv.Database(t, driver), testenv.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = database.Close(db) })
	return db, dialect
}

const usersSQL = `CREATE TABLE {{table "users"}} (id integer PRIMARY KEY, email text);
CREATE UNIQUE INDEX {{index "users_email_key"}} ON {{table "users"}} (email);`

func TestLoad(t *testing.T) {
	for _, tc := range []struct {
		name    string
		fs      fstest.MapFS
		wantErr string // empty: loads
	}{
		{"ordered", fstest.MapFS{
			"m/0001_users.postgres.sql": file(usersSQL), "m/0001_users.sqlite.sql": file(usersSQL),
			"m/0002_more.postgres.sql": file("SELECT 1;"), "m/0002_more.sqlite.sql": file("SELECT 1;"),
		}, ""},
		{"one dialect only", fstest.MapFS{"m/0001_users.postgres.sql": file(usersSQL)}, "must exist for both"},
		{"gap", fstest.MapFS{
			"m/0001_a.postgres.sql": file(""), "m/0001_a.sqlite.sql": file(""),
			"m/0003_c.postgres.sql": file(""), "m/0003_c.sqlite.sql": file(""),
		}, "without gaps"},
		{"two names", fstest.MapFS{"m/0001_a.postgres.sql": file(""), "m/0001_b.sqlite.sql": file("")}, "two names"},
		{"bad file name", fstest.MapFS{"m/1_users.sql": file("")}, "name must be"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			set, err := migrations.Load(tc.fs, "m")
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("Load: %v", err)
			case tc.wantErr == "" && (set.Latest() != 2 || set[0].Name != "users" || set[1].Name != "more"):
				t.Errorf("Load = %+v, want users then more", set)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("Load error = %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestAppend(t *testing.T) {
	base := migrations.Tenant()
	next, err := base.Append("nickname", map[migrations.Dialect]string{migrations.Postgres: "SELECT 1;", migrations.SQLite: "SELECT 1;"})
	if err != nil {
		t.Fatal(err)
	}
	if next.Latest() != base.Latest()+1 || next[len(next)-1].Name != "nickname" || len(base) != len(next)-1 {
		t.Errorf("Append: %d migrations up to %d; base now %d", len(next), next.Latest(), len(base))
	}
	for _, bad := range []struct {
		name string
		sql  map[migrations.Dialect]string
	}{
		{"Bad-Name", map[migrations.Dialect]string{migrations.Postgres: "", migrations.SQLite: ""}},
		{"pg_only", map[migrations.Dialect]string{migrations.Postgres: ""}},
	} {
		if _, err := base.Append(bad.name, bad.sql); err == nil {
			t.Errorf("Append(%q, %d dialects) succeeded", bad.name, len(bad.sql))
		}
	}
}

func TestTablesAndIndexes(t *testing.T) {
	if got, want := migrations.Tenant().Tables(), []string{"idempotency_keys", "schema_migrations", "users"}; !slices.Equal(got, want) {
		t.Errorf("Tables = %v, want %v", got, want)
	}
	if got, want := migrations.Tenant().Indexes(), []string{"idem_expires_at", "users_email_key"}; !slices.Equal(got, want) {
		t.Errorf("Indexes = %v, want %v", got, want)
	}
}

func TestPending(t *testing.T) {
	set := migrations.Tenant()
	m := set[0]
	var all []migrations.Record // every migration of the set, applied
	for _, m := range set {
		all = append(all, migrations.Record{Version: m.Version, Name: m.Name, Checksum: m.Checksum(migrations.Postgres)})
	}
	for _, tc := range []struct {
		name    string
		recs    []migrations.Record
		want    int
		wantErr error
	}{
		{"fresh schema", nil, len(set), nil},
		{"all applied", all, 0, nil},
		{"edited since applied", []migrations.Record{{Version: 1, Name: m.Name, Checksum: "0000"}}, 0, migrations.ErrChecksum},
		{"other dialect's checksum", []migrations.Record{{Version: 1, Name: m.Name, Checksum: m.Checksum(migrations.SQLite)}}, 0, migrations.ErrChecksum},
		{"newer than the code", append(slices.Clip(all), migrations.Record{Version: 9, Name: "future"}), 0, migrations.ErrUnknownVersion},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := set.Pending(tc.recs, migrations.Postgres)
			if !errors.Is(err, tc.wantErr) || len(got) != tc.want {
				t.Errorf("Pending = %d migrations, %v; want %d, %v", len(got), err, tc.want, tc.wantErr)
			}
		})
	}
}

// TestApplyRollsBack applies a set whose second migration fails halfway:
// inside the caller's transaction nothing of it, or of the first, stays.
func TestApplyRollsBack(t *testing.T) {
	sets := map[string]string{
		"good": usersSQL,
		"bad":  `ALTER TABLE {{table "users"}} ADD COLUMN nickname text;` + "\nSELECT * FROM no_such_table;",
	}
	for _, driver := range testenv.Drivers {
		t.Run(driver, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			db, dialect := openDB(t, driver)
			set, err := migrations.Load(fstest.MapFS{
				"m/0001_users.postgres.sql": file(sets["good"]), "m/0001_users.sqlite.sql": file(sets["good"]),
				"m/0002_bad.postgres.sql": file(sets["bad"]), "m/0002_bad.sqlite.sql": file(sets["bad"]),
			}, "m")
			if err != nil {
				t.Fatal(err)
			}
			target := migrations.Target{Dialect: dialect,
				Table: func(n string) string { return "x_" + n },
				Index: func(n string) string { return "x_" + n }}

			err = db.Transaction(func(tx *gorm.DB) error { _, err := set.Apply(ctx, tx, target); return err })
			if err == nil || !strings.Contains(err.Error(), "0002_bad") {
				t.Fatalf("Apply error = %v, want one naming 0002_bad", err)
			}
			var recs []migrations.Record
			err = db.Transaction(func(tx *gorm.DB) error { recs, err = migrations.Applied(ctx, tx, target); return err })
			if err != nil || len(recs) != 0 {
				t.Fatalf("after rollback: records %v, %v; want none", recs, err)
			}

			// The first migration alone applies and is recorded once.
			var applied migrations.Set
			err = db.Transaction(func(tx *gorm.DB) error { applied, err = set[:1].Apply(ctx, tx, target); return err })
			if err != nil || len(applied) != 1 {
				t.Fatalf("Apply 0001: %v, %v", applied, err)
			}
			err = db.Transaction(func(tx *gorm.DB) error { applied, err = set[:1].Apply(ctx, tx, target); return err })
			if err != nil || len(applied) != 0 {
				t.Errorf("second Apply: %v, %v; want nothing applied", applied, err)
			}
		})
	}
}

// TestApplyOutlastsStatementTimeout: database.statement_timeout bounds
// requests, not migrations. A migration longer than it applies, and the
// connection keeps its timeout for the statements after the transaction.
func TestApplyOutlastsStatementTimeout(t *testing.T) {
	ctx := context.Background()
	cfg := testenv.Database(t, "postgres")
	cfg.StatementTimeout = 200 * time.Millisecond
	cfg.MaxOpenConns, cfg.MaxIdleConns = 1, 1 // the same connection before and after
	db, dialect, err := database.Open(ctx, cfg, testenv.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = database.Close(db) })
	slow := "SELECT pg_sleep(0.5);"
	set, err := migrations.Load(fstest.MapFS{"m/0001_slow.postgres.sql": file(slow), "m/0001_slow.sqlite.sql": file(slow)}, "m")
	if err != nil {
		t.Fatal(err)
	}
	target := migrations.Target{Dialect: dialect,
		Table: func(n string) string { return "slow_" + n },
		Index: func(n string) string { return "slow_" + n }}
	var applied migrations.Set
	err = db.Transaction(func(tx *gorm.DB) error { applied, err = set.Apply(ctx, tx, target); return err })
	if err != nil || len(applied) != 1 {
		t.Fatalf("Apply = %v, %v; want the slow migration applied", applied, err)
	}
	if err := db.Exec("SELECT pg_sleep(0.5)").Error; err == nil {
		t.Error("a statement after the migration ran past statement_timeout; the SET LOCAL leaked")
	}
}
