package admin_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"tenantry/admin"
	"tenantry/internal/testenv"
	"tenantry/metrics"
)

const metricsToken = "test-metrics-token-9876543210"

// TestMetricsRoute checks GET /metrics and its token over real HTTP: the
// admin token and admin.metrics_token both read it; the metrics token
// opens nothing else, not even another method on the same path; without
// a metrics token configured only the admin token works; without metrics
// the path is an unknown one. The route stays out of Routes, which the
// contract tests hold to openapi-admin.yaml.
func TestMetricsRoute(t *testing.T) {
	m := metrics.New(metrics.Options{TenantSeries: 10}, metrics.Sources{})
	serve := func(t *testing.T, d admin.Deps) string {
		t.Helper()
		d.Log, d.Token = testenv.Logger(t), token
		srv, err := admin.NewServer(d)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range srv.Routes() {
			if r.Path == admin.MetricsPath {
				t.Errorf("Routes lists %s %s", r.Method, r.Path)
			}
		}
		hs := httptest.NewServer(srv)
		t.Cleanup(hs.Close)
		return hs.URL
	}
	withToken := serve(t, admin.Deps{Metrics: m.Handler(), MetricsToken: metricsToken})
	adminOnly := serve(t, admin.Deps{Metrics: m.Handler()})
	without := serve(t, admin.Deps{})

	for _, tc := range []struct {
		name, server, method, path, auth string
		want                             int
	}{
		{"metrics token", withToken, http.MethodGet, "/metrics", metricsToken, http.StatusOK},
		{"admin token", withToken, http.MethodGet, "/metrics", token, http.StatusOK},
		{"no token", withToken, http.MethodGet, "/metrics", "", http.StatusUnauthorized},
		{"wrong token", withToken, http.MethodGet, "/metrics", "wrong", http.StatusUnauthorized},
		{"metrics token, tenants", withToken, http.MethodGet, "/admin/tenants", metricsToken, http.StatusUnauthorized},
		{"metrics token, create", withToken, http.MethodPost, "/admin/tenants", metricsToken, http.StatusUnauthorized},
		{"metrics token, migrate", withToken, http.MethodGet, "/admin/migrate", metricsToken, http.StatusUnauthorized},
		{"metrics token, profile", withToken, http.MethodGet, "/debug/pprof/heap", metricsToken, http.StatusUnauthorized},
		{"metrics token, another method", withToken, http.MethodPost, "/metrics", metricsToken, http.StatusUnauthorized},
		{"metrics token, unknown path", withToken, http.MethodGet, "/metrics/x", metricsToken, http.StatusUnauthorized},
		{"admin token, another method", withToken, http.MethodPost, "/metrics", token, http.StatusMethodNotAllowed},
		{"no metrics token configured, admin token", adminOnly, http.MethodGet, "/metrics", token, http.StatusOK},
		{"no metrics token configured, empty token", adminOnly, http.MethodGet, "/metrics", "", http.StatusUnauthorized},
		{"no metrics token configured, metrics token", adminOnly, http.MethodGet, "/metrics", metricsToken, http.StatusUnauthorized},
		{"no metrics", without, http.MethodGet, "/metrics", token, http.StatusNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, tc.server+tc.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			if tc.auth != "" {
				req.Header.Set("Authorization", "Bearer "+tc.auth)
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Fatalf("%s %s = %d, want %d: %s", tc.method, tc.path, resp.StatusCode, tc.want, body)
			}
			served := strings.Contains(string(body), "tenantry_metrics_tenant_series")
			if served != (tc.want == http.StatusOK) {
				t.Errorf("%s %s (%d): metrics in the body = %v", tc.method, tc.path, resp.StatusCode, served)
			}
			if tc.want != http.StatusOK {
				if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
					t.Errorf("Content-Type %q, want application/problem+json", ct)
				}
			}
		})
	}
}
