package doctor

import (
	"context"
	"database/sql"
	"fmt"

	"gorm.io/gorm"

	"tenantry/database"
	"tenantry/migrations"
	"tenantry/tenants"
)

// catTenant and catHost are catalog rows, read as stored.
type catTenant struct {
	ID            uint64
	Name          string
	Schema        string
	Status        string
	SchemaVersion int
	// Database is the tenant's placement as the catalog stores it: "" for
	// the control database. MovingTo and WritesPaused are a move's state
	// (tenants.Tenant). All three are zero in a catalog older than
	// placements.
	Database     string
	MovingTo     string
	WritesPaused bool
}

type catHost struct {
	Host     string
	TenantID uint64
}

// snapshot is what read found: the catalog, and what each database holds.
type snapshot struct {
	catalog bool
	tenants []catTenant
	hosts   []catHost
	// shared holds the shared schema's migration records; sharedRecorded
	// says whether its record table exists.
	shared         []record
	sharedRecorded bool
	// placements are the configured databases, the control one first.
	placements []*placement
	// moving names the tenants (by schema) whose move lock a process
	// holds: their move is running, not interrupted. PostgreSQL only.
	moving map[string]bool
}

// read takes the snapshot: the catalog and the control database's
// contents in one transaction, then each other database's in one of its
// own (placement.read). Each is READ ONLY and REPEATABLE READ on
// PostgreSQL, so the server itself refuses any write and every check of
// a database sees one moment; on SQLite a read transaction.
//
// Reading the control database's contents with the catalog keeps a
// deployment on one database exactly as consistent as before placements.
// The other databases are read moments later: a tenant created, removed
// or moved on one of them in between may show as an orphan or a missing
// schema, and is gone from the next run.
func read(ctx context.Context, db *gorm.DB, layout tenants.Layout, names []string) (*snapshot, error) {
	snap := &snapshot{moving: map[string]bool{}}
	for i, name := range names {
		p := newPlacement(name, i == 0)
		p.alone = len(names) == 1
		snap.placements = append(snap.placements, p)
	}
	control := snap.placements[0]
	cctx := database.OnPlacement(ctx, "")
	err := db.WithContext(cctx).Transaction(func(tx *gorm.DB) error {
		return snap.read(cctx, tx, layout, control)
	}, txOptions(layout))
	if err != nil {
		return nil, err
	}
	if !snap.catalog {
		return snap, nil
	}
	for _, p := range snap.placements[1:] {
		if err := p.read(ctx, db, layout); err != nil {
			return nil, err
		}
	}
	return snap, nil
}

func txOptions(layout tenants.Layout) *sql.TxOptions {
	opts := &sql.TxOptions{ReadOnly: true}
	if layout.Dialect == migrations.Postgres {
		opts.Isolation = sql.LevelRepeatableRead
	}
	return opts
}

// read reads the catalog and, in the same transaction, the control
// database's contents.
func (s *snapshot) read(ctx context.Context, tx *gorm.DB, layout tenants.Layout, control *placement) error {
	shared := layout.SharedTarget()
	var err error
	if s.catalog, err = migrations.HasTable(ctx, tx, shared, "tenants"); err != nil || !s.catalog {
		return err
	}
	// The inventory first: it tells whether the catalog has the
	// placement columns yet.
	if err := control.readInventory(ctx, tx, layout); err != nil {
		return err
	}
	q := tx.WithContext(ctx)
	cols := "'' AS database, '' AS moving_to, FALSE AS writes_paused"
	if r := control.inv.table(sharedKey(layout, "tenants")); r != nil && hasColumns(r, "database", "moving_to", "writes_paused") {
		cols = "database, moving_to, writes_paused"
	}
	err = q.Raw("SELECT id, name, schema, status, schema_version, " + cols + " FROM " +
		migrations.Quote(layout.SharedTable("tenants")) + " ORDER BY name").Scan(&s.tenants).Error
	if err != nil {
		return fmt.Errorf("read the catalog's tenants: %w", err)
	}
	if err := q.Raw("SELECT host, tenant_id FROM " + migrations.Quote(layout.SharedTable("tenant_hosts")) +
		" ORDER BY host").Scan(&s.hosts).Error; err != nil {
		return fmt.Errorf("read the catalog's hosts: %w", err)
	}
	if s.sharedRecorded, err = migrations.HasTable(ctx, tx, shared, "schema_migrations"); err != nil {
		return err
	}
	if s.sharedRecorded {
		if err := q.Raw("SELECT version, name, checksum FROM " + migrations.Quote(layout.SharedTable("schema_migrations")) +
			" ORDER BY version").Scan(&s.shared).Error; err != nil {
			return fmt.Errorf("read the shared migration records: %w", err)
		}
	}
	s.place()
	if layout.Dialect == migrations.Postgres {
		if err := s.readMoveLocks(ctx, tx); err != nil {
			return err
		}
	}
	return control.readRest(ctx, tx, layout)
}

// sharedKey names a catalog table in the inventory.
func sharedKey(l tenants.Layout, name string) relKey {
	if l.Dialect == migrations.Postgres {
		return relKey{tenants.SharedSchema, name}
	}
	return relKey{"", name}
}

// readMoveLocks notes the tenants with moving_to set whose move lock some
// session holds. pg_try_advisory_lock(hashtext(key)) takes the bigint
// key, which pg_locks shows split into classid (high half) and objid.
func (s *snapshot) readMoveLocks(ctx context.Context, tx *gorm.DB) error {
	for _, t := range s.tenants {
		if t.MovingTo == "" {
			continue
		}
		var held bool
		err := tx.WithContext(ctx).Raw(`SELECT EXISTS (SELECT 1 FROM pg_locks l JOIN pg_database d ON d.oid = l.database
	WHERE l.locktype = 'advisory' AND l.objsubid = 1 AND l.granted AND d.datname = current_database()
	AND ((l.classid::bigint << 32) | l.objid::bigint) = hashtext(?)::bigint)`, tenants.MoveLockKey(t.Schema)).Scan(&held).Error
		if err != nil {
			return fmt.Errorf("read the move locks: %w", err)
		}
		s.moving[t.Schema] = held
	}
	return nil
}
