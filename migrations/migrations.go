package migrations

import (
	"bytes"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"text/template"
	"time"

	"gorm.io/gorm"
)

// Dialect names the SQL dialect a migration file is written in.
type Dialect string

// Supported dialects.
const (
	Postgres Dialect = "postgres"
	SQLite   Dialect = "sqlite"
)

// Errors returned (wrapped) by Apply.
var (
	// ErrChecksum means an applied migration's file has changed since.
	ErrChecksum = errors.New("applied migration changed")
	// ErrUnknownVersion means the schema holds a migration this code does
	// not know: the database is newer than the binary.
	ErrUnknownVersion = errors.New("schema has a migration unknown to this binary")
)

// Migration is one versioned change, in every dialect.
type Migration struct {
	Version int
	Name    string
	sql     map[Dialect]string
}

// Checksum identifies the migration's text in a dialect.
func (m Migration) Checksum(d Dialect) string {
	sum := sha256.Sum256([]byte(m.sql[d]))
	return hex.EncodeToString(sum[:])
}

// Set is an ordered list of migrations.
type Set []Migration

// Latest is the version of the last migration, 0 for an empty set.
func (s Set) Latest() int {
	if len(s) == 0 {
		return 0
	}
	return s[len(s)-1].Version
}

// Target says where a set is applied and how its names are spelled there.
type Target struct {
	Dialect Dialect
	// Table turns a logical table name into the schema-qualified or
	// prefixed name it has in this target, unquoted (e.g. acme.users).
	Table func(name string) string
	// Index turns a logical index name into this target's index name.
	Index func(name string) string
}

//go:embed sql
var files embed.FS

var (
	shared = mustLoad("sql/shared")
	tenant = mustLoad("sql/tenant")
)

// Shared returns the migrations of the shared (catalog) schema.
func Shared() Set { return shared }

// Tenant returns the migrations of every tenant schema.
func Tenant() Set { return tenant }

var fileName = regexp.MustCompile(`^(\d{4})_([a-z0-9_]+)\.(postgres|sqlite)\.sql$`)

func mustLoad(dir string) Set {
	s, err := Load(files, dir)
	if err != nil {
		panic(err)
	}
	return s
}

// Load reads a set from the files of dir in fsys, named
// NNNN_name.<postgres|sqlite>.sql. Every version must exist in both
// dialects and versions must run 1, 2, 3… without gaps. The embedded sets
// are loaded with it; tests use it to build sets of their own.
func Load(fsys fs.FS, dir string) (Set, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", dir, err)
	}
	byVersion := map[int]*Migration{}
	for _, e := range entries {
		m := fileName.FindStringSubmatch(e.Name())
		if m == nil {
			return nil, fmt.Errorf("migration file %s/%s: name must be NNNN_name.<postgres|sqlite>.sql", dir, e.Name())
		}
		v, _ := strconv.Atoi(m[1])
		body, err := fs.ReadFile(fsys, path.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		mig := byVersion[v]
		if mig == nil {
			mig = &Migration{Version: v, Name: m[2], sql: map[Dialect]string{}}
			byVersion[v] = mig
		}
		if mig.Name != m[2] {
			return nil, fmt.Errorf("migration %04d has two names: %s and %s", v, mig.Name, m[2])
		}
		mig.sql[Dialect(m[3])] = string(body)
	}
	set := make(Set, 0, len(byVersion))
	for _, m := range byVersion {
		if len(m.sql) != 2 {
			return nil, fmt.Errorf("migration %04d_%s must exist for both postgres and sqlite", m.Version, m.Name)
		}
		set = append(set, *m)
	}
	sort.Slice(set, func(i, j int) bool { return set[i].Version < set[j].Version })
	for i, m := range set {
		if m.Version != i+1 {
			return nil, fmt.Errorf("%s: migration versions must run 1, 2, 3… without gaps; found %04d at position %d", dir, m.Version, i+1)
		}
	}
	return set, nil
}

var migrationName = regexp.MustCompile(`^[a-z0-9_]+$`)

// Append returns a copy of s with one more migration, numbered after s's
// last, whose SQL is given per dialect (both are required). It lets a
// caller extend the embedded set, e.g. a test adding a column or a
// deliberately failing step; s itself is not changed.
func (s Set) Append(name string, sql map[Dialect]string) (Set, error) {
	if !migrationName.MatchString(name) {
		return nil, fmt.Errorf("migration name %q must match %s", name, migrationName)
	}
	m := Migration{Version: s.Latest() + 1, Name: name, sql: map[Dialect]string{}}
	for _, d := range []Dialect{Postgres, SQLite} {
		src, ok := sql[d]
		if !ok {
			return nil, fmt.Errorf("migration %04d_%s must exist for both postgres and sqlite", m.Version, name)
		}
		m.sql[d] = src
	}
	return append(s[:len(s):len(s)], m), nil
}

// Quote quotes a possibly schema-qualified identifier.
func Quote(name string) string {
	parts := strings.Split(name, ".")
	for i, p := range parts {
		parts[i] = `"` + strings.ReplaceAll(p, `"`, `""`) + `"`
	}
	return strings.Join(parts, ".")
}

// Render returns the SQL statements of m for target t.
func (m Migration) Render(t Target) ([]string, error) {
	src, ok := m.sql[t.Dialect]
	if !ok {
		return nil, fmt.Errorf("migration %04d_%s: no %s version", m.Version, m.Name, t.Dialect)
	}
	tpl, err := template.New(m.Name).Funcs(template.FuncMap{
		"table": func(n string) string { return Quote(t.Table(n)) },
		"index": func(n string) string { return Quote(t.Index(n)) },
	}).Parse(src)
	if err != nil {
		return nil, fmt.Errorf("migration %04d_%s: %w", m.Version, m.Name, err)
	}
	var b bytes.Buffer
	if err := tpl.Execute(&b, nil); err != nil {
		return nil, fmt.Errorf("migration %04d_%s: %w", m.Version, m.Name, err)
	}
	return splitStatements(b.String()), nil
}

// splitStatements splits on semicolons that end a line; migration files
// keep one statement per such terminator and no semicolons inside strings.
func splitStatements(sql string) []string {
	var out []string
	var cur strings.Builder
	for _, line := range strings.Split(sql, "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "--") || trimmed == "" {
			continue
		}
		cur.WriteString(line)
		cur.WriteByte('\n')
		if strings.HasSuffix(trimmed, ";") {
			out = append(out, strings.TrimSpace(cur.String()))
			cur.Reset()
		}
	}
	if s := strings.TrimSpace(cur.String()); s != "" {
		out = append(out, s)
	}
	return out
}

// Record is one row of a schema's schema_migrations table.
type Record struct {
	Version   int
	Name      string
	Checksum  string
	AppliedAt time.Time
}

// Applied reads the records of target t. A target never migrated has none.
func Applied(ctx context.Context, db *gorm.DB, t Target) ([]Record, error) {
	if err := ensureRecordTable(ctx, db, t); err != nil {
		return nil, err
	}
	return readRecords(ctx, db, t)
}

func readRecords(ctx context.Context, db *gorm.DB, t Target) ([]Record, error) {
	var recs []Record
	err := db.WithContext(ctx).Raw(
		"SELECT version, name, checksum, applied_at FROM " + Quote(t.Table("schema_migrations")) + " ORDER BY version",
	).Scan(&recs).Error
	if err != nil {
		return nil, fmt.Errorf("read applied migrations: %w", err)
	}
	return recs, nil
}

func ensureRecordTable(ctx context.Context, db *gorm.DB, t Target) error {
	ts := "timestamptz"
	if t.Dialect == SQLite {
		ts = "datetime"
	}
	err := db.WithContext(ctx).Exec("CREATE TABLE IF NOT EXISTS " + Quote(t.Table("schema_migrations")) +
		" (version integer PRIMARY KEY, name text NOT NULL, checksum text NOT NULL, applied_at " + ts + " NOT NULL)").Error
	if err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	return nil
}

// Pending checks the applied records against the set and returns what is
// left to apply. A changed checksum or an unknown version is an error.
func (s Set) Pending(recs []Record, d Dialect) (Set, error) {
	byVersion := make(map[int]Migration, len(s))
	for _, m := range s {
		byVersion[m.Version] = m
	}
	done := make(map[int]bool, len(recs))
	for _, r := range recs {
		m, ok := byVersion[r.Version]
		if !ok {
			return nil, fmt.Errorf("%w: version %d (%s)", ErrUnknownVersion, r.Version, r.Name)
		}
		if r.Checksum != m.Checksum(d) {
			return nil, fmt.Errorf("%w: %04d_%s was applied with checksum %.12s, the code has %.12s", ErrChecksum, m.Version, m.Name, r.Checksum, m.Checksum(d))
		}
		done[r.Version] = true
	}
	var out Set
	for _, m := range s {
		if !done[m.Version] {
			out = append(out, m)
		}
	}
	return out, nil
}

// Apply applies every pending migration of s to target t using tx, which
// should be a transaction: a failure then leaves nothing behind. It returns
// the migrations applied.
func (s Set) Apply(ctx context.Context, tx *gorm.DB, t Target) (Set, error) {
	recs, err := Applied(ctx, tx, t)
	if err != nil {
		return nil, err
	}
	pending, err := s.Pending(recs, t.Dialect)
	if err != nil {
		return nil, err
	}
	if len(pending) > 0 && t.Dialect == Postgres {
		// database.statement_timeout is a backstop for requests; a
		// migration (an index over a large table) may rightly run longer.
		// SET LOCAL ends with this transaction, so the pooled connection
		// goes back with its own setting. lock_timeout stays: a migration
		// that waits for a lock would queue every request behind it.
		if err := tx.WithContext(ctx).Exec("SET LOCAL statement_timeout = 0").Error; err != nil {
			return nil, fmt.Errorf("lift statement_timeout for migrations: %w", err)
		}
	}
	for _, m := range pending {
		stmts, err := m.Render(t)
		if err != nil {
			return nil, err
		}
		for _, q := range stmts {
			if err := tx.WithContext(ctx).Exec(q).Error; err != nil {
				return nil, fmt.Errorf("migration %04d_%s: %w", m.Version, m.Name, err)
			}
		}
		err = tx.WithContext(ctx).Exec("INSERT INTO "+Quote(t.Table("schema_migrations"))+
			" (version, name, checksum, applied_at) VALUES (?, ?, ?, ?)",
			m.Version, m.Name, m.Checksum(t.Dialect), time.Now().UTC()).Error
		if err != nil {
			return nil, fmt.Errorf("record migration %04d_%s: %w", m.Version, m.Name, err)
		}
	}
	return pending, nil
}

// Tables returns every logical table the set names, plus the record table,
// so a tenant's tables can be found without listing the database.
func (s Set) Tables() []string {
	tables, _ := s.names()
	return tables
}

// Indexes returns every logical index name the set names. Under the prefix
// strategy these are the names that must move with a tenant's tables when
// they are archived, or a new tenant of the same schema could not create
// them again.
func (s Set) Indexes() []string {
	_, indexes := s.names()
	return indexes
}

// names renders every migration with recording name functions; the SQL
// itself is thrown away.
func (s Set) names() (tables, indexes []string) {
	seenT := map[string]bool{"schema_migrations": true}
	seenI := map[string]bool{}
	for _, m := range s {
		for d := range m.sql {
			t := Target{
				Dialect: d,
				Table:   func(n string) string { seenT[n] = true; return n },
				Index:   func(n string) string { seenI[n] = true; return n },
			}
			_, _ = m.Render(t)
		}
	}
	return sortedKeys(seenT), sortedKeys(seenI)
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for n := range m {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}
