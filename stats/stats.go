package stats

import (
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"tenantry/middleware"
)

// windows are the spans, in minutes, that Tenant reports.
var windows = [...]int{1, 5, 15}

// ringSize is the number of one-minute buckets a tenant keeps: the 15
// whole minutes the longest window needs plus the minute under way.
const ringSize = 16

// bucket is what one tenant's requests were during one minute. Which
// minute follows from its place in the ring and the entry's last minute.
type bucket struct {
	requests     uint32
	errors       uint32
	clientErrors uint32
	hist         [bins]uint16
}

// entry is one tenant's ring of buckets: slot m%ringSize holds minute m,
// for the ringSize minutes up to last. Its mutex is the only lock a
// request takes, so tenants never wait for each other. The fields are
// laid out to keep the entry within the allocator's 2,048-byte size
// class (TestMemoryBound).
type entry struct {
	mu sync.Mutex
	// last is the newest minute recorded; the sweep drops an entry once
	// last is out of every window.
	last uint32
	// dead is set, under mu, by the sweep that removed the entry from the
	// map; an Observe that still holds it looks the tenant up again.
	dead bool
	// shift[i] is the sampling of ring[i]'s histogram: it counts one
	// request in 2^shift. A bin that would overflow its uint16 halves
	// every bin of the minute and doubles the interval (see record),
	// which keeps the bins half the size of uint32 ones.
	shift [ringSize]uint8
	ring  [ringSize]bucket
}

// Stats keeps per-tenant request counts and latency quantiles over the
// last 1, 5 and 15 minutes, in memory, for the requests of the tenant
// listeners. It implements middleware.Observer. The zero value is not
// usable; build one with New.
type Stats struct {
	now     func() time.Time
	started time.Time
	// tenants maps a tenant's name to its *entry. A sync.Map, because
	// its keys are written once and then read by every request: reads
	// take no lock, so no tenant's request waits for another's.
	tenants sync.Map
	count   atomic.Int64
	// swept is the minute of the latest sweep, so that one Observe a
	// minute starts one.
	swept atomic.Uint32
	// background runs the sweep off the request's path: a goroutine,
	// except in tests that want it done before Observe returns.
	background func(func())
}

var _ middleware.Observer = (*Stats)(nil)

// Option changes a Stats built by New.
type Option func(*Stats)

// WithClock makes Stats read the time from now instead of time.Now, so
// that tests can move through minutes without waiting.
func WithClock(now func() time.Time) Option {
	return func(s *Stats) { s.now = now }
}

// New returns an empty Stats. Its windows start now: until 15 minutes
// have passed, the longer windows cover only the time since.
func New(opts ...Option) *Stats {
	s := &Stats{now: time.Now, background: func(f func()) { go f() }}
	for _, o := range opts {
		o(s)
	}
	s.started = s.now()
	s.swept.Store(minuteOf(s.started))
	return s
}

func minuteOf(t time.Time) uint32 { return uint32(t.Unix() / 60) }

// Observe counts r when a tenant listener answered it for a tenant;
// requests answered before a tenant was known (an unknown host) and the
// admin API's are not any tenant's. A 5xx status is an error, a 4xx a
// client error. Its cost is a map read, one uncontended mutex and a
// binary search over 55 edges (BenchmarkObserve); a tenant's first request
// allocates its entry.
func (s *Stats) Observe(r middleware.Record) {
	if r.Server != "tenants" || r.Tenant == "" {
		return
	}
	m := minuteOf(s.now())
	for {
		e := s.entry(r.Tenant)
		e.mu.Lock()
		if e.dead {
			// Swept between the lookup and the lock: it is out of the
			// map, so count in the tenant's new entry instead.
			e.mu.Unlock()
			continue
		}
		e.record(m, r.Status, r.Duration)
		e.mu.Unlock()
		break
	}
	if last := s.swept.Load(); m > last && s.swept.CompareAndSwap(last, m) {
		s.background(func() { s.sweep(m) })
	}
}

// entry returns name's entry, making it on the tenant's first request.
func (s *Stats) entry(name string) *entry {
	if v, ok := s.tenants.Load(name); ok {
		return v.(*entry)
	}
	// The name is copied so that the map keeps no part of the request's
	// memory alive.
	v, loaded := s.tenants.LoadOrStore(strings.Clone(name), new(entry))
	if !loaded {
		s.count.Add(1)
	}
	return v.(*entry)
}

// record counts one request of minute m. The caller holds e.mu.
func (e *entry) record(m uint32, status int, d time.Duration) {
	switch {
	case m > e.last:
		// Clear the slots of the minutes from last to m, which no
		// request had: they still hold the minutes ringSize before.
		for k := e.last + 1; k <= m && k <= e.last+ringSize; k++ {
			e.ring[k%ringSize] = bucket{}
			e.shift[k%ringSize] = 0
		}
		e.last = m
	case m < e.last:
		// A wall clock set back must not count in a slot that now holds
		// a newer minute: the request counts in the newest minute.
		m = e.last
	}
	i := m % ringSize
	b := &e.ring[i]
	b.requests++
	switch {
	case status >= 500:
		b.errors++
	case status >= 400:
		b.clientErrors++
	}
	// One request in 2^shift goes into the histogram; the counts above
	// stay exact. Sampling starts only once a bin of this minute has
	// 65,535 requests, so the quantiles still rest on tens of thousands.
	if b.requests&(1<<e.shift[i]-1) != 0 {
		return
	}
	k := binOf(d)
	if b.hist[k] == math.MaxUint16 {
		for j := range b.hist {
			// Rounding up keeps a bin of one request (the tail that
			// p99 reads) from vanishing.
			b.hist[j] = (b.hist[j] + 1) / 2
		}
		e.shift[i]++
	}
	b.hist[k]++
}

// sweep drops the entries of tenants that had no request in any window,
// among them removed tenants': the memory follows the active tenants, not
// every tenant that ever had a request.
func (s *Stats) sweep(m uint32) {
	s.tenants.Range(func(k, v any) bool {
		e := v.(*entry)
		e.mu.Lock()
		if e.last+ringSize <= m && !e.dead {
			e.dead = true
			s.tenants.CompareAndDelete(k, e)
			s.count.Add(-1)
		}
		e.mu.Unlock()
		return true
	})
}

// Sweep drops, now, the entries that Observe would drop at the turn of
// the minute: those of tenants idle for 16 minutes or more.
func (s *Stats) Sweep() { s.sweep(minuteOf(s.now())) }

// Len returns the number of tenants with an entry.
func (s *Stats) Len() int { return int(s.count.Load()) }

// Window is what one tenant's requests were over the last Minutes minutes
// as this process counted them. Latencies are in milliseconds; P50 and
// P99 are nil (JSON null) without requests.
type Window struct {
	Minutes int `json:"minutes"`
	// From is where the window starts: the start of the minute Minutes
	// whole minutes before the current one, or, when later, the start of
	// the process or the tenant's creation. The window runs to now.
	From time.Time `json:"from"`
	// Seconds is the span from From to now, to turn counts into rates.
	Seconds      float64  `json:"seconds"`
	Requests     uint64   `json:"requests"`
	Errors       uint64   `json:"errors"`
	ClientErrors uint64   `json:"client_errors"`
	P50          *float64 `json:"p50_ms"`
	P99          *float64 `json:"p99_ms"`
}

// Tenant returns the tenant's windows, the shortest first: 1, 5 and 15 minutes.
// since is the tenant's creation: minutes before it are left out, so that
// a tenant made again under a removed one's name does not show the old
// one's requests (apart from the minute they share).
func (s *Stats) Tenant(name string, since time.Time) []Window {
	now := s.now()
	m := minuteOf(now)
	var snap struct {
		last  uint32
		shift [ringSize]uint8
		ring  [ringSize]bucket
	}
	if v, ok := s.tenants.Load(name); ok {
		e := v.(*entry)
		e.mu.Lock()
		snap.last, snap.shift, snap.ring = e.last, e.shift, e.ring
		e.mu.Unlock()
	}
	floor := s.started
	if since.After(floor) {
		floor = since
	}
	out := make([]Window, 0, len(windows))
	for _, n := range windows {
		first := m - uint32(n)
		from := time.Unix(int64(first)*60, 0)
		if floor.After(from) {
			from = floor
		}
		if from.After(now) {
			from = now
		}
		first = max(first, minuteOf(from))
		w := Window{Minutes: n, From: from.UTC(), Seconds: now.Sub(from).Seconds()}
		var h [bins]uint64
		for j := range uint32(ringSize) {
			minute := snap.last - j
			if minute < first || minute > m {
				continue
			}
			b, shift := &snap.ring[minute%ringSize], snap.shift[minute%ringSize]
			w.Requests += uint64(b.requests)
			w.Errors += uint64(b.errors)
			w.ClientErrors += uint64(b.clientErrors)
			for k, c := range b.hist {
				h[k] += uint64(c) << shift
			}
		}
		w.P50, w.P99 = quantile(&h, 0.50), quantile(&h, 0.99)
		out = append(out, w)
	}
	return out
}
