package tenants

import (
	"context"
	"fmt"

	"gorm.io/gorm"
)

// sharedTables are the catalog's logical tables: the only ones a statement
// without a tenant may reach, and the ones a tenant statement never may.
var sharedTables = map[string]bool{"tenants": true, "tenant_hosts": true, "schema_migrations": true}

// Scope hands out tenant-scoped GORM sessions. It owns the unscoped pool;
// nothing outside this package is given it.
type Scope struct {
	root   *gorm.DB
	layout Layout
}

// NewScope installs the scoping callbacks on db and returns the Scope that
// hands out sessions on it. Install it once per *gorm.DB, before any query.
//
// From then on every model-based statement on db is rewritten or refused
// according to the tenant in its context:
//   - with a tenant, the model's table is replaced by that tenant's
//     qualified table (schema.table or prefix_table); raw SQL, explicit
//     Table() names, joins, preloads and catalog models are refused with
//     ErrOutsideScope, because they could name another tenant's tables;
//   - without a tenant, catalog models are qualified with the shared schema
//     and any other model is refused with ErrNoTenant, so a forgotten scope
//     fails instead of reading or writing the shared schema.
func NewScope(db *gorm.DB, layout Layout) (*Scope, error) {
	s := &Scope{root: db, layout: layout}
	cb := db.Callback()
	steps := []struct {
		name     string
		register func() error
	}{
		{"create", func() error { return cb.Create().Before("gorm:create").Register("tenantry:scope", s.apply) }},
		{"query", func() error { return cb.Query().Before("gorm:query").Register("tenantry:scope", s.apply) }},
		{"update", func() error { return cb.Update().Before("gorm:update").Register("tenantry:scope", s.apply) }},
		{"delete", func() error { return cb.Delete().Before("gorm:delete").Register("tenantry:scope", s.apply) }},
		{"row", func() error { return cb.Row().Before("gorm:row").Register("tenantry:scope", s.apply) }},
		{"raw", func() error { return cb.Raw().Before("gorm:raw").Register("tenantry:scope", s.apply) }},
	}
	for _, st := range steps {
		if err := st.register(); err != nil {
			return nil, fmt.Errorf("register %s scope callback: %w", st.name, err)
		}
	}
	return s, nil
}

// Layout returns the table layout the scope enforces.
func (s *Scope) Layout() Layout { return s.layout }

// DB returns a fresh session for the tenant carried by ctx. It is the only
// way handlers reach the database. Build one per request; never keep it.
func (s *Scope) DB(ctx context.Context) (*gorm.DB, error) {
	if _, ok := FromContext(ctx); !ok {
		return nil, ErrNoTenant
	}
	return s.root.WithContext(ctx), nil
}

func (s *Scope) apply(db *gorm.DB) {
	if db.Error != nil {
		return
	}
	stmt := db.Statement
	t, scoped := FromContext(stmt.Context)
	raw := stmt.SQL.Len() > 0
	var table string
	explicitTable := false
	if stmt.Schema != nil {
		table = stmt.Schema.Table
		explicitTable = stmt.Table != "" && stmt.Table != table
	}

	if !scoped {
		switch {
		case raw || stmt.Schema == nil:
			// Raw SQL and model-less Table() calls belong to the catalog and
			// the migration runner, which spell out qualified names.
		case sharedTables[table] && !explicitTable:
			stmt.Table = s.layout.SharedTable(table)
		default:
			_ = db.AddError(fmt.Errorf("%w: table %s", ErrNoTenant, table))
		}
		return
	}

	switch {
	case raw:
		_ = db.AddError(fmt.Errorf("%w: raw SQL", ErrOutsideScope))
	case stmt.Schema == nil || stmt.TableExpr != nil || explicitTable:
		_ = db.AddError(fmt.Errorf("%w: statement without a tenant model", ErrOutsideScope))
	case sharedTables[table]:
		_ = db.AddError(fmt.Errorf("%w: catalog table %s", ErrOutsideScope, table))
	case len(stmt.Joins) > 0 || len(stmt.Preloads) > 0:
		_ = db.AddError(fmt.Errorf("%w: joins and preloads", ErrOutsideScope))
	default:
		stmt.Table = s.layout.Table(t.Schema, table)
	}
}
