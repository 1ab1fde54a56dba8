// Package metrics is tenantry's Prometheus instrumentation: one *Metrics,
// built by New with a registry of its own (never the global default
// registry), counts both servers' requests as a middleware.Observer, the
// catalog's migrations and provisioning through tenants.Events, and how
// long catalog changes take to arrive (tenants.Listener.ReportLag); at
// scrape time it reads the resolver, the connection groups and the
// database's health, which keep those numbers anyway. Handler serves it;
// the admin listener mounts it at GET /metrics.
//
// # The cardinality contract
//
// At 10,000 tenants a tenant label on every series would be millions of
// series. The contract: whatever the number of tenants, at most
// Options.TenantSeries tenants (metrics.tenant_series, default 100) have
// series of their own; every other tenant is counted as tenant="other",
// and requests answered before a tenant was resolved (the admin API,
// health checks, unknown hosts) as tenant="". A tenant really named
// "other" is always counted in the fold. Route is the route's pattern
// (never the path; "unmatched" when no route matched, as in the access
// line) and method is one of eight values ("other" for any
// method outside GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS), so no
// label takes a value a client chooses.
//
// Which tenants keep series: the busiest by recent traffic. A tenant's
// first request gives it series while fewer than TenantSeries tenants have
// them (a deployment with no more tenants than that never folds). Run
// re-ranks every Options.RankEvery (a minute by default): each tenant's
// score is halved and its requests since the last ranking added, the
// TenantSeries highest scores keep or get series (a tenant that has them
// wins a tie, so equal traffic does not churn), and a tenant that leaves
// the set has its series deleted at once: its later requests count as
// "other", and its counters start again from zero if it returns (which
// Prometheus' rate and increase read as a counter reset). A tenant whose
// score has been 0 for 15 rankings in a row is forgotten altogether, its
// series deleted even with room to spare. tenant="other" always has its
// latency series, at zero while nothing is folded.
//
// # The series arithmetic
//
// With N = TenantSeries, R the (route, method) pairs that are served
// (about 30 on the tenant listener and 35 on the admin one) and C the
// (route, method, status class) combinations one tenant's traffic uses:
//
//   - tenantry_http_requests_total{server,route,method,status_class,tenant}:
//     at most (N+2)·C, where C is at most 28 pairs × 5 classes = 140 and is
//     under 20 for real traffic (a few routes, 2xx and 4xx): about 2,000
//     series at N = 100.
//   - tenantry_http_request_duration_seconds{server,route,method}: R × 16
//     (13 buckets, +Inf, sum, count), about 1,000, whatever N is.
//   - tenantry_tenant_request_duration_seconds{tenant}: (N+1) × 9 (6
//     buckets, +Inf, sum, count) = 909 at N = 100.
//
// That split is the point of having two latency histograms. One histogram
// by route, method and tenant would cost (N+1) × R × 16: 105,000 series at
// N = 100, ten times the 10,000-series budget for /metrics, to answer a
// question (the latency of one route of one tenant) that the access log
// and GET /admin/tenants/{name}/stats answer better. Split, latency costs
// about 1,900 series: by route for every tenant together, by tenant over
// every route. Everything else (the Go and process collectors, the
// resolver, the catalog, the connection groups) is a few hundred series,
// fixed. TestTenThousandTenantsStayUnderBudget holds a real scrape at
// 10,000 active tenants under 10,000 series and 2 MB.
//
// # The hot path
//
// Observe runs on every request's goroutine. A known tenant is found in a
// sharded map copied on write (no lock), its counter for the request's
// route, method and class in a per-tenant map copied on write (no lock),
// and counting is an atomic add on that tenant's own counter: tenants do
// not contend with each other, and a request of a known route and tenant
// allocates nothing (BenchmarkObserve). Locks are taken only the first
// time a tenant, or a tenant's route and class, is seen, and by ranking.
//
// # What is not measured
//
// Statement cache hits and misses: pgx keeps a statement cache per
// connection but does not expose its hits or misses, and tenantry does not
// guess them. tenantry_catalog_update_lag_seconds exists only on
// PostgreSQL (SQLite has no notifications; its periodic reload is the
// only path, seen in tenantry_catalog_last_reload_timestamp_seconds), and
// compares the announcing process's clock with this one's.
package metrics
