package tenants_test

import (
	"context"
	"testing"
	"time"

	"tenantry/internal/testenv"
	"tenantry/migrations"
	"tenantry/models"
	"tenantry/tenants"
)

// TestOffboardingIdempotencyKeys: a tenant's idempotency keys are tenant
// data like its users. Archiving keeps them under the archive name, index
// included, so a new tenant of the same schema gets a table and an index
// of its own, where a key of the old tenant is unknown; dropping the data
// drops them.
func TestOffboardingIdempotencyKeys(t *testing.T) {
	for _, l := range layouts {
		t.Run(l.driver+"/"+string(l.strategy), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			db, layout, scope := openScoped(t, testenv.Database(t, l.driver), l.strategy)
			f := &fleet{db: db, layout: layout}
			c := tenants.NewCatalog(db, layout, testenv.Logger(t))
			if err := c.Bootstrap(ctx); err != nil {
				t.Fatal(err)
			}
			now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
			save := func() bool {
				t.Helper()
				tn, err := c.Create(ctx, tenants.Spec{Name: "acme", Hosts: []string{"acme.test"}})
				if err != nil {
					t.Fatalf("create acme: %v", err)
				}
				tctx := tenants.NewContext(ctx, tn)
				sdb, err := scope.DB(tctx)
				if err != nil {
					t.Fatal(err)
				}
				stored, err := models.SaveIdempotencyKey(tctx, sdb, models.IdempotencyKey{
					Key: "k", Fingerprint: "fp", Status: 201, CreatedAt: now, ExpiresAt: now.Add(models.IdempotencyTTL)})
				if err != nil {
					t.Fatal(err)
				}
				return stored
			}

			if !save() {
				t.Fatal("the first key was not stored")
			}
			archived, err := c.Remove(ctx, "acme", false)
			if err != nil {
				t.Fatal(err)
			}
			if got := archivedKeys(t, f); got != 1 {
				t.Errorf("archived idempotency keys %d, want 1 (under %s)", got, archived)
			}
			if !save() {
				t.Error("the re-created tenant found the archived tenant's key")
			}
			target := layout.TenantTarget("acme")
			if _, err := c.Remove(ctx, "acme", true); err != nil {
				t.Fatal(err)
			}
			if has, err := migrations.HasTable(ctx, db, target, "idempotency_keys"); err != nil || has {
				t.Errorf("after removal with its data: idempotency_keys present = %v, %v", has, err)
			}
			if got := archivedKeys(t, f); got != 1 {
				t.Errorf("archived idempotency keys %d after dropping the new tenant, want still 1", got)
			}
		})
	}
}

// archivedKeys counts the rows of every archived idempotency_keys table.
func archivedKeys(t *testing.T, f *fleet) int {
	t.Helper()
	var tables []string
	var err error
	switch {
	case f.layout.Dialect == migrations.SQLite:
		err = f.db.Raw("SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'archived%idempotency_keys'").Scan(&tables).Error
	case f.layout.Strategy == tenants.StrategyPrefix:
		err = f.db.Raw("SELECT schemaname || '.' || tablename FROM pg_tables WHERE schemaname = ? AND tablename LIKE 'archived%idempotency_keys'", tenants.PrefixSchema).Scan(&tables).Error
	default:
		err = f.db.Raw("SELECT schemaname || '.' || tablename FROM pg_tables WHERE schemaname LIKE 'archived%' AND tablename = 'idempotency_keys'").Scan(&tables).Error
	}
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, tb := range tables {
		var n int
		if err := f.db.Raw("SELECT count(*) FROM " + migrations.Quote(tb)).Scan(&n).Error; err != nil {
			t.Fatal(err)
		}
		total += n
	}
	return total
}
