package tenants_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gorm.io/gorm"

	"tenantry/config"
	"tenantry/database"
	"tenantry/internal/testenv"
	"tenantry/migrations"
	"tenantry/tenants"
)

// fleet is a real database with a bootstrapped catalog, on which tests
// provision tenants with one migration set and migrate them with another.
type fleet struct {
	dbc    config.Database
	db     *gorm.DB
	layout tenants.Layout
}

// layouts are the database and strategy pairs the migration tests cover.
var layouts = []struct {
	driver   string
	strategy tenants.Strategy
}{
	{"postgres", tenants.StrategySchema},
	{"postgres", tenants.StrategyPrefix},
	{"sqlite", tenants.StrategyPrefix},
}

// eachLayout runs fn in parallel subtests, one per layout, each on a
// fleet of its own.
func eachLayout(t *testing.T, fn func(t *testing.T, f *fleet)) {
	for _, l := range layouts {
		t.Run(l.driver+"/"+string(l.strategy), func(t *testing.T) {
			t.Parallel()
			fn(t, newFleet(t, l.driver, l.strategy))
		})
	}
}

func newFleet(t testing.TB, driver string, strategy tenants.Strategy) *fleet {
	t.Helper()
	f := &fleet{dbc: testenv.Database(t, driver)}
	f.dbc.MaxOpenConns, f.dbc.MaxIdleConns = 8, 8
	f.db, f.layout, _ = openScoped(t, f.dbc, strategy)
	if err := f.catalog(t, migrations.Tenant()).Bootstrap(context.Background()); err != nil {
		t.Fatal(err)
	}
	return f
}

// openScoped opens a pool on dbc with the tenant scope installed, as
// app.Open does; a second call gives a second, independent process view.
func openScoped(t testing.TB, dbc config.Database, strategy tenants.Strategy) (*gorm.DB, tenants.Layout, *tenants.Scope) {
	t.Helper()
	db, dialect, err := database.Open(context.Background(), dbc, testenv.Logger(t), database.RouteBy(tenants.RouteKey))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = database.Close(db) })
	layout, err := tenants.NewLayout(strategy, dialect)
	if err != nil {
		t.Fatal(err)
	}
	scope, err := tenants.NewScope(db, layout)
	if err != nil {
		t.Fatal(err)
	}
	return db, layout, scope
}

func (f *fleet) catalog(t testing.TB, set migrations.Set) *tenants.Catalog {
	return tenants.NewCatalog(f.db, f.layout, testenv.Logger(t), tenants.WithMigrations(set))
}

// provision creates tenants name0000… up to n with set, four at a time.
func (f *fleet) provision(t testing.TB, set migrations.Set, n int) []string {
	t.Helper()
	c := f.catalog(t, set)
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("t%04d", i)
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range min(4, n) {
		wg.Go(func() {
			for i := next.Add(1) - 1; i < int64(n); i = next.Add(1) - 1 {
				if _, err := c.Create(context.Background(), tenants.Spec{Name: names[i], Hosts: []string{names[i] + ".test"}}); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	return names
}

// version is the tenant's schema_version in the catalog.
func (f *fleet) version(t testing.TB, name string) int {
	t.Helper()
	var v []int
	err := f.db.Raw("SELECT schema_version FROM "+migrations.Quote(f.layout.SharedTable("tenants"))+" WHERE name = ?", name).Scan(&v).Error
	if err != nil || len(v) != 1 {
		t.Fatalf("version of %s: %v %v", name, v, err)
	}
	return v[0]
}

// record is one schema_migrations row as the tests compare them.
type record struct {
	Version   int
	AppliedAt time.Time
}

// records reads the schema's own schema_migrations rows.
func (f *fleet) records(t testing.TB, schema string) []record {
	t.Helper()
	var rs []record
	err := f.db.Raw("SELECT version, applied_at FROM " + migrations.Quote(f.layout.Table(schema, "schema_migrations")) + " ORDER BY version").Scan(&rs).Error
	if err != nil {
		t.Fatalf("records of %s: %v", schema, err)
	}
	return rs
}

// hasColumn looks the column up in the database's own catalog.
func (f *fleet) hasColumn(t testing.TB, schema, table, column string) bool {
	t.Helper()
	var n int64
	var err error
	if f.layout.Dialect == migrations.SQLite {
		err = f.db.Raw("SELECT count(*) FROM pragma_table_info(?) WHERE name = ?", f.layout.Table(schema, table), column).Scan(&n).Error
	} else {
		nsp, tbl := schema, table
		if f.layout.Strategy == tenants.StrategyPrefix {
			nsp, tbl = tenants.PrefixSchema, schema+"_"+table
		}
		err = f.db.Raw("SELECT count(*) FROM information_schema.columns WHERE table_schema = ? AND table_name = ? AND column_name = ?",
			nsp, tbl, column).Scan(&n).Error
	}
	if err != nil {
		t.Fatalf("column %s.%s.%s: %v", schema, table, column, err)
	}
	return n == 1
}

// insertUser writes a user straight into a tenant's table.
func (f *fleet) insertUser(t testing.TB, schema, name, email string) {
	t.Helper()
	now := time.Now().UTC()
	err := f.db.Exec("INSERT INTO "+migrations.Quote(f.layout.Table(schema, "users"))+
		" (name, email, created_at, updated_at) VALUES (?, ?, ?, ?)", name, email, now, now).Error
	if err != nil {
		t.Fatalf("insert user into %s: %v", schema, err)
	}
}

// withMigration is the embedded tenant set plus one migration whose SQL
// is the same in both dialects.
func withMigration(t testing.TB, name, sql string) migrations.Set {
	t.Helper()
	set, err := migrations.Tenant().Append(name, map[migrations.Dialect]string{migrations.Postgres: sql, migrations.SQLite: sql})
	if err != nil {
		t.Fatal(err)
	}
	return set
}

const addNickname = `ALTER TABLE {{table "users"}} ADD COLUMN nickname text;`
