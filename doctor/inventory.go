package doctor

import (
	"context"
	"fmt"
	"strings"

	"gorm.io/gorm"

	"tenantry/migrations"
	"tenantry/tenants"
)

// Kinds of relation the inventory tells apart.
const (
	kindTable    = "table"
	kindView     = "view"
	kindIndex    = "index"
	kindSequence = "sequence"
)

// relKey names a relation: its PostgreSQL schema ("" on SQLite) and name.
type relKey struct{ schema, name string }

// column is one column as the database describes it.
type column struct {
	Name    string
	Type    string
	NotNull bool
	Default string
	// PK is set on SQLite for primary-key columns; PostgreSQL shows its
	// primary key as an index instead.
	PK bool
}

// describe spells the column's definition for messages and comparison.
func (c column) describe() string {
	var b strings.Builder
	b.WriteString(c.Type)
	if c.PK {
		b.WriteString(" PRIMARY KEY")
	}
	if c.NotNull {
		b.WriteString(" NOT NULL")
	}
	if c.Default != "" {
		b.WriteString(" DEFAULT " + normalDefault(c.Default))
	}
	return b.String()
}

// normalDefault drops the name of a serial column's sequence, which
// names the schema or prefix it lives under and so differs per tenant.
func normalDefault(d string) string {
	if strings.HasPrefix(d, "nextval(") {
		return "nextval(<own sequence>)"
	}
	return d
}

// index is one index as the database describes it.
type index struct {
	Name    string
	Unique  bool
	Primary bool
	// Def is the definition without any name: on PostgreSQL the part of
	// pg_get_indexdef from USING on, on SQLite the origin and columns.
	Def string
}

func (i index) describe() string {
	var b strings.Builder
	if i.Primary {
		b.WriteString("PRIMARY KEY ")
	} else if i.Unique {
		b.WriteString("UNIQUE ")
	}
	b.WriteString(i.Def)
	return b.String()
}

// relation is a table, view, index or sequence.
type relation struct {
	kind      string
	size      int64 // bytes with indexes and TOAST; tables on PostgreSQL only
	toast     bool  // has a TOAST table (PostgreSQL)
	extension bool  // belongs to an extension: not tenantry's business
	columns   []column
	indexes   []index
}

// inventory is everything in the database the checks look at.
type inventory struct {
	// schemas maps each non-system PostgreSQL schema to whether an
	// extension owns it. Empty on SQLite.
	schemas map[string]bool
	rels    map[relKey]*relation
}

func newInventory() inventory {
	return inventory{schemas: map[string]bool{}, rels: map[relKey]*relation{}}
}

func (inv inventory) table(k relKey) *relation {
	if r := inv.rels[k]; r != nil && r.kind == kindTable {
		return r
	}
	return nil
}

// record is one row of a schema_migrations table.
type record struct {
	Version  int
	Name     string
	Checksum string
}

// recordBatch is how many tenants' record tables one UNION ALL reads: one
// round trip per batch rather than per tenant.
const recordBatch = 200

// readRecords reads the migration records of every tenant whose record
// table exists with the columns it needs; the others get none, and the
// storage and columns checks say what is wrong with their table.
func (p *placement) readRecords(ctx context.Context, tx *gorm.DB, layout tenants.Layout) error {
	var readable []catTenant
	for _, t := range p.tenants {
		r := p.inv.table(tenantPlace(layout, t.Schema).key("schema_migrations"))
		if r != nil && hasColumns(r, "version", "name", "checksum") {
			readable = append(readable, t)
		}
	}
	for start := 0; start < len(readable); start += recordBatch {
		batch := readable[start:min(start+recordBatch, len(readable))]
		parts := make([]string, len(batch))
		for i, t := range batch {
			parts[i] = fmt.Sprintf("SELECT %d AS i, version, name, checksum FROM %s", i,
				migrations.Quote(layout.Table(t.Schema, "schema_migrations")))
		}
		var rows []struct {
			I        int
			Version  int
			Name     string
			Checksum string
		}
		if err := tx.WithContext(ctx).Raw(strings.Join(parts, " UNION ALL ") + " ORDER BY i, version").Scan(&rows).Error; err != nil {
			return fmt.Errorf("read tenants' migration records: %w", err)
		}
		for _, t := range batch {
			p.records[t.Schema] = []record{}
		}
		for _, r := range rows {
			schema := batch[r.I].Schema
			p.records[schema] = append(p.records[schema], record{Version: r.Version, Name: r.Name, Checksum: r.Checksum})
		}
	}
	return nil
}

func hasColumns(r *relation, names ...string) bool {
	for _, n := range names {
		found := false
		for _, c := range r.columns {
			found = found || c.Name == n
		}
		if !found {
			return false
		}
	}
	return true
}

// PostgreSQL namespaces read: every user schema, or only this session's
// temporary schema (where the reference is built).
const (
	postgresUser = `n.nspname NOT LIKE 'pg\_%' AND n.nspname <> 'information_schema'`
	postgresTemp = `n.oid = pg_my_temp_schema()`
)

// readPostgres adds the schemas, relations, columns and indexes of the
// namespaces where selects to inv, in three catalog queries whatever the
// tenant count.
func readPostgres(ctx context.Context, tx *gorm.DB, where string, inv *inventory) error {
	q := tx.WithContext(ctx)
	var schemas []struct {
		Name      string
		Extension bool
	}
	if err := q.Raw(`SELECT n.nspname AS name,
	EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_namespace'::regclass AND d.objid = n.oid AND d.deptype = 'e') AS extension
FROM pg_namespace n WHERE ` + where).Scan(&schemas).Error; err != nil {
		return fmt.Errorf("list schemas: %w", err)
	}
	for _, s := range schemas {
		inv.schemas[s.Name] = s.Extension
	}

	var rels []struct {
		Schema    string
		Name      string
		Kind      string
		Toast     bool
		Size      int64
		Extension bool
	}
	// pg_total_relation_size is NULL, not an error, for a relation
	// dropped since the snapshot began.
	if err := q.Raw(`SELECT n.nspname AS schema, c.relname AS name, c.relkind::text AS kind,
	c.reltoastrelid <> 0 AS toast,
	CASE WHEN c.relkind IN ('r', 'p', 'm') THEN COALESCE(pg_total_relation_size(c.oid), 0) ELSE 0 END AS size,
	EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e') AS extension
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'f', 'v', 'm', 'S', 'i', 'I') AND ` + where).Scan(&rels).Error; err != nil {
		return fmt.Errorf("list relations: %w", err)
	}
	for _, r := range rels {
		kind := map[string]string{"r": kindTable, "p": kindTable, "f": kindTable, "v": kindView, "m": kindView,
			"S": kindSequence, "i": kindIndex, "I": kindIndex}[r.Kind]
		inv.rels[relKey{r.Schema, r.Name}] = &relation{kind: kind, size: r.Size, toast: r.Toast, extension: r.Extension}
	}

	var cols []struct {
		Schema  string
		Tbl     string
		Name    string
		Type    string
		NotNull bool
		Def     string
	}
	if err := q.Raw(`SELECT n.nspname AS schema, c.relname AS tbl, a.attname AS name,
	format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull AS not_null,
	COALESCE(pg_get_expr(d.adbin, d.adrelid), '') AS def
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p', 'f') AND ` + where + `
ORDER BY n.nspname, c.relname, a.attnum`).Scan(&cols).Error; err != nil {
		return fmt.Errorf("list columns: %w", err)
	}
	for _, c := range cols {
		if r := inv.rels[relKey{c.Schema, c.Tbl}]; r != nil {
			r.columns = append(r.columns, column{Name: c.Name, Type: c.Type, NotNull: c.NotNull, Default: c.Def})
		}
	}

	var idx []struct {
		Schema    string
		Tbl       string
		Name      string
		IsUnique  bool
		IsPrimary bool
		Def       string
	}
	if err := q.Raw(`SELECT n.nspname AS schema, t.relname AS tbl, i.relname AS name,
	x.indisunique AS is_unique, x.indisprimary AS is_primary, pg_get_indexdef(x.indexrelid) AS def
FROM pg_index x
JOIN pg_class i ON i.oid = x.indexrelid
JOIN pg_class t ON t.oid = x.indrelid
JOIN pg_namespace n ON n.oid = t.relnamespace
WHERE ` + where + `
ORDER BY n.nspname, t.relname, i.relname`).Scan(&idx).Error; err != nil {
		return fmt.Errorf("list indexes: %w", err)
	}
	for _, x := range idx {
		r := inv.rels[relKey{x.Schema, x.Tbl}]
		if r == nil {
			continue
		}
		// "CREATE UNIQUE INDEX name ON schema.table USING btree (email)":
		// only what follows USING is the same for every tenant.
		def := x.Def
		if i := strings.Index(def, " USING "); i >= 0 {
			def = def[i+1:]
		}
		r.indexes = append(r.indexes, index{Name: x.Name, Unique: x.IsUnique, Primary: x.IsPrimary, Def: def})
	}
	return nil
}

// sqliteUser selects the tables of sqlite_master that are not SQLite's own.
const sqliteUser = `m.name NOT LIKE 'sqlite\_%' ESCAPE '\'`

// readSQLite adds the tables, views, columns and indexes of a SQLite
// database to inv, using the table-valued pragma functions so that each
// is one query whatever the tenant count.
func readSQLite(ctx context.Context, tx *gorm.DB, inv *inventory) error {
	q := tx.WithContext(ctx)
	var rels []struct {
		Type string
		Name string
	}
	if err := q.Raw(`SELECT m.type, m.name FROM sqlite_master m WHERE m.type IN ('table', 'view', 'index') AND ` + sqliteUser).
		Scan(&rels).Error; err != nil {
		return fmt.Errorf("list tables: %w", err)
	}
	for _, r := range rels {
		inv.rels[relKey{"", r.Name}] = &relation{kind: r.Type}
	}

	var cols []struct {
		Tbl     string
		Name    string
		Type    string
		NotNull bool
		Def     string
		PK      int `gorm:"column:pk"`
	}
	if err := q.Raw(`SELECT m.name AS tbl, p.name AS name, p.type AS type, p."notnull" AS not_null,
	COALESCE(p.dflt_value, '') AS def, p.pk AS pk
FROM sqlite_master m JOIN pragma_table_info(m.name) p
WHERE m.type = 'table' AND ` + sqliteUser + ` ORDER BY m.name, p.cid`).Scan(&cols).Error; err != nil {
		return fmt.Errorf("list columns: %w", err)
	}
	for _, c := range cols {
		if r := inv.rels[relKey{"", c.Tbl}]; r != nil {
			r.columns = append(r.columns, column{Name: c.Name, Type: strings.ToLower(c.Type), NotNull: c.NotNull,
				Default: c.Def, PK: c.PK > 0})
		}
	}

	var idx []struct {
		Tbl      string
		Name     string
		IsUnique bool
		Origin   string
		Partial  bool
		Cols     string
	}
	if err := q.Raw(`SELECT m.name AS tbl, l.name AS name, l."unique" AS is_unique, l.origin AS origin,
	l.partial AS partial,
	(SELECT group_concat(COALESCE(c.name, '<expression>'), ', ') FROM
		(SELECT name FROM pragma_index_info(l.name) ORDER BY seqno) c) AS cols
FROM sqlite_master m JOIN pragma_index_list(m.name) l
WHERE m.type = 'table' AND ` + sqliteUser + ` ORDER BY m.name, l.name`).Scan(&idx).Error; err != nil {
		return fmt.Errorf("list indexes: %w", err)
	}
	for _, x := range idx {
		r := inv.rels[relKey{"", x.Tbl}]
		if r == nil {
			continue
		}
		def := "(" + x.Cols + ")"
		if x.Partial {
			def += " WHERE …"
		}
		r.indexes = append(r.indexes, index{Name: x.Name, Unique: x.IsUnique, Primary: x.Origin == "pk", Def: def})
	}
	return nil
}
