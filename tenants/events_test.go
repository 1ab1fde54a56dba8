package tenants_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"tenantry/migrations"
	"tenantry/tenants"
)

// eventLog records what a catalog tells its Events.
type eventLog struct {
	mu          sync.Mutex
	applied     []int
	failed      int
	provisioned []time.Duration
}

func (l *eventLog) events() tenants.Events {
	return tenants.Events{
		MigrationsApplied: func(n int) { l.mu.Lock(); l.applied = append(l.applied, n); l.mu.Unlock() },
		MigrationFailed:   func() { l.mu.Lock(); l.failed++; l.mu.Unlock() },
		Provisioned:       func(d time.Duration) { l.mu.Lock(); l.provisioned = append(l.provisioned, d); l.mu.Unlock() },
	}
}

// TestCatalogEvents checks what the catalog reports for metrics: one
// Provisioned per tenant created (and none for an Ensure that found it),
// and, per migration run, one MigrationsApplied per migrated tenant with
// the number applied and one MigrationFailed per failed tenant; a dry run
// reports nothing.
func TestCatalogEvents(t *testing.T) {
	eachLayout(t, func(t *testing.T, f *fleet) {
		ctx := context.Background()
		var log eventLog
		c := f.catalog(t, migrations.Tenant())
		c.OnEvents(log.events())
		for _, name := range []string{"ev1", "ev2", "ev3"} {
			if _, err := c.Create(ctx, tenants.Spec{Name: name}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := c.Ensure(ctx, tenants.Spec{Name: "ev1"}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Create(ctx, tenants.Spec{Name: "ev1"}); !errors.Is(err, tenants.ErrExists) {
			t.Fatalf("second Create = %v, want ErrExists", err)
		}
		if len(log.provisioned) != 3 {
			t.Fatalf("Provisioned called %d times, want 3 (one per tenant created)", len(log.provisioned))
		}
		for _, d := range log.provisioned {
			if d <= 0 {
				t.Errorf("Provisioned(%v), want a positive duration", d)
			}
		}

		// ev2 cannot take the unique index: it fails, the others migrate.
		f.insertUser(t, "ev2", "Ann", "ann1@example.com")
		f.insertUser(t, "ev2", "Ann", "ann2@example.com")
		next := withMigration(t, "unique_names", addNickname+"\n"+
			`CREATE UNIQUE INDEX {{index "users_name_key"}} ON {{table "users"}} (name);`)
		c = f.catalog(t, next)
		c.OnEvents(log.events())
		if _, err := c.Migrate(ctx, tenants.MigrateOptions{DryRun: true}); err != nil {
			t.Fatal(err)
		}
		if len(log.applied) != 0 || log.failed != 0 {
			t.Fatalf("a dry run reported applied %v, failed %d; want nothing", log.applied, log.failed)
		}
		if _, err := c.Migrate(ctx, tenants.MigrateOptions{Jobs: 2}); !errors.Is(err, tenants.ErrMigrateFailed) {
			t.Fatalf("Migrate = %v, want ErrMigrateFailed", err)
		}
		if len(log.applied) != 2 || log.applied[0] != 1 || log.applied[1] != 1 || log.failed != 1 {
			t.Errorf("applied %v, failed %d; want [1 1] (two tenants, one migration each) and 1", log.applied, log.failed)
		}
		if len(log.provisioned) != 3 {
			t.Errorf("Provisioned called %d times in all, want still 3: migrating provisions nothing", len(log.provisioned))
		}
	})
}
