package metrics_test

import (
	"bytes"
	"io"
	"net/http"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"

	"tenantry/config"
	"tenantry/internal/testenv"
	"tenantry/metrics"
)

const (
	adminToken   = "served-admin-token"
	scraperToken = "served-metrics-token"
)

// withMetricsToken sets admin.metrics_token, as a deployment's
// configuration would.
func withMetricsToken(c *config.Config) { c.Admin.MetricsToken = scraperToken }

// TestServedMetrics runs the whole service, as main does, and puts two
// tenants under concurrent load on their own listeners: a scrape of the
// admin listener's /metrics, over HTTP with the metrics token, counts
// each tenant's requests apart, by status class, exactly as the clients
// saw them; the in-flight gauge, the resolver, the catalog, the pool and
// the database's health are there; and promtool accepts the scrape.
func TestServedMetrics(t *testing.T) {
	for _, driver := range testenv.Drivers {
		t.Run(driver, func(t *testing.T) {
			t.Parallel()
			env := testenv.Start(t, driver, testenv.WithAdmin(adminToken), withMetricsToken)
			load := map[string]struct {
				url string
				n   int
			}{"tenant1": {env.URL1, 60}, "tenant2": {env.URL2, 35}}
			var mu sync.Mutex
			seen := map[string]map[int]int{} // tenant → status → responses
			var wg sync.WaitGroup
			for tenant, l := range load {
				seen[tenant] = map[int]int{}
				for w := range 4 {
					wg.Go(func() {
						for i := w; i < l.n; i += 4 {
							resp, err := http.Get(l.url + "/api/tenant")
							if err != nil {
								t.Error(err)
								return
							}
							_, _ = io.Copy(io.Discard, resp.Body)
							_ = resp.Body.Close()
							mu.Lock()
							seen[tenant][resp.StatusCode]++
							mu.Unlock()
						}
					})
				}
			}
			wg.Wait()

			url := env.AdminURL + "/metrics"
			var s metrics.Scrape
			// The tenants by status come from the resolver's first full
			// reload, which the periodic refresh (SQLite) or the
			// listener's connection (PostgreSQL) brings.
			testenv.Eventually(t, 10*time.Second, func() bool {
				s = metrics.ScrapeURL(t, url, scraperToken)
				n, _ := s.Value("tenantry_tenants", "status", "active")
				return n == 2
			}, "tenantry_tenants{status=\"active\"} = 2")

			for tenant, l := range load {
				total := 0
				for status, n := range seen[tenant] {
					total += n
					class := strconv.Itoa(status/100) + "xx"
					got, _ := s.Value("tenantry_http_requests_total", "server", "tenants", "route", "/api/tenant",
						"method", "GET", "status_class", class, "tenant", tenant)
					if got != float64(n) {
						t.Errorf("%s: %v requests of class %s counted, clients saw %d", tenant, got, class, n)
					}
				}
				if total != l.n {
					t.Errorf("%s: %d answers, sent %d", tenant, total, l.n)
				}
				if got, _ := s.Value("tenantry_tenant_request_duration_seconds", "tenant", tenant); got != float64(l.n) {
					t.Errorf("%s: latency histogram counts %v requests, want %d", tenant, got, l.n)
				}
			}
			if other, _ := s.Value("tenantry_http_requests_total", "tenant", metrics.Other); other != 0 {
				t.Errorf("%v requests folded into %q with two tenants and tenant_series 100", other, metrics.Other)
			}
			for _, tc := range []struct {
				family string
				labels []string
				want   float64
			}{
				// The scrape itself is the one admin request in flight.
				{"tenantry_http_requests_in_flight", []string{"server", "admin"}, 1},
				{"tenantry_http_requests_in_flight", []string{"server", "tenants"}, 0},
				{"tenantry_database_up", nil, 1},
				{"tenantry_tenants", []string{"status", "suspended"}, 0},
				{"tenantry_metrics_tenant_series", nil, 2},
			} {
				if got, _ := s.Value(tc.family, tc.labels...); got != tc.want {
					t.Errorf("%s%v = %v, want %v", tc.family, tc.labels, got, tc.want)
				}
			}
			for _, tc := range []struct {
				family string
				labels []string
				least  float64
			}{
				{"tenantry_resolver_lookups_total", []string{"result", "hit"}, 1},
				{"tenantry_catalog_reloads_total", []string{"result", "ok"}, 1},
				{"tenantry_db_pool_max_open_connections", nil, 1},
				{"tenantry_db_pool_open_connections", nil, 1},
				{"tenantry_http_request_duration_seconds", []string{"server", "tenants", "route", "/api/tenant"}, 95},
				{"go_goroutines", nil, 1},
				{"process_resident_memory_bytes", nil, 1},
			} {
				if got, ok := s.Value(tc.family, tc.labels...); !ok || got < tc.least {
					t.Errorf("%s%v = %v (present %v), want at least %v", tc.family, tc.labels, got, ok, tc.least)
				}
			}

			promtool, err := exec.LookPath("promtool")
			testenv.RequireTool(t, "promtool", err == nil)
			cmd := exec.Command(promtool, "check", "metrics")
			cmd.Stdin = bytes.NewReader(s.Body)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("promtool check metrics on a real scrape: %v\n%s", err, out)
			}
		})
	}
}

// TestMetricsTokenOnTheAdminListener: the configured admin.metrics_token
// reads /metrics of a served process and nothing else there.
func TestMetricsTokenOnTheAdminListener(t *testing.T) {
	env := testenv.Start(t, "sqlite", testenv.WithAdmin(adminToken), withMetricsToken)
	for _, tc := range []struct {
		path, token string
		want        int
	}{
		{"/metrics", scraperToken, http.StatusOK},
		{"/metrics", adminToken, http.StatusOK},
		{"/metrics", "", http.StatusUnauthorized},
		{"/admin/tenants", scraperToken, http.StatusUnauthorized},
		{"/admin/tenants", adminToken, http.StatusOK},
		{"/admin/migrate", scraperToken, http.StatusUnauthorized},
	} {
		req, err := http.NewRequest(http.MethodGet, env.AdminURL+tc.path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if tc.token != "" {
			req.Header.Set("Authorization", "Bearer "+tc.token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("GET %s with %q = %d, want %d", tc.path, tc.token, resp.StatusCode, tc.want)
		}
	}
	// Served only on the admin listener: a tenant port has no /metrics.
	resp, err := http.Get(env.URL1 + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /metrics on a tenant listener = %d, want 404", resp.StatusCode)
	}
}
