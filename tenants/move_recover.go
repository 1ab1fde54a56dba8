package tenants

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"tenantry/database"
	"tenantry/migrations"
)

// RecoverMoves finishes every move a killed or failed process left
// unfinished (MovingTo set) and that no process is running now (its move
// lock is free). A move stopped before its switch is undone: the pause is
// ended and the copy, which still carries its marker, dropped. A move
// stopped after its switch has its source archived. Call it at start-up;
// Move calls it for its own tenant.
func (c *Catalog) RecoverMoves(ctx context.Context) error {
	if c.layout.Dialect != migrations.Postgres || c.layout.Strategy != StrategySchema {
		return nil
	}
	pools, err := database.PlacementsOf(c.db)
	if err != nil {
		return fmt.Errorf("recover moves: %w", err)
	}
	var ts []Tenant
	if err := c.db.WithContext(ctx).Where("moving_to <> ''").Order("name").Find(&ts).Error; err != nil {
		return fmt.Errorf("recover moves: list moving tenants: %w", err)
	}
	var errs []error
	for i := range ts {
		t := &ts[i]
		lock, err := c.moveLock(ctx, pools, t.Schema)
		if errors.Is(err, ErrMoveInProgress) {
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		m := &mover{c: c, lock: lock}
		// Read again under the lock: the move that held it may have
		// finished meanwhile.
		if cur, err := c.Get(ctx, t.Name); err != nil {
			errs = append(errs, err)
		} else if cur.MovingTo != "" {
			if err := c.recoverMove(ctx, cur); err != nil {
				errs = append(errs, fmt.Errorf("recover the move of %q: %w", t.Name, err))
			}
		}
		m.release(lock)
	}
	return errors.Join(errs...)
}

// recoverMove finishes t's unfinished move; the caller holds its move
// lock. The schema of t's name on the database MovingTo names is never
// the one served (that is on t.Database): with the marker it is a copy,
// dropped; without, a source the switch left (or a copy finished just
// before a switch that did not happen), archived, never dropped.
func (c *Catalog) recoverMove(ctx context.Context, t *Tenant) error {
	// The schema served (on t.Database) is never sealed: a move killed
	// between its seal and its switch left the seal on the source it is
	// undone to. Unsealed first, so that writes resume when unpaused.
	if err := c.dropSeal(ctx, t.Database, t); err != nil {
		return err
	}
	if t.WritesPaused {
		// No move runs: whatever the rest needs, writes resume now.
		if err := c.db.WithContext(ctx).Model(&Tenant{}).Where("id = ?", t.ID).Updates(map[string]any{"writes_paused": false}).Error; err != nil {
			return fmt.Errorf("resume writes: %w", err)
		}
		c.changed(ctx)
	}
	other, err := c.placement("moving_to", t.MovingTo)
	if err != nil {
		return err
	}
	if other != t.Database {
		var marker *string
		var found bool
		err := c.on(ctx, other).Raw("SELECT true, obj_description(oid, 'pg_namespace') FROM pg_namespace WHERE nspname = ?", t.Schema).
			Row().Scan(&found, &marker)
		switch {
		case errors.Is(err, sql.ErrNoRows):
		case err != nil:
			return fmt.Errorf("look for the schema on %s: %w", t.MovingTo, err)
		case marker != nil && *marker == moveMarker:
			if err := c.on(ctx, other).Exec("DROP SCHEMA " + migrations.Quote(t.Schema) + " CASCADE").Error; err != nil {
				return fmt.Errorf("drop the partial copy on %s: %w", t.MovingTo, err)
			}
			c.log.InfoContext(ctx, "tenant move recovered: partial copy dropped", "tenant", t.Name, "database", t.MovingTo)
		default:
			archived := archiveName(t.Schema)
			if err := c.on(ctx, other).Exec("ALTER SCHEMA " + migrations.Quote(t.Schema) + " RENAME TO " + migrations.Quote(archived)).Error; err != nil {
				return fmt.Errorf("archive the old schema on %s: %w", t.MovingTo, err)
			}
			c.log.InfoContext(ctx, "tenant move recovered: schema left on the other database archived", "tenant", t.Name,
				"database", t.MovingTo, "archived_as", archived)
		}
	}
	return c.clearMove(ctx, t.ID, t.MovingTo)
}
