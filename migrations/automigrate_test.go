package migrations_test

import (
	"context"
	"fmt"
	"testing"

	"gorm.io/gorm"

	"tenantry/internal/testenv"
	"tenantry/migrations"
	"tenantry/models"
)

// TestBaselineMatchesAutoMigrate: the tenant migrations are SQL rather
// than calls to GORM's AutoMigrate, because AutoMigrate names indexes
// after the table alone, and under the prefix strategy index names are
// shared by every tenant (one SQLite database, one PostgreSQL schema), so
// it cannot give each tenant its own. This test keeps the two the same:
// every tenant table must have exactly the columns AutoMigrate builds
// from its model, on each database, so the models stay the description of
// a tenant's tables. What the SQL adds is the indexes, named per tenant:
// the unique index on users' email and the expiry index of the
// idempotency keys.
func TestBaselineMatchesAutoMigrate(t *testing.T) {
	tables := []struct {
		table   string
		model   any
		columns int
		index   string
	}{
		{"users", &models.User{}, 5, "users_email_key"},
		{"idempotency_keys", &models.IdempotencyKey{}, 7, "idem_expires_at"},
	}
	for _, driver := range testenv.Drivers {
		t.Run(driver, func(t *testing.T) {
			ctx := context.Background()
			db, dialect := openDB(t, driver)

			prefixed := func(p string) func(string) string { return func(n string) string { return p + n } }
			target := migrations.Target{Dialect: dialect, Table: prefixed("baseline_"), Index: prefixed("baseline_")}
			err := db.Transaction(func(tx *gorm.DB) error {
				_, err := migrations.Tenant().Apply(ctx, tx, target)
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			if got, want := migrations.Tenant().Tables(), len(tables)+1; len(got) != want {
				t.Fatalf("the tenant set names tables %v; this test checks %d of them, add the new one", got, want-1)
			}
			for _, tc := range tables {
				if err := db.Table("automigrate_" + tc.table).AutoMigrate(tc.model); err != nil {
					t.Fatal(err)
				}
				got, want := columns(t, db, "baseline_"+tc.table), columns(t, db, "automigrate_"+tc.table)
				if len(want) != tc.columns {
					t.Fatalf("AutoMigrate built %d columns for %s, want the model's %d: %v", len(want), tc.table, tc.columns, want)
				}
				if fmt.Sprint(got) != fmt.Sprint(want) {
					t.Errorf("%s: migration columns differ from AutoMigrate(%T):\n migration   %v\n automigrate %v", tc.table, tc.model, got, want)
				}
				if !db.Migrator().HasIndex("baseline_"+tc.table, "baseline_"+tc.index) {
					t.Errorf("%s has no index %s named for its tenant", tc.table, tc.index)
				}
			}
		})
	}
}

// columns describes a table's columns in order: name, type, nullability
// and primary key.
func columns(t *testing.T, db *gorm.DB, table string) []string {
	t.Helper()
	cts, err := db.Migrator().ColumnTypes(table)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, c := range cts {
		null, _ := c.Nullable()
		pk, _ := c.PrimaryKey()
		out = append(out, fmt.Sprintf("%s %s null=%v pk=%v", c.Name(), c.DatabaseTypeName(), null, pk))
	}
	return out
}
