package tenants_test

import (
	"context"
	"strings"
	"testing"

	"gorm.io/gorm"

	"tenantry/config"
	"tenantry/internal/testenv"
	"tenantry/tenants"
)

// stack is the tenants package wired on a real database, without HTTP.
type stack struct {
	db      *gorm.DB
	scope   *tenants.Scope
	catalog *tenants.Catalog
	layout  tenants.Layout
}

// stackDrivers are the database and strategy pairs the package tests run
// on: each driver with its default strategy, and PostgreSQL with prefixes.
var stackDrivers = []string{"sqlite", "postgres", "postgres/prefix"}

// newStack opens driver's fresh database with maxOpen connections and
// provisions the named tenants (schema = name). driver may carry a
// strategy after a slash, as in "postgres/prefix".
func newStack(t testing.TB, driver string, maxOpen int, names ...string) *stack {
	t.Helper()
	return newStackGroups(t, driver, maxOpen, 0, names...)
}

// newStackGroups is newStack with the pool split into groups connection
// groups (0: the automatic number).
func newStackGroups(t testing.TB, driver string, maxOpen, groups int, names ...string) *stack {
	t.Helper()
	ctx := context.Background()
	driver, strategy, _ := strings.Cut(driver, "/")
	if strategy == "" {
		strategy = config.DefaultStrategy(driver)
	}
	dbc := testenv.Database(t, driver)
	dbc.MaxOpenConns, dbc.MaxIdleConns, dbc.PoolGroups = maxOpen, maxOpen, groups
	s := openStack(t, dbc, strategy)
	for _, n := range names {
		if _, err := s.catalog.Create(ctx, tenants.Spec{Name: n, Hosts: []string{n + ".test"}}); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// newStackOn opens an existing database with its default strategy.
func newStackOn(t testing.TB, dbc config.Database) *stack {
	t.Helper()
	return openStack(t, dbc, config.DefaultStrategy(dbc.Driver))
}

func openStack(t testing.TB, dbc config.Database, strategy string) *stack {
	t.Helper()
	db, layout, scope := openScoped(t, dbc, tenants.Strategy(strategy))
	cat := tenants.NewCatalog(db, layout, testenv.Logger(t))
	if err := cat.Bootstrap(context.Background()); err != nil {
		t.Fatal(err)
	}
	return &stack{db: db, scope: scope, catalog: cat, layout: layout}
}

// ctx returns a context carrying the named tenant, as the middleware does.
func (s *stack) ctx(t testing.TB, name string) context.Context {
	t.Helper()
	tn, err := s.catalog.Get(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return tenants.NewContext(context.Background(), tn)
}

// session returns the scoped session for the named tenant.
func (s *stack) session(t testing.TB, name string) (context.Context, *gorm.DB) {
	t.Helper()
	ctx := s.ctx(t, name)
	db, err := s.scope.DB(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return ctx, db
}

// rows counts the rows of a tenant's table straight from the database,
// bypassing the scope, to check where data really landed.
func (s *stack) rows(t testing.TB, schema, table string) int64 {
	t.Helper()
	var n int64
	q := "SELECT count(*) FROM " + quote(s.layout.Table(schema, table))
	if err := s.db.Raw(q).Scan(&n).Error; err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}
