package metrics

import (
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"tenantry/middleware"
)

// request is a tenant's request as middleware.Access records it.
func request(tenant, method, route string, status int) middleware.Record {
	return middleware.Record{Server: "tenants", Tenant: tenant, Host: tenant + ".example",
		Method: method, Route: route, Status: status, Duration: 3 * time.Millisecond}
}

// serve starts an HTTP server for m's handler, as the admin listener
// serves it, and returns its URL.
func serve(t testing.TB, m *Metrics) string {
	t.Helper()
	srv := httptest.NewServer(m.Handler())
	t.Cleanup(srv.Close)
	return srv.URL
}

func tenantName(i int) string { return "tenant-" + strconv.Itoa(i) }

// TestRequestsAreCountedByTheirLabels checks one request of each kind
// against the families and labels the package documentation promises,
// and that a client cannot add label values: any other method is
// "other", and statuses fall into five classes.
func TestRequestsAreCountedByTheirLabels(t *testing.T) {
	m := New(Options{TenantSeries: 10}, Sources{})
	for _, r := range []middleware.Record{
		request("acme", "GET", "/api/users", 200),
		request("acme", "GET", "/api/users", 200),
		request("acme", "POST", "/api/users", 422),
		request("acme", "BREW", "", 404),
		request("acme", "PROPFIND", "", 404),
		{Server: "tenants", Method: "GET", Route: "/healthz", Status: 200},
		{Server: "admin", Method: "DELETE", Route: "/admin/tenants/:name", Status: 503},
		{Server: "tenants", Tenant: "acme", Method: "GET", Route: "/api/users", Status: 999},
	} {
		m.Observe(r)
	}
	s := ScrapeURL(t, serve(t, m), "")
	for _, tc := range []struct {
		family string
		labels []string
		want   float64
	}{
		{"tenantry_http_requests_total", []string{"server", "tenants", "route", "/api/users", "method", "GET", "status_class", "2xx", "tenant", "acme"}, 2},
		{"tenantry_http_requests_total", []string{"route", "/api/users", "method", "POST", "status_class", "4xx", "tenant", "acme"}, 1},
		{"tenantry_http_requests_total", []string{"route", "unmatched", "method", "other", "status_class", "4xx", "tenant", "acme"}, 2},
		{"tenantry_http_requests_total", []string{"route", "/api/users", "status_class", "5xx", "tenant", "acme"}, 1},
		{"tenantry_http_requests_total", []string{"route", "/healthz", "tenant", ""}, 1},
		{"tenantry_http_requests_total", []string{"server", "admin", "route", "/admin/tenants/:name", "method", "DELETE", "status_class", "5xx"}, 1},
		{"tenantry_http_request_duration_seconds", []string{"server", "tenants", "route", "/api/users", "method", "GET"}, 3},
		{"tenantry_http_request_duration_seconds", []string{"server", "admin"}, 1},
		// Requests without a tenant have no per-tenant latency.
		{"tenantry_tenant_request_duration_seconds", []string{"tenant", "acme"}, 6},
		{"tenantry_tenant_request_duration_seconds", nil, 6},
		{"tenantry_metrics_tenant_series", nil, 1},
	} {
		if got, _ := s.Value(tc.family, tc.labels...); got != tc.want {
			t.Errorf("%s%v = %v, want %v", tc.family, tc.labels, got, tc.want)
		}
	}
	if got := s.LabelValues("tenantry_http_requests_total", "method"); got["BREW"] || got["PROPFIND"] {
		t.Errorf("method label values %v: a made-up method has a series of its own", got)
	}
}

// TestFold holds the cardinality contract at several sizes: never more
// than TenantSeries tenants with series of their own plus "other", every
// request counted exactly once whichever series it lands in, and no fold
// at all while the tenants fit.
func TestFold(t *testing.T) {
	for _, tc := range []struct {
		name             string
		tenants, series  int
		wantOwn          int
		wantOtherPresent bool
	}{
		{"2,000 tenants, 100 series", 2000, 100, 100, true},
		{"2,000 tenants, 10 series", 2000, 10, 10, true},
		{"fewer tenants than series", 40, 100, 40, false},
		{"no series", 300, 0, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := New(Options{TenantSeries: tc.series}, Sources{})
			total := 0
			for i := range tc.tenants {
				for range 1 + i%3 {
					m.Observe(request(tenantName(i), "GET", "/api/users", 200))
					total++
				}
			}
			url := serve(t, m)
			check := func(when string) {
				t.Helper()
				s := ScrapeURL(t, url, "")
				for _, family := range []string{"tenantry_http_requests_total", "tenantry_tenant_request_duration_seconds"} {
					values := s.LabelValues(family, "tenant")
					// The latency of "other" is always there, at zero
					// while nothing is folded.
					wantOther := tc.wantOtherPresent || family == "tenantry_tenant_request_duration_seconds"
					if values[Other] != wantOther {
						t.Errorf("%s, %s: tenant=%q present = %v, want %v", when, family, Other, values[Other], wantOther)
					}
					own := len(values)
					if values[Other] {
						own--
					}
					if own != tc.wantOwn {
						t.Errorf("%s, %s: %d tenants with series of their own, want %d", when, family, own, tc.wantOwn)
					}
				}
				if got, _ := s.Value("tenantry_metrics_tenant_series"); got != float64(tc.wantOwn) {
					t.Errorf("%s: tenantry_metrics_tenant_series = %v, want %d", when, got, tc.wantOwn)
				}
			}
			check("before ranking")
			// Before any ranking nothing was deleted: every request is
			// counted once, in its tenant's series or in "other".
			s := ScrapeURL(t, url, "")
			if got, _ := s.Value("tenantry_http_requests_total"); got != float64(total) {
				t.Errorf("requests counted = %v, want %d", got, total)
			}
			m.rank()
			for i := range tc.tenants {
				m.Observe(request(tenantName(i), "GET", "/api/users", 200))
			}
			check("after ranking")
		})
	}
}

// TestRankFollowsTraffic: tenants that become the busiest get series of
// their own at the next ranking, and those they displace lose theirs at
// once, from every family; ties keep the tenants that have series.
func TestRankFollowsTraffic(t *testing.T) {
	m := New(Options{TenantSeries: 2}, Sources{})
	url := serve(t, m)
	hit := func(tenant string, n int) {
		for range n {
			m.Observe(request(tenant, "GET", "/api/users/:id", 200))
		}
	}
	own := func() map[string]bool {
		t.Helper()
		s := ScrapeURL(t, url, "")
		// A tenant gets its latency series when it joins, and its
		// counters at its next request: the counters' tenants are some
		// of the histogram's, and no deleted tenant is left in either.
		got := s.LabelValues("tenantry_tenant_request_duration_seconds", "tenant")
		for name := range s.LabelValues("tenantry_http_requests_total", "tenant") {
			if !got[name] {
				t.Errorf("tenant %q has counters but no latency series", name)
			}
		}
		delete(got, Other)
		return got
	}
	want := func(step string, tenants ...string) {
		t.Helper()
		got := own()
		if len(got) != len(tenants) {
			t.Fatalf("%s: tenants with series %v, want %v", step, got, tenants)
		}
		for _, name := range tenants {
			if !got[name] {
				t.Fatalf("%s: tenants with series %v, want %v", step, got, tenants)
			}
		}
	}

	hit("a", 1)
	hit("b", 1)
	hit("c", 5) // no room left: counted as "other"
	want("first come", "a", "b")
	m.rank() // scores a 1, b 1, c 5: a and b tie, and a comes first by name
	want("c is the busiest", "a", "c")
	hit("b", 3)
	m.rank() // scores a 0, b 3, c 2
	want("b is busier than a now", "b", "c")
	// With room to spare an idle tenant keeps its series.
	m.rank() // scores b 1, c 1
	want("both idle", "b", "c")
}

// TestRankTieKeepsTenantsWithSeries: equal traffic does not move series
// from one tenant to another, whatever the names.
func TestRankTieKeepsTenantsWithSeries(t *testing.T) {
	m := New(Options{TenantSeries: 1}, Sources{})
	for range 2 {
		m.Observe(request("zeta", "GET", "/api/users", 200))
		m.Observe(request("alpha", "GET", "/api/users", 200))
	}
	for range 3 {
		m.rank()
		got := ScrapeURL(t, serve(t, m), "").LabelValues("tenantry_tenant_request_duration_seconds", "tenant")
		if !got["zeta"] || got["alpha"] {
			t.Fatalf("tenants with series %v, want zeta (first come, tied since)", got)
		}
		m.Observe(request("zeta", "GET", "/api/users", 200))
		m.Observe(request("alpha", "GET", "/api/users", 200))
	}
}

// TestIdleTenantsAreForgotten: a tenant without requests for forgetAfter
// rankings loses its series even with room to spare, so that removed
// tenants do not keep series (or memory) for ever; it is counted again
// from its next request.
func TestIdleTenantsAreForgotten(t *testing.T) {
	m := New(Options{TenantSeries: 5}, Sources{})
	m.Observe(request("gone", "GET", "/api/users", 200))
	url := serve(t, m)
	// The first ranking takes the request into the score (1); the
	// next forgetAfter find it at 0.
	for i := range forgetAfter + 1 {
		if !ScrapeURL(t, url, "").LabelValues("tenantry_tenant_request_duration_seconds", "tenant")["gone"] {
			t.Fatalf("series deleted after %d idle rankings, want them kept for %d", i, forgetAfter)
		}
		m.rank()
	}
	s := ScrapeURL(t, url, "")
	if s.LabelValues("tenantry_http_requests_total", "tenant")["gone"] || s.LabelValues("tenantry_tenant_request_duration_seconds", "tenant")["gone"] {
		t.Fatalf("an idle tenant kept its series after %d rankings", forgetAfter+1)
	}
	if m.states != 0 {
		t.Errorf("%d tenant states kept, want 0", m.states)
	}
	m.Observe(request("gone", "GET", "/api/users", 200))
	if got, _ := ScrapeURL(t, url, "").Value("tenantry_http_requests_total", "tenant", "gone"); got != 1 {
		t.Errorf("requests of the returning tenant = %v, want 1", got)
	}
}

// TestObserveAllocatesNothing: a request of a tenant and route seen before
// costs no allocation, with series of its own or folded.
func TestObserveAllocatesNothing(t *testing.T) {
	m := New(Options{TenantSeries: 1}, Sources{})
	own, folded := request("own", "GET", "/api/users/:id", 200), request("folded", "GET", "/api/users/:id", 200)
	none := middleware.Record{Server: "tenants", Method: "GET", Route: "/healthz", Status: 200}
	for _, r := range []middleware.Record{own, folded, none} {
		m.Observe(r)
		if n := testing.AllocsPerRun(100, func() { m.Observe(r) }); n != 0 {
			t.Errorf("Observe(%s %s, tenant %q) allocates %v times, want 0", r.Method, r.Route, r.Tenant, n)
		}
	}
}

// BenchmarkObserve measures the hot path: every request of both servers
// goes through Observe. Parallel, over 1,000 tenants of which 100 have
// series, so that tenants share nothing but the "other" series.
func BenchmarkObserve(b *testing.B) {
	m := New(Options{TenantSeries: 100}, Sources{})
	routes := []string{"/api/users", "/api/users/:id", "/users"}
	var records []middleware.Record
	for i := range 1000 {
		for _, route := range routes {
			r := request(tenantName(i), "GET", route, 200)
			m.Observe(r)
			records = append(records, r)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			m.Observe(records[i%len(records)])
			i += 7
		}
	})
}
