package metrics

import (
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"tenantry/database"
	"tenantry/middleware"
	"tenantry/tenants"
)

// DefaultRankEvery is how often Run re-ranks the tenants by recent traffic
// when Options.RankEvery is zero.
const DefaultRankEvery = time.Minute

// Other is the tenant label value of every tenant without series of its
// own. A tenant named "other" is always counted there.
const Other = "other"

// Options configure New.
type Options struct {
	// TenantSeries is how many tenants keep series of their own
	// (metrics.tenant_series); 0 folds every tenant into Other.
	TenantSeries int
	// RankEvery is how often Run re-ranks the tenants; DefaultRankEvery
	// when zero. Tests shorten it.
	RankEvery time.Duration
}

// Sources are what a scrape reads, besides what Observe and the events
// counted: each is read when /metrics is asked for, never polled. A nil
// source's metrics are left out (a process without a resolver or pool).
type Sources struct {
	// Resolver gives the lookup and reload counters and the tenants by
	// status, from its cached catalog (no query per scrape).
	Resolver *tenants.Resolver
	// Pool gives each connection group's pool statistics.
	Pool *database.Router
	// Health says whether the database answers.
	Health *database.Health
	// Databases, when set, replace Pool and Health with one entry per
	// placement, each reported under its database label; Pool and Health
	// alone are reported as database "main".
	Databases []DatabaseSource
}

// DatabaseSource is one placement's pool and health.
type DatabaseSource struct {
	Name   string
	Pool   *database.Router
	Health *database.Health
}

// databases returns the placements to report.
func (s Sources) databases() []DatabaseSource {
	if len(s.Databases) > 0 || (s.Pool == nil && s.Health == nil) {
		return s.Databases
	}
	return []DatabaseSource{{Name: "main", Pool: s.Pool, Health: s.Health}}
}

// Metrics holds tenantry's Prometheus metrics in a registry of its own. It
// is a middleware.Observer for both servers; its Handler serves the
// registry; Run re-ranks the tenants that keep series of their own. Build
// it with New.
type Metrics struct {
	registry *prometheus.Registry
	limit    int
	every    time.Duration

	requests      *prometheus.CounterVec
	routeLatency  *prometheus.HistogramVec
	tenantLatency *prometheus.HistogramVec
	inFlight      *prometheus.GaugeVec

	migrationsApplied prometheus.Counter
	migrationFailures prometheus.Counter
	provisioning      prometheus.Histogram
	catalogUpdateLag  prometheus.Histogram

	// routes holds the route latency histogram's children by server,
	// route and method, copied on write: Observe reads it without a lock.
	routes   cow[routeKey, prometheus.Observer]
	routesMu sync.Mutex

	// none and other are the series of requests without a tenant and of
	// tenants without series of their own; they are never deleted.
	none, other *series
	// shards map tenant names to their state, copied on write under
	// rankMu: Observe finds a known tenant without taking a lock.
	shards [shardCount]cow[string, *tenantState]

	// rankMu serialises every change of the tenant states: a tenant's
	// first request, and ranking. top is the set of tenants with series
	// of their own; states counts the entries of shards.
	rankMu sync.Mutex
	top    map[*tenantState]bool
	states int
	// tracked is len(top), for the tenant_series gauge.
	tracked atomic.Int64
}

var _ middleware.Observer = (*Metrics)(nil)

// New returns metrics with an empty registry of their own holding the Go
// runtime and process collectors, the request metrics Observe feeds, the
// catalog's event metrics (CatalogEvents, CatalogLag) and the scrape-time
// metrics read from src.
func New(opts Options, src Sources) *Metrics {
	if opts.RankEvery <= 0 {
		opts.RankEvery = DefaultRankEvery
	}
	m := &Metrics{
		registry: prometheus.NewRegistry(),
		limit:    max(opts.TenantSeries, 0),
		every:    opts.RankEvery,
		top:      map[*tenantState]bool{},
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tenantry_http_requests_total",
			Help: `Requests answered, by server ("tenants" or "admin"), route pattern ("unmatched" when none matched), method, status class and tenant (the busiest tenants by name, "other" for the rest, "" before a tenant was resolved).`,
		}, []string{"server", "route", "method", "status_class", "tenant"}),
		routeLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tenantry_http_request_duration_seconds",
			Help:    "Time from a request's arrival to its answer, by server, route pattern and method, over every tenant.",
			Buckets: routeBuckets,
		}, []string{"server", "route", "method"}),
		tenantLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tenantry_tenant_request_duration_seconds",
			Help:    `Time from a request's arrival to its answer, by tenant (the busiest tenants by name, "other" for the rest), over every route.`,
			Buckets: tenantBuckets,
		}, []string{"tenant"}),
		inFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tenantry_http_requests_in_flight",
			Help: "Requests being served now, by server.",
		}, []string{"server"}),
		migrationsApplied: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tenantry_tenant_migrations_applied_total",
			Help: "Tenant migrations applied by migration runs (tenantry migrate, POST /admin/migrate) in this process.",
		}),
		migrationFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tenantry_tenant_migration_failures_total",
			Help: "Tenants a migration run in this process could not migrate (rolled back, or ahead of the code).",
		}),
		provisioning: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "tenantry_tenant_provisioning_duration_seconds",
			Help:    "Time to create a tenant: schema, every migration and catalog rows, in one transaction.",
			Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30},
		}),
		catalogUpdateLag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "tenantry_catalog_update_lag_seconds",
			Help:    "Time from a catalog change's announcement by any process to the end of the reload that serves it here (PostgreSQL only; the announcer's clock).",
			Buckets: []float64{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10},
		}),
	}
	m.none = m.newSeries("", false)
	m.other = m.newSeries(Other, true)
	m.registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.requests, m.routeLatency, m.tenantLatency, m.inFlight,
		m.migrationsApplied, m.migrationFailures, m.provisioning, m.catalogUpdateLag,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "tenantry_metrics_tenant_series",
			Help: "Tenants that have series of their own now (at most metrics.tenant_series); the others are counted as tenant=\"other\".",
		}, func() float64 { return float64(m.tracked.Load()) }),
		newSourceCollector(src),
	)
	return m
}

// routeBuckets cover a request from a cached read (under a millisecond)
// to one that hit server.request_timeout.
var routeBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// tenantBuckets are coarser: the per-tenant histogram is multiplied by
// the number of tenants with series (doc.go), and answers "is this tenant
// slow", not "how slow is this route".
var tenantBuckets = []float64{0.005, 0.025, 0.1, 0.25, 1, 5}

// Registry returns the metrics' own registry, for tests and for adding
// collectors; it is never the global default registry.
func (m *Metrics) Registry() *prometheus.Registry { return m.registry }

// Handler serves the registry in the Prometheus text format (gzipped when
// the scraper accepts it). A collector's error is logged by the scrape's
// answer, not fatal: the other metrics are still served.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// Track returns next counting its requests in flight, labelled server.
// middleware.Access tells observers of a request only once it has been
// answered, so the start of a request is seen here, around the whole
// server. The handler unwraps to next (Unwrap), as middleware.Deadline's
// does, so that tests can reach the router inside.
func (m *Metrics) Track(server string, next http.Handler) http.Handler {
	return &tracked{next: next, g: m.inFlight.WithLabelValues(server)}
}

type tracked struct {
	next http.Handler
	g    prometheus.Gauge
}

func (t *tracked) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	t.g.Inc()
	defer t.g.Dec()
	t.next.ServeHTTP(w, r)
}

// Unwrap returns the handler Track wrapped.
func (t *tracked) Unwrap() http.Handler { return t.next }

// CatalogEvents returns the events a tenants.Catalog tells these metrics
// of (Catalog.OnEvents).
func (m *Metrics) CatalogEvents() tenants.Events {
	return tenants.Events{
		MigrationsApplied: func(n int) { m.migrationsApplied.Add(float64(n)) },
		MigrationFailed:   m.migrationFailures.Inc,
		Provisioned:       func(d time.Duration) { m.provisioning.Observe(d.Seconds()) },
	}
}

// CatalogLag records how long a catalog change took to be served here
// (tenants.Listener.ReportLag).
func (m *Metrics) CatalogLag(d time.Duration) { m.catalogUpdateLag.Observe(d.Seconds()) }
