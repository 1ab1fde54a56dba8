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

// TestBaselineMatchesAutoMigrate: the tenant baseline (0001) is SQL rather
// than a call to GORM's AutoMigrate, because AutoMigrate names indexes
// after the table alone, and under the prefix strategy index names are
// shared by every tenant (one SQLite database, one PostgreSQL schema), so
// it cannot give each tenant its own. This test keeps the two the same:
// the baseline must build exactly the columns AutoMigrate(&models.User{})
// builds, on each database, so the model stays the description of a
// tenant's table. What the SQL adds is the unique index on email, named
// per tenant.
func TestBaselineMatchesAutoMigrate(t *testing.T) {
	for _, driver := range testenv.Drivers {
		t.Run(driver, func(t *testing.T) {
			ctx := context.Background()
			db, dialect := openDB(t, driver)

			prefixed := func(p string) func(string) string { return func(n string) string { return p + n } }
			target := migrations.Target{Dialect: dialect, Table: prefixed("baseline_"), Index: prefixed("baseline_")}
			err := db.Transaction(func(tx *gorm.DB) error {
				_, err := migrations.Tenant()[:1].Apply(ctx, tx, target)
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			if err := db.Table("automigrate_users").AutoMigrate(&models.User{}); err != nil {
				t.Fatal(err)
			}

			got, want := columns(t, db, "baseline_users"), columns(t, db, "automigrate_users")
			if len(want) != 5 {
				t.Fatalf("AutoMigrate built %d columns, want the model's 5: %v", len(want), want)
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("baseline columns differ from AutoMigrate(&models.User{}):\n baseline    %v\n automigrate %v", got, want)
			}
			if !db.Migrator().HasIndex("baseline_users", "baseline_users_email_key") {
				t.Errorf("the baseline has no unique index on email named for its tenant")
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
