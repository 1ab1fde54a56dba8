package metrics_test

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"tenantry/internal/testenv"
	"tenantry/metrics"
	"tenantry/middleware"
)

// TestRunReranks: Run re-ranks on its own every RankEvery, so a tenant
// that became the busiest gets series of its own without anyone asking,
// and Run returns when its context ends.
func TestRunReranks(t *testing.T) {
	m := metrics.New(metrics.Options{TenantSeries: 1, RankEvery: 10 * time.Millisecond}, metrics.Sources{})
	srv := httptest.NewServer(m.Handler())
	t.Cleanup(srv.Close)
	observe := func(tenant string, n int) {
		for range n {
			m.Observe(middleware.Record{Server: "tenants", Tenant: tenant, Method: "GET", Route: "/api/users", Status: 200})
		}
	}
	observe("quiet", 1)
	observe("busy", 50) // no room: folded until a ranking
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); m.Run(ctx) }()
	testenv.Eventually(t, 5*time.Second, func() bool {
		own := metrics.ScrapeURL(t, srv.URL, "").LabelValues("tenantry_tenant_request_duration_seconds", "tenant")
		return own["busy"] && !own["quiet"]
	}, "busy ranked in and quiet out")
	cancel()
	<-done
}
