package metrics_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"tenantry/database"
	"tenantry/internal/testenv"
	"tenantry/metrics"
	"tenantry/middleware"
	"tenantry/tenants"
)

// budgetTenants is the number of active tenants the /metrics budget is
// held to (issue 10: under 10,000 series and 2 MB at 10,000 tenants).
const budgetTenants = 10_000

// catalog is an in-memory tenants.Lookup, so that a resolver can cache
// 10,000 tenants without provisioning them.
type catalog []tenants.Tenant

func (c catalog) ByHost(_ context.Context, host string) (*tenants.Tenant, error) {
	for i := range c {
		if slices.ContainsFunc(c[i].Hosts, func(h tenants.TenantHost) bool { return h.Host == host }) {
			return &c[i], nil
		}
	}
	return nil, tenants.ErrUnknownHost
}

func (c catalog) List(context.Context) ([]tenants.Tenant, error) { return slices.Clone(c), nil }

// busyFleet returns metrics that have seen n active tenants, each with
// the traffic of a real client (its tenant, its list and one user, a
// create that succeeds and one that fails validation, a missing user, the
// pages and a form post), plus the requests that have no tenant (health
// checks, assets, unknown hosts, the admin API), and whose sources are a
// real SQLite pool and a resolver that has loaded the n tenants. It
// returns the URL of an HTTP server that serves them.
func busyFleet(t testing.TB, n, series int) (*metrics.Metrics, string) {
	t.Helper()
	ctx := context.Background()
	log := testenv.Logger(t)
	health := database.NewHealth(log)
	db, _, err := database.Open(ctx, testenv.SQLite(t), log, database.WithHealth(health))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = database.Close(db) })
	pool, err := database.Pool(db)
	if err != nil {
		t.Fatal(err)
	}
	cat := make(catalog, n)
	for i := range cat {
		name := fmt.Sprintf("tenant-%05d", i)
		cat[i] = tenants.Tenant{Name: name, Schema: name, Status: tenants.StatusActive,
			Hosts: []tenants.TenantHost{{Host: name + ".example.com"}}}
	}
	cat[0].Status = tenants.StatusSuspended
	resolver := tenants.NewResolver(cat, time.Minute)
	if err := resolver.Refresh(ctx); err != nil {
		t.Fatal(err)
	}

	m := metrics.New(metrics.Options{TenantSeries: series}, metrics.Sources{Resolver: resolver, Pool: pool, Health: health})
	mix := []struct {
		method, route string
		status        int
	}{
		{"GET", "/api/tenant", 200},
		{"GET", "/api/users", 200},
		{"GET", "/api/users/:id", 200},
		{"GET", "/api/users/:id", 404},
		{"POST", "/api/users", 201},
		{"POST", "/api/users", 422},
		{"GET", "/", 200},
		{"POST", "/users", 303},
	}
	for i, t := range cat {
		// Uneven traffic, so that ranking has something to rank.
		for range 1 + i%7 {
			for _, r := range mix {
				m.Observe(middleware.Record{Server: "tenants", Tenant: t.Name, Host: t.Hosts[0].Host,
					Method: r.method, Route: r.route, Status: r.status, Duration: time.Duration(i%50) * time.Millisecond})
			}
		}
	}
	for _, r := range []middleware.Record{
		{Server: "tenants", Method: "GET", Route: "/healthz", Status: 200},
		{Server: "tenants", Method: "GET", Route: "/readyz", Status: 503},
		{Server: "tenants", Method: "GET", Route: "/static/*file", Status: 200},
		{Server: "tenants", Method: "GET", Route: "", Status: 404},
		{Server: "admin", Method: "GET", Route: "/admin/tenants", Status: 200},
		{Server: "admin", Method: "POST", Route: "/admin/tenants", Status: 201},
		{Server: "admin", Method: "GET", Route: "/metrics", Status: 200},
		{Server: "admin", Method: "GET", Route: "", Status: 401},
	} {
		m.Observe(r)
	}
	srv := httptest.NewServer(m.Handler())
	t.Cleanup(srv.Close)
	return m, srv.URL
}

// TestTenThousandTenantsStayUnderBudget holds the goal for
// /metrics at 10,000 active tenants with the default tenant_series:
// under 10,000 series and under 2 MB, uncompressed, in a real scrape
// with every source set. These are counts and sizes, not timings; the
// scrape's time is BenchmarkScrape.
func TestTenThousandTenantsStayUnderBudget(t *testing.T) {
	series := 100
	_, url := busyFleet(t, budgetTenants, series)
	s := metrics.ScrapeURL(t, url, "")
	if n := s.Series(); n >= 10_000 {
		t.Errorf("/metrics at %d tenants has %d series, want under 10,000", budgetTenants, n)
	} else {
		t.Logf("/metrics at %d tenants: %d series, %d bytes", budgetTenants, n, len(s.Body))
	}
	if len(s.Body) >= 2<<20 {
		t.Errorf("/metrics at %d tenants is %d bytes, want under 2 MB", budgetTenants, len(s.Body))
	}
	for _, family := range []string{"tenantry_http_requests_total", "tenantry_tenant_request_duration_seconds"} {
		values := s.LabelValues(family, "tenant")
		delete(values, "") // requests without a tenant
		if len(values) > series+1 {
			t.Errorf("%s has %d tenant values, want at most %d (tenant_series) + other", family, len(values), series)
		}
	}
	// Every source is in the budget too.
	for _, tc := range []struct {
		family string
		labels []string
		want   float64
	}{
		{"tenantry_tenants", []string{"status", "active"}, budgetTenants - 1},
		{"tenantry_tenants", []string{"status", "suspended"}, 1},
		{"tenantry_catalog_reloads_total", []string{"result", "ok"}, 1},
		{"tenantry_database_up", nil, 1},
	} {
		if got, _ := s.Value(tc.family, tc.labels...); got != tc.want {
			t.Errorf("%s%v = %v, want %v", tc.family, tc.labels, got, tc.want)
		}
	}
	if _, ok := s.Value("tenantry_db_pool_open_connections", "group", "0"); !ok {
		t.Error("no tenantry_db_pool_open_connections for group 0")
	}
}

// BenchmarkScrape measures one scrape of /metrics over HTTP at 10,000
// active tenants, as Prometheus takes it: the request, the gathering and
// the uncompressed answer read whole (the goal: under 100 ms).
func BenchmarkScrape(b *testing.B) {
	_, url := busyFleet(b, budgetTenants, 100)
	size := 0
	for b.Loop() {
		resp, err := http.Get(url)
		if err != nil {
			b.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			b.Fatalf("GET %s = %d, %v", url, resp.StatusCode, err)
		}
		size = len(body)
	}
	b.ReportMetric(float64(size), "bytes")
}
