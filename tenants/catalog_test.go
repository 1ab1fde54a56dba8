package tenants_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"tenantry/app"
	"tenantry/config"
	"tenantry/internal/testenv"
	"tenantry/migrations"
	"tenantry/tenants"
)

// served opens the whole app on driver's fresh database with the given
// tenant migrations, behind a real HTTP server.
func served(t *testing.T, dbc config.Database, opts ...app.Option) (*app.App, *httptest.Server) {
	t.Helper()
	a, err := app.Open(context.Background(), testenv.Config(dbc), testenv.Logger(t), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })
	srv := httptest.NewServer(a.Handler)
	t.Cleanup(srv.Close)
	return a, srv
}

// get returns the status, content type and problem type (if any) of a
// GET of path on srv.
func get(t *testing.T, srv *httptest.Server, path string) (status int, contentType, problem string) {
	t.Helper()
	resp, err := http.Get(srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var p struct{ Type string }
	_ = json.NewDecoder(resp.Body).Decode(&p)
	return resp.StatusCode, resp.Header.Get("Content-Type"), p.Type
}

// TestBehindTenantNotServed deploys a binary with one more migration than
// a tenant has: the tenant gets 503 problem+json, never a half-migrated
// schema, until Migrate brings it up; then it is served.
func TestBehindTenantNotServed(t *testing.T) {
	for _, driver := range testenv.Drivers {
		t.Run(driver, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			dbc := testenv.Database(t, driver)
			next := withMigration(t, "nickname", addNickname)
			a, srv := served(t, dbc, app.WithTenantMigrations(next))
			host := strings.TrimPrefix(srv.URL, "http://")

			// The tenant as the previous binary left it: at 0001.
			old := tenants.NewCatalog(a.DB, a.Catalog.Layout(), testenv.Logger(t))
			if _, err := old.Create(ctx, tenants.Spec{Name: "acme", Hosts: []string{host}}); err != nil {
				t.Fatal(err)
			}
			status, ct, problem := get(t, srv, "/api/users")
			if status != http.StatusServiceUnavailable || !strings.HasPrefix(ct, "application/problem+json") ||
				problem != "urn:tenantry:problem:tenant-migrating" {
				t.Fatalf("behind tenant: %d %s %q, want 503 problem+json tenant-migrating", status, ct, problem)
			}

			rep, err := a.Catalog.Migrate(ctx, tenants.MigrateOptions{})
			if err != nil || rep.Migrated != 1 {
				t.Fatalf("Migrate: %+v, %v", rep, err)
			}
			if status, _, _ := get(t, srv, "/api/users"); status != http.StatusOK {
				t.Errorf("after Migrate: %d, want 200", status)
			}
		})
	}
}

// TestOffboarding suspends, resumes and removes a tenant over real HTTP,
// then creates a tenant of the same schema again, under every layout:
// archived tables and their indexes must not stand in its way.
func TestOffboarding(t *testing.T) {
	for _, l := range layouts {
		t.Run(l.driver+"/"+string(l.strategy), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			cfg := testenv.Config(testenv.Database(t, l.driver))
			cfg.Tenancy.Strategy = string(l.strategy)
			a, err := app.Open(ctx, cfg, testenv.Logger(t))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = a.Close() })
			srv := httptest.NewServer(a.Handler)
			t.Cleanup(srv.Close)
			host := strings.TrimPrefix(srv.URL, "http://")
			f := &fleet{db: a.DB, layout: a.Catalog.Layout()}
			c := a.Catalog

			create := func() {
				t.Helper()
				if _, err := c.Create(ctx, tenants.Spec{Name: "acme", Hosts: []string{host}}); err != nil {
					t.Fatalf("create acme: %v", err)
				}
			}
			create()
			f.insertUser(t, "acme", "Ada", "ada@example.com")
			steps := []struct {
				do   func() error
				want int
			}{
				{func() error { return nil }, http.StatusOK},
				{func() error { _, err := c.SetStatus(ctx, "acme", tenants.StatusSuspended); return err }, http.StatusForbidden},
				{func() error { _, err := c.SetStatus(ctx, "acme", tenants.StatusActive); return err }, http.StatusOK},
				{func() error { _, err := c.Remove(ctx, "acme", false); return err }, http.StatusNotFound},
			}
			for i, s := range steps {
				if err := s.do(); err != nil {
					t.Fatalf("step %d: %v", i, err)
				}
				if got, _, _ := get(t, srv, "/api/users"); got != s.want {
					t.Errorf("step %d: status %d, want %d", i, got, s.want)
				}
			}

			// Same schema again: its new tables, indexes included, are
			// created afresh and the archived user stays archived.
			create()
			f.insertUser(t, "acme", "Ada", "ada@example.com")
			if got, _, _ := get(t, srv, "/api/users"); got != http.StatusOK {
				t.Errorf("re-created acme: status %d, want 200", got)
			}
			if archived := archivedUsers(t, f); archived != 1 {
				t.Errorf("archived users %d, want 1", archived)
			}

			if _, err := c.Remove(ctx, "acme", true); err != nil {
				t.Fatal(err)
			}
			create()
			if _, err := c.Remove(ctx, "nobody", true); !errors.Is(err, tenants.ErrNotFound) {
				t.Errorf("remove unknown: %v, want ErrNotFound", err)
			}
		})
	}
}

// archivedUsers counts the rows of every archived users table.
func archivedUsers(t *testing.T, f *fleet) int {
	t.Helper()
	var tables []string
	var err error
	switch {
	case f.layout.Dialect == migrations.SQLite:
		err = f.db.Raw("SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'archived%users'").Scan(&tables).Error
	case f.layout.Strategy == tenants.StrategyPrefix:
		err = f.db.Raw("SELECT schemaname || '.' || tablename FROM pg_tables WHERE schemaname = ? AND tablename LIKE 'archived%users'", tenants.PrefixSchema).Scan(&tables).Error
	default:
		err = f.db.Raw("SELECT schemaname || '.' || tablename FROM pg_tables WHERE schemaname LIKE 'archived%' AND tablename = 'users'").Scan(&tables).Error
	}
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, tb := range tables {
		var n int
		if err := f.db.Raw("SELECT count(*) FROM " + migrations.Quote(tb)).Scan(&n).Error; err != nil {
			t.Fatal(err)
		}
		total += n
	}
	return total
}
