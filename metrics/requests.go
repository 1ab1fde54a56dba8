package metrics

import (
	"net/http"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"tenantry/middleware"
)

// methods are the method label's values; any other method is "other", so
// that a client cannot add series by inventing methods.
var methods = [...]string{
	http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut,
	http.MethodPatch, http.MethodDelete, http.MethodOptions, "other",
}

func methodIndex(m string) uint8 {
	for i, name := range methods[:len(methods)-1] {
		if m == name {
			return uint8(i)
		}
	}
	return uint8(len(methods) - 1)
}

// classes are the status_class label's values; a status outside 100–599
// (which net/http never sends) is counted with its nearest class.
var classes = [...]string{"1xx", "2xx", "3xx", "4xx", "5xx"}

func classIndex(status int) uint8 {
	return uint8(min(max(status/100, 1), 5) - 1)
}

// reqKey names one requests counter of a tenant label value; routeKey one
// child of the route latency histogram. Route and server come from a
// bounded set (registered route patterns, the two servers), as
// middleware.Access gives them.
type (
	reqKey struct {
		server, route string
		method, class uint8
	}
	routeKey struct {
		server, route string
		method        uint8
	}
)

// series is everything one tenant label value counts: its requests
// counters, created on first use and kept in a map copied on write, so
// that a request finds its counter without a lock; and its latency
// histogram (none for requests without a tenant).
type series struct {
	tenant   string
	latency  prometheus.Observer
	counters cow[reqKey, prometheus.Counter]

	// mu serialises adding counters and deleting the series: once dead,
	// no counter is added, so none can be left behind in the vector after
	// delete has removed the others.
	mu   sync.Mutex
	dead bool
}

func (m *Metrics) newSeries(tenant string, latency bool) *series {
	s := &series{tenant: tenant}
	if latency {
		s.latency = m.tenantLatency.WithLabelValues(tenant)
	}
	return s
}

// counter returns s's counter for k, or nil when s has been deleted.
func (s *series) counter(m *Metrics, k reqKey) prometheus.Counter {
	if c, ok := s.counters.get(k); ok {
		return c
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.counters.get(k); ok {
		return c
	}
	if s.dead {
		return nil
	}
	c := m.requests.WithLabelValues(k.server, k.route, methods[k.method], classes[k.class], s.tenant)
	s.counters.put(k, c)
	return c
}

// delete removes s's series from the vectors. A request that still holds
// one of its counters counts into a metric no scrape shows any more, which
// loses that one request from a tenant whose series are gone anyway.
func (s *series) delete(m *Metrics) {
	s.mu.Lock()
	s.dead = true
	s.mu.Unlock()
	for k := range s.counters.all() {
		m.requests.DeleteLabelValues(k.server, k.route, methods[k.method], classes[k.class], s.tenant)
	}
	m.tenantLatency.DeleteLabelValues(s.tenant)
}

// Observe counts one answered request: its requests counter, its route's
// latency and, for a request that has a tenant, the tenant's latency (the
// tenant's own series, or Other's). A request of a known route and tenant
// takes no lock and allocates nothing (BenchmarkObserve).
func (m *Metrics) Observe(r middleware.Record) {
	if r.Route == "" {
		// A Record built elsewhere than middleware.Access may leave the
		// route empty; an empty label value would read in PromQL as no
		// route label at all.
		r.Route = middleware.Unmatched
	}
	method, secs := methodIndex(r.Method), r.Duration.Seconds()
	m.route(routeKey{r.Server, r.Route, method}).Observe(secs)

	s := m.none
	if r.Tenant != "" {
		s = m.tenant(r.Tenant)
	}
	k := reqKey{r.Server, r.Route, method, classIndex(r.Status)}
	c := s.counter(m, k)
	if c == nil {
		// Deleted by a ranking since m.tenant returned it.
		s = m.other
		c = s.counter(m, k)
	}
	c.Inc()
	if s.latency != nil {
		s.latency.Observe(secs)
	}
}

// route returns the route latency histogram's child for k.
func (m *Metrics) route(k routeKey) prometheus.Observer {
	if o, ok := m.routes.get(k); ok {
		return o
	}
	m.routesMu.Lock()
	defer m.routesMu.Unlock()
	if o, ok := m.routes.get(k); ok {
		return o
	}
	o := m.routeLatency.WithLabelValues(k.server, k.route, methods[k.method])
	m.routes.put(k, o)
	return o
}
