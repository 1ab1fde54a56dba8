package doctor

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/glebarez/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"tenantry/migrations"
)

// reference is what a tenant at one version should look like: the code's
// tenant migrations up to that version, applied to an empty place and
// read back with the same queries as the tenants. Deriving it, rather than
// listing columns and indexes here, keeps the doctor right as migrations
// are added, and compares like with like (the server's own spelling of
// types, defaults and index definitions).
type reference struct {
	version int
	place   place
	inv     *inventory
}

// tables returns the reference's logical tables and views, sorted.
func (r *reference) tables() []string {
	var out []string
	for k, rel := range r.inv.rels {
		if k.schema != r.place.schema || (rel.kind != kindTable && rel.kind != kindView) {
			continue
		}
		if logical, ok := strings.CutPrefix(k.name, r.place.prefix); ok {
			out = append(out, logical)
		}
	}
	slices.Sort(out)
	return out
}

// relations counts the relations one tenant at this version has, each at
// least one file in every backend that touches it: tables, indexes,
// sequences, and a TOAST table with its index per table that has one.
func (r *reference) relations() int {
	n := 0
	for k, rel := range r.inv.rels {
		if k.schema != r.place.schema || !strings.HasPrefix(k.name, r.place.prefix) {
			continue
		}
		switch rel.kind {
		case kindTable, kindIndex, kindSequence:
			n++
			if rel.toast {
				n += 2
			}
		}
	}
	return n
}

// referencePrefix names version v's relations in the scratch place.
func referencePrefix(v int) string { return "doctor_ref" + strconv.Itoa(v) + "_" }

// buildReferences builds the reference of each version in versions (each
// at least 1).
//
// On PostgreSQL they are built in this session's temporary schema inside
// a transaction that is always rolled back: only the TEMP privilege is
// needed, no other session can see them, and nothing outlives the
// transaction. On SQLite they are built in a private in-memory database,
// so the deployment's file is not even locked.
func buildReferences(ctx context.Context, db *gorm.DB, d migrations.Dialect, set migrations.Set, versions []int) (map[int]*reference, error) {
	refs := map[int]*reference{}
	if len(versions) == 0 {
		return refs, nil
	}
	apply := func(tx *gorm.DB, table func(prefix, name string) string) error {
		for _, v := range versions {
			p := referencePrefix(v)
			target := migrations.Target{
				Dialect: d,
				Table:   func(n string) string { return table(p, n) },
				Index:   func(i string) string { return p + i },
			}
			if _, err := set[:v].Apply(ctx, tx, target); err != nil {
				return fmt.Errorf("version %d: %w", v, err)
			}
		}
		return nil
	}
	inv := newInventory()
	schema := ""
	if d == migrations.Postgres {
		tx := db.WithContext(ctx).Begin()
		if tx.Error != nil {
			return nil, tx.Error
		}
		// Rolled back whatever happens: the reference is read, never kept.
		defer tx.Rollback()
		if err := apply(tx, func(p, n string) string { return "pg_temp." + p + n }); err != nil {
			return nil, err
		}
		if err := readPostgres(ctx, tx, postgresTemp, &inv); err != nil {
			return nil, err
		}
		if err := tx.Raw("SELECT nspname FROM pg_namespace WHERE oid = pg_my_temp_schema()").Scan(&schema).Error; err != nil {
			return nil, fmt.Errorf("name the temporary schema: %w", err)
		}
	} else {
		mem, err := gorm.Open(sqlite.Open("file::memory:"), &gorm.Config{Logger: logger.Discard})
		if err != nil {
			return nil, fmt.Errorf("open an in-memory SQLite database: %w", err)
		}
		sqlDB, err := mem.DB()
		if err != nil {
			return nil, err
		}
		defer sqlDB.Close()
		// Every connection to :memory: is a database of its own.
		sqlDB.SetMaxOpenConns(1)
		if err := apply(mem.WithContext(ctx), func(p, n string) string { return p + n }); err != nil {
			return nil, err
		}
		if err := readSQLite(ctx, mem, &inv); err != nil {
			return nil, err
		}
	}
	for _, v := range versions {
		refs[v] = &reference{version: v, place: place{schema: schema, prefix: referencePrefix(v)}, inv: &inv}
	}
	return refs, nil
}

// recordedVersion is the newest version among recs, 0 for none.
func recordedVersion(recs []record) int {
	v := 0
	for _, r := range recs {
		v = max(v, r.Version)
	}
	return v
}

// expectedVersion is the version a tenant's tables are compared against:
// the newer of what the catalog and the tenant's own records claim (the
// migrations check reports when they disagree), never past the code's.
func expectedVersion(t catTenant, recs []record, latest int) int {
	return min(max(t.SchemaVersion, recordedVersion(recs)), latest)
}

// referenceVersions lists the versions the tenants need references of,
// and always the code's latest (the settings check counts its relations).
func (a *audit) referenceVersions(snap *snapshot) []int {
	latest := a.set.Latest()
	seen := map[int]bool{}
	if latest > 0 {
		seen[latest] = true
	}
	for _, p := range snap.audited() {
		for _, t := range p.tenants {
			if v := expectedVersion(t, p.records[t.Schema], latest); v > 0 {
				seen[v] = true
			}
		}
	}
	out := make([]int, 0, len(seen))
	for v := range seen {
		out = append(out, v)
	}
	slices.Sort(out)
	return out
}
