package tenants

import (
	"context"
	"fmt"

	"gorm.io/gorm"

	"tenantry/database"
	"tenantry/migrations"
)

// Storage is what a tenant's data takes in the database: its tables'
// exact row counts and, on PostgreSQL, their bytes on disk.
type Storage struct {
	// Tables lists the tenant's tables by logical name, sorted, the
	// migration record table among them. A table the tenant does not have
	// (a tenant behind the code) is left out.
	Tables []TableStorage `json:"tables"`
	// Rows is the sum of the tables' rows.
	Rows int64 `json:"rows"`
	// Bytes is the sum of the tables' bytes on PostgreSQL, and nil on
	// SQLite, which cannot tell one table's pages from another's (see
	// Usage).
	Bytes *int64 `json:"bytes"`
	// File is, on SQLite only, the size of the whole database file,
	// which every tenant and the catalog share.
	File *FileStorage `json:"database_file,omitempty"`
}

// TableStorage is one of a tenant's tables.
type TableStorage struct {
	// Table is the logical name ("users"), the same under every layout.
	Table string `json:"table"`
	// Rows is the table's exact row count.
	Rows int64 `json:"rows"`
	// Bytes is, on PostgreSQL, pg_total_relation_size of the table (its
	// heap, indexes and TOAST) plus the sequences its columns own; nil on
	// SQLite.
	Bytes *int64 `json:"bytes"`
}

// FileStorage is the size of a SQLite database file in pages, as its
// PRAGMAs page_size, page_count and freelist_count report it.
type FileStorage struct {
	PageSize  int64 `json:"page_size"`
	Pages     int64 `json:"pages"`
	FreePages int64 `json:"free_pages"`
	// Bytes is PageSize × Pages.
	Bytes int64 `json:"bytes"`
}

// Usage measures tenants' storage. Like the migration runner, it reaches
// a tenant's tables only by the names Layout gives the tenant's schema
// for the tables of the catalog's migration set, never by a pattern or a
// listing, so it reads no other tenant's tables under either layout (a
// prefix is not a pattern: tenant "a"'s tables are never "a_b"'s). It
// reads only: count(*) and the database's size functions.
//
// SQLite as tenantry ships it (modernc.org/sqlite through
// glebarez/sqlite) is built without the dbstat and sqlite_dbpage virtual
// tables, the only ways SQLite offers to find the pages of one table, so
// on SQLite Usage reports exact rows per table and, instead of bytes per
// tenant, the whole file's page count.
type Usage struct {
	db     *gorm.DB
	layout Layout
	set    migrations.Set
}

// NewUsage returns a Usage for the tenants of catalog: the same pool,
// layout and migration set.
func NewUsage(catalog *Catalog) *Usage {
	return &Usage{db: catalog.db, layout: catalog.layout, set: catalog.set}
}

// Measure counts the rows of every table of t and, on PostgreSQL, sums
// their sizes. Row counts are exact, so it reads every row: its cost
// grows with the tenant's data. ctx must carry no tenant (the scope
// refuses the raw SQL it runs inside a tenant's request).
func (u *Usage) Measure(ctx context.Context, t *Tenant) (*Storage, error) {
	db := u.db.WithContext(database.OnPlacement(ctx, t.Database))
	target := u.layout.TenantTarget(t.Schema)
	st := &Storage{Tables: []TableStorage{}}
	pg := u.layout.Dialect == migrations.Postgres
	if pg {
		st.Bytes = new(int64)
	}
	for _, table := range u.set.Tables() {
		ts, found, err := u.table(ctx, db, target, table)
		if err != nil {
			return nil, fmt.Errorf("measure tenant %q: %w", t.Name, err)
		}
		if !found {
			continue
		}
		st.Tables = append(st.Tables, ts)
		st.Rows += ts.Rows
		if pg {
			*st.Bytes += *ts.Bytes
		}
	}
	if !pg {
		f, err := sqliteFile(db)
		if err != nil {
			return nil, fmt.Errorf("measure tenant %q: %w", t.Name, err)
		}
		st.File = f
	}
	return st, nil
}

// table measures one logical table of target; found is false when the
// tenant does not have it, or no longer has it (removed meanwhile).
func (u *Usage) table(ctx context.Context, db *gorm.DB, target migrations.Target, table string) (ts TableStorage, found bool, err error) {
	name := migrations.Quote(target.Table(table))
	ts.Table = table
	if u.layout.Dialect == migrations.Postgres {
		// No row when the table does not exist: to_regclass is NULL.
		var size []int64
		err := db.Raw(`SELECT pg_total_relation_size(c.oid) + coalesce((
			SELECT sum(pg_relation_size(d.objid)) FROM pg_depend d
			JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'
			WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass AND d.refobjid = c.oid), 0)
			FROM pg_class c WHERE c.oid = to_regclass(?)`, name).Scan(&size).Error
		if err != nil {
			return ts, false, fmt.Errorf("size of %s: %w", table, err)
		}
		if len(size) == 0 {
			return ts, false, nil
		}
		ts.Bytes = &size[0]
	} else if ok, err := migrations.HasTable(ctx, db, target, table); err != nil || !ok {
		return ts, false, err
	}
	if err := db.Raw("SELECT count(*) FROM " + name).Scan(&ts.Rows).Error; err != nil {
		// A removal may have dropped or renamed the table since it was
		// found: that is a table the tenant no longer has, not a failure.
		if ok, herr := migrations.HasTable(ctx, db, target, table); herr == nil && !ok {
			return ts, false, nil
		}
		return ts, false, fmt.Errorf("count rows of %s: %w", table, err)
	}
	return ts, true, nil
}

// sqliteFile reads the size of the SQLite database file.
func sqliteFile(db *gorm.DB) (*FileStorage, error) {
	f := &FileStorage{}
	for _, p := range []struct {
		pragma string
		into   *int64
	}{{"page_size", &f.PageSize}, {"page_count", &f.Pages}, {"freelist_count", &f.FreePages}} {
		if err := db.Raw("PRAGMA " + p.pragma).Scan(p.into).Error; err != nil {
			return nil, fmt.Errorf("read PRAGMA %s: %w", p.pragma, err)
		}
	}
	f.Bytes = f.PageSize * f.Pages
	return f, nil
}
