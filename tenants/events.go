package tenants

import "time"

// Events are told what a catalog did, so that package metrics can count
// it without this package knowing about Prometheus. Every field may be nil.
// The calls are made on the goroutine doing the work, after it committed
// (or failed): they must be cheap and must not block.
type Events struct {
	// MigrationsApplied is called by Migrate for each tenant whose
	// pending migrations committed, with how many were applied.
	// Provisioning a new tenant applies every migration too; that is
	// Provisioned, not this.
	MigrationsApplied func(n int)
	// MigrationFailed is called by Migrate for each tenant it could not
	// migrate: rolled back, or recorded at a version newer than the code.
	MigrationFailed func()
	// Provisioned is called after a new tenant's creation (Create, or an
	// Ensure that created it) committed, with how long it took: the lock,
	// the schema, every migration and the catalog rows.
	Provisioned func(took time.Duration)
}

// OnEvents makes the catalog tell e what it does. Call it before the
// catalog is used, as OnChange.
func (c *Catalog) OnEvents(e Events) { c.events = e }

func (e Events) migrationsApplied(n int) {
	if e.MigrationsApplied != nil && n > 0 {
		e.MigrationsApplied(n)
	}
}

func (e Events) migrationFailed() {
	if e.MigrationFailed != nil {
		e.MigrationFailed()
	}
}

func (e Events) provisioned(took time.Duration) {
	if e.Provisioned != nil {
		e.Provisioned(took)
	}
}
