package migrations_test

import (
	"context"
	"testing"
	"testing/fstest"

	"tenantry/internal/testenv"
	"tenantry/migrations"
)

// TestRecordedCreatesNothing: reading the records of a target that was
// never migrated finds none and leaves it without a record table, where
// Applied would have created one; once migrated, the records are read.
func TestRecordedCreatesNothing(t *testing.T) {
	for _, driver := range testenv.Drivers {
		t.Run(driver, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			db, dialect := openDB(t, driver)
			set, err := migrations.Load(fstest.MapFS{
				"m/0001_users.postgres.sql": file(usersSQL), "m/0001_users.sqlite.sql": file(usersSQL),
			}, "m")
			if err != nil {
				t.Fatal(err)
			}
			prefixed := migrations.Target{Dialect: dialect,
				Table: func(n string) string { return "x_" + n },
				Index: func(n string) string { return "x_" + n }}
			targets := map[string]migrations.Target{"prefixed": prefixed}
			if dialect == migrations.Postgres {
				// A schema that does not exist is "no table", not an error.
				targets["missing schema"] = migrations.Target{Dialect: dialect,
					Table: func(n string) string { return "nowhere." + n },
					Index: func(n string) string { return n }}
			}
			for name, target := range targets {
				for range 2 { // the first look must not make the second differ
					recs, exists, err := migrations.Recorded(ctx, db, target)
					if err != nil || exists || len(recs) != 0 {
						t.Fatalf("%s: Recorded = %v, %v, %v; want no records, no table", name, recs, exists, err)
					}
				}
				if has, err := migrations.HasTable(ctx, db, target, "users"); err != nil || has {
					t.Errorf("%s: HasTable(users) = %v, %v; want false", name, has, err)
				}
			}

			if _, err := set.Apply(ctx, db, prefixed); err != nil {
				t.Fatal(err)
			}
			recs, exists, err := migrations.Recorded(ctx, db, prefixed)
			if err != nil || !exists || len(recs) != 1 || recs[0].Version != 1 || recs[0].Name != "users" {
				t.Errorf("after Apply: Recorded = %+v, %v, %v; want 0001_users", recs, exists, err)
			}
			if has, err := migrations.HasTable(ctx, db, prefixed, "users"); err != nil || !has {
				t.Errorf("after Apply: HasTable(users) = %v, %v; want true", has, err)
			}
		})
	}
}
