package migrations

import (
	"context"
	"fmt"

	"gorm.io/gorm"
)

// Recorded reads the records of target t like Applied, but creates
// nothing: a target whose record table does not exist yet has no records
// and exists is false. Read-only commands (a dry run, a status report) use
// it, so that looking at a fresh database leaves it fresh.
func Recorded(ctx context.Context, db *gorm.DB, t Target) (recs []Record, exists bool, err error) {
	exists, err = HasTable(ctx, db, t, "schema_migrations")
	if err != nil || !exists {
		return nil, exists, err
	}
	recs, err = readRecords(ctx, db, t)
	return recs, true, err
}

// HasTable reports whether the logical table exists in target t, without
// touching it.
func HasTable(ctx context.Context, db *gorm.DB, t Target, table string) (bool, error) {
	name := t.Table(table)
	var n int64
	var err error
	switch t.Dialect {
	case Postgres:
		// to_regclass is NULL, not an error, for a missing table or schema.
		err = db.WithContext(ctx).Raw("SELECT count(*) FROM (SELECT to_regclass(?) AS r) x WHERE r IS NOT NULL", Quote(name)).Scan(&n).Error
	case SQLite:
		err = db.WithContext(ctx).Raw("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?", name).Scan(&n).Error
	default:
		return false, fmt.Errorf("look for table %s: dialect %q: want postgres or sqlite", name, t.Dialect)
	}
	if err != nil {
		return false, fmt.Errorf("look for table %s: %w", name, err)
	}
	return n > 0, nil
}

// Plan reads target t's records without creating anything (Recorded) and
// returns the version they show, 0 when none, and what of s is left to
// apply there. A changed or unknown applied migration is an error, as
// for Pending.
func (s Set) Plan(ctx context.Context, db *gorm.DB, t Target) (version int, pending Set, err error) {
	recs, _, err := Recorded(ctx, db, t)
	if err != nil {
		return 0, nil, err
	}
	if len(recs) > 0 {
		version = recs[len(recs)-1].Version
	}
	pending, err = s.Pending(recs, t.Dialect)
	return version, pending, err
}

// Labels names the migrations of s as NNNN_name, in order; never nil.
func (s Set) Labels() []string {
	out := make([]string, 0, len(s))
	for _, m := range s {
		out = append(out, fmt.Sprintf("%04d_%s", m.Version, m.Name))
	}
	return out
}
