package stats

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"
	"unsafe"

	"tenantry/middleware"
)

// clock is a settable time for WithClock; tests move it instead of
// sleeping.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock(t time.Time) *clock { return &clock{t: t} }

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

// t0 is 10:00:30 on a fixed day: half a minute into minute M.
var t0 = time.Date(2026, 3, 4, 10, 0, 30, 0, time.UTC)

// at returns the time minutes whole minutes and sec seconds after the
// start of t0's minute.
func at(minutes, sec int) time.Time {
	return t0.Truncate(time.Minute).Add(time.Duration(minutes)*time.Minute + time.Duration(sec)*time.Second)
}

func served(tenant string, status int, d time.Duration) middleware.Record {
	return middleware.Record{Server: "tenants", Tenant: tenant, Status: status, Duration: d}
}

func observeN(s *Stats, n int, r middleware.Record) {
	for range n {
		s.Observe(r)
	}
}

// counts is a window's counts as "requests/errors/client errors".
func counts(w Window) string {
	return fmt.Sprintf("%d/%d/%d", w.Requests, w.Errors, w.ClientErrors)
}

func TestBins(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want int
	}{
		{0, 0},
		{lowest - 1, 0},
		{lowest, 1},
		{edges[1] - 1, 1},
		{edges[1], 2},
		{HighestLatency - 1, bins - 2},
		{HighestLatency, bins - 1},
		{time.Hour, bins - 1},
	} {
		if got := binOf(tc.d); got != tc.want {
			t.Errorf("binOf(%v) = %d, want %d", tc.d, got, tc.want)
		}
	}
	if HighestLatency != edges[bins-2] {
		t.Errorf("HighestLatency = %v, want the last edge %v", HighestLatency, edges[bins-2])
	}
	if want := math.Pow(2, 1.0/6) - 1; math.Abs(MaxRelativeError-want) > 1e-15 {
		t.Errorf("MaxRelativeError = %v, want 2^(1/6)-1 = %v", MaxRelativeError, want)
	}
	// Every latency in range is within the stated error of its bin's
	// middle, at the edges and between them.
	for d := lowest; d < HighestLatency; d += d/97 + 1 {
		m := middle(binOf(d))
		if rel := math.Abs(float64(m-d)) / float64(d); rel > MaxRelativeError+1e-9 {
			t.Fatalf("latency %v is reported as %v: %.4f off, more than %.4f", d, m, rel, MaxRelativeError)
		}
	}
}

func TestCountsByStatusAndServer(t *testing.T) {
	c := newClock(t0)
	s := New(WithClock(c.now))
	for _, r := range []middleware.Record{
		served("acme", 200, time.Millisecond),
		served("acme", 201, time.Millisecond),
		served("acme", 304, time.Millisecond),
		served("acme", 400, time.Millisecond),
		served("acme", 404, time.Millisecond),
		served("acme", 429, time.Millisecond),
		served("acme", 499, time.Millisecond),
		served("acme", 500, time.Millisecond),
		served("acme", 503, time.Millisecond),
		served("bolt", 200, time.Millisecond),
		served("bolt", 503, time.Millisecond),
		// Not any tenant's: the admin API, and an unknown host.
		{Server: "admin", Tenant: "acme", Status: 500, Duration: time.Millisecond},
		{Server: "tenants", Tenant: "", Status: 404, Duration: time.Millisecond},
	} {
		s.Observe(r)
	}
	for _, tc := range []struct {
		tenant, want string
	}{
		{"acme", "9/2/4"},
		{"bolt", "2/1/0"},
		{"nobody", "0/0/0"},
	} {
		for _, w := range s.Tenant(tc.tenant, time.Time{}) {
			if got := counts(w); got != tc.want {
				t.Errorf("%s, %d minutes: requests/errors/client errors = %s, want %s", tc.tenant, w.Minutes, got, tc.want)
			}
		}
	}
	if s.Len() != 2 {
		t.Errorf("Len = %d, want 2 (acme and bolt)", s.Len())
	}
	if w := s.Tenant("nobody", time.Time{})[0]; w.P50 != nil || w.P99 != nil {
		t.Errorf("a tenant without requests has quantiles %v, %v; want nil", w.P50, w.P99)
	}
}

// TestWindowsRollOver moves the clock through 17 minutes: each window
// holds the minute under way and the whole minutes before it that it
// spans, and lets go of older ones.
func TestWindowsRollOver(t *testing.T) {
	c := newClock(at(-20, 0)) // the process started long before
	s := New(WithClock(c.now))
	c.set(at(0, 30))
	observeN(s, 10, served("acme", 200, time.Millisecond))
	c.set(at(1, 10))
	observeN(s, 5, served("acme", 500, 100*time.Millisecond))

	for _, tc := range []struct {
		now  time.Time
		want [3]uint64 // requests in the 1, 5 and 15 minute windows
	}{
		{at(1, 10), [3]uint64{15, 15, 15}},
		{at(1, 59), [3]uint64{15, 15, 15}},
		{at(2, 0), [3]uint64{5, 15, 15}},
		{at(3, 0), [3]uint64{0, 15, 15}},
		{at(5, 59), [3]uint64{0, 15, 15}},
		{at(6, 0), [3]uint64{0, 5, 15}},
		{at(7, 0), [3]uint64{0, 0, 15}},
		{at(15, 59), [3]uint64{0, 0, 15}},
		{at(16, 0), [3]uint64{0, 0, 5}},
		{at(17, 0), [3]uint64{0, 0, 0}},
	} {
		c.set(tc.now)
		ws := s.Tenant("acme", time.Time{})
		for i, w := range ws {
			if w.Requests != tc.want[i] {
				t.Errorf("at %s, %d-minute window: %d requests, want %d", tc.now.Format("15:04:05"), w.Minutes, w.Requests, tc.want[i])
			}
			wantFrom := tc.now.Truncate(time.Minute).Add(-time.Duration(w.Minutes) * time.Minute)
			if !w.From.Equal(wantFrom) || w.Seconds != tc.now.Sub(wantFrom).Seconds() {
				t.Errorf("at %s, %d-minute window: from %s for %vs, want from %s", tc.now.Format("15:04:05"), w.Minutes, w.From.Format("15:04:05"), w.Seconds, wantFrom.Format("15:04:05"))
			}
		}
	}

	// The 1-minute window at 10:02 holds only the slow 5xx minute.
	c.set(at(2, 0))
	w := s.Tenant("acme", time.Time{})[0]
	if counts(w) != "5/5/0" || w.P50 == nil || math.Abs(*w.P50-100)/100 > MaxRelativeError {
		t.Errorf("1-minute window at 10:02: %s, p50 %v; want 5/5/0 and about 100 ms", counts(w), w.P50)
	}
}

// TestWindowsStartAtProcessAndTenant: a window never reaches back before
// the process started nor before the tenant was created, so a tenant made
// again under a removed one's name starts from nothing.
func TestWindowsStartAtProcessAndTenant(t *testing.T) {
	c := newClock(at(0, 30))
	s := New(WithClock(c.now))
	observeN(s, 3, served("acme", 200, time.Millisecond)) // the removed "acme"
	c.set(at(4, 0))
	observeN(s, 2, served("acme", 200, time.Millisecond)) // the new one
	c.set(at(4, 45))

	for _, tc := range []struct {
		name      string
		since     time.Time
		wantFrom  [3]time.Time
		wantCount [3]uint64
	}{
		{"old tenant", time.Time{}, [3]time.Time{at(3, 0), at(0, 30), at(0, 30)}, [3]uint64{2, 5, 5}},
		{"created at 10:03:20", at(3, 20), [3]time.Time{at(3, 20), at(3, 20), at(3, 20)}, [3]uint64{2, 2, 2}},
		{"created at 10:04:10", at(4, 10), [3]time.Time{at(4, 10), at(4, 10), at(4, 10)}, [3]uint64{2, 2, 2}},
	} {
		for i, w := range s.Tenant("acme", tc.since) {
			if !w.From.Equal(tc.wantFrom[i]) || w.Requests != tc.wantCount[i] {
				t.Errorf("%s, %d minutes: from %s with %d requests, want from %s with %d", tc.name, w.Minutes,
					w.From.Format("15:04:05"), w.Requests, tc.wantFrom[i].Format("15:04:05"), tc.wantCount[i])
			}
			if want := at(4, 45).Sub(w.From).Seconds(); w.Seconds != want {
				t.Errorf("%s, %d minutes: %v seconds, want %v", tc.name, w.Minutes, w.Seconds, want)
			}
		}
	}
}

// TestQuantilesWithinStatedError compares the reported p50 and p99 with
// the exact nearest-rank quantiles of the latencies observed.
func TestQuantilesWithinStatedError(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, tc := range []struct {
		name string
		n    int
		draw func() time.Duration
	}{
		{"log-uniform 0.1 ms to 20 s", 20000, func() time.Duration {
			return time.Duration(float64(lowest) * math.Exp(rng.Float64()*math.Log(200000)))
		}},
		{"log-normal around 3 ms", 50000, func() time.Duration {
			return time.Duration(3e6 * math.Exp(rng.NormFloat64()))
		}},
		{"fast with a slow tail", 10000, func() time.Duration {
			if rng.IntN(100) < 3 {
				return time.Duration(800+rng.IntN(400)) * time.Millisecond
			}
			return time.Duration(500+rng.IntN(1500)) * time.Microsecond
		}},
		{"one request", 1, func() time.Duration { return 42 * time.Millisecond }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newClock(t0)
			s := New(WithClock(c.now))
			ds := make([]time.Duration, tc.n)
			for i := range ds {
				ds[i] = tc.draw()
				// Spread over the minutes of the 15-minute window.
				c.set(at(i*15/tc.n, 1))
				s.Observe(served("acme", 200, ds[i]))
			}
			slices.Sort(ds)
			w := s.Tenant("acme", time.Time{})[2]
			if w.Requests != uint64(tc.n) {
				t.Fatalf("15-minute window: %d requests, want %d", w.Requests, tc.n)
			}
			for _, q := range []struct {
				p   float64
				got *float64
			}{{0.50, w.P50}, {0.99, w.P99}} {
				exact := ds[int(math.Ceil(q.p*float64(tc.n)))-1]
				want := float64(min(max(exact, LowestLatency), HighestLatency)) / float64(time.Millisecond)
				if q.got == nil || math.Abs(*q.got-want)/want > MaxRelativeError+1e-6 {
					t.Errorf("p%g = %v ms, want %.3f ms within %.1f%%", q.p*100, q.got, want, MaxRelativeError*100)
				}
			}
		})
	}
}

// TestSamplingKeepsCountsExact: past 65,535 requests in one bin in one
// minute, the histogram samples, but counts stay exact and the quantiles
// still within the error.
func TestSamplingKeepsCountsExact(t *testing.T) {
	c := newClock(t0)
	s := New(WithClock(c.now))
	for i := range 71000 {
		d := time.Millisecond
		if i%71 == 70 { // 1,000 slow requests, spread among the fast
			d = 500 * time.Millisecond
		}
		s.Observe(served("acme", 200, d))
	}
	v, _ := s.tenants.Load("acme")
	if e := v.(*entry); e.shift[e.last%ringSize] == 0 {
		t.Fatalf("71,000 requests in one bin's minute did not start sampling")
	}
	w := s.Tenant("acme", time.Time{})[0]
	if w.Requests != 71000 {
		t.Errorf("requests = %d, want 71000 exactly", w.Requests)
	}
	// p99's rank, 70,290, is past the 70,000 fast requests.
	for _, q := range []struct {
		name      string
		got       *float64
		wantMilli float64
	}{{"p50", w.P50, 1}, {"p99", w.P99, 500}} {
		if q.got == nil || math.Abs(*q.got-q.wantMilli)/q.wantMilli > MaxRelativeError {
			t.Errorf("%s = %v ms, want about %v ms", q.name, q.got, q.wantMilli)
		}
	}
}

// TestSweepDropsIdleTenants: an entry goes once its tenant has had no
// request in 16 minutes (every window), at the first request of a later
// minute or on Sweep, and comes back with the tenant's next request.
func TestSweepDropsIdleTenants(t *testing.T) {
	c := newClock(at(0, 0))
	s := New(WithClock(c.now))
	s.background = func(f func()) { f() } // the minute's sweep done when Observe returns
	s.Observe(served("gone", 200, time.Millisecond))
	c.set(at(10, 0))
	s.Observe(served("busy", 200, time.Millisecond))

	c.set(at(15, 59))
	s.Sweep()
	if s.Len() != 2 {
		t.Fatalf("after 15 idle minutes: %d entries, want 2", s.Len())
	}
	c.set(at(16, 0))
	s.Observe(served("busy", 200, time.Millisecond)) // sweeps at the turn of the minute
	if s.Len() != 1 {
		t.Errorf("after 16 idle minutes: %d entries, want 1", s.Len())
	}
	if _, ok := s.tenants.Load("gone"); ok {
		t.Errorf("the idle tenant's entry is still there")
	}
	if got := s.Tenant("busy", time.Time{})[2].Requests; got != 2 {
		t.Errorf("busy: %d requests in 15 minutes, want 2", got)
	}

	s.Observe(served("gone", 200, time.Millisecond))
	if s.Len() != 2 || s.Tenant("gone", time.Time{})[0].Requests != 1 {
		t.Errorf("a swept tenant's next request: %d entries, %d requests; want 2 and 1", s.Len(), s.Tenant("gone", time.Time{})[0].Requests)
	}
}

// TestConcurrentObserve counts from many goroutines at once, for many
// tenants and one shared one, while sweeps run: no request is lost or
// counted for another tenant.
func TestConcurrentObserve(t *testing.T) {
	c := newClock(t0)
	s := New(WithClock(c.now))
	const workers, each = 8, 2000
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			own := fmt.Sprintf("t%d", w)
			for i := range each {
				s.Observe(served(own, 200+300*(i%2), time.Millisecond))
				s.Observe(served("shared", 200, time.Millisecond))
				if i%500 == 0 {
					s.Sweep()
				}
			}
		})
	}
	wg.Wait()
	for w := range workers {
		if got := counts(s.Tenant(fmt.Sprintf("t%d", w), time.Time{})[0]); got != fmt.Sprintf("%d/%d/0", each, each/2) {
			t.Errorf("t%d: %s, want %d/%d/0", w, got, each, each/2)
		}
	}
	if got := s.Tenant("shared", time.Time{})[0].Requests; got != workers*each {
		t.Errorf("shared: %d requests, want %d", got, workers*each)
	}
}

// entrySize is the size of one tenant's entry, before the allocator
// rounds it up to its size class.
const entrySize = unsafe.Sizeof(entry{})

// memoryPerTenant is the bound doc.go states for one tenant: its entry,
// its name and its share of the map; memoryAt10000 for 10,000 tenants.
const (
	memoryPerTenant = 2600
	memoryAt10000   = 10000 * memoryPerTenant
)

// TestMemoryBound fills 10,000 tenants' entries and measures the heap
// they take: it must stay within the bound doc.go states.
func TestMemoryBound(t *testing.T) {
	const n = 10000
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("tenant-%05d", i)
	}
	c := newClock(t0)
	s := New(WithClock(c.now))
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for _, name := range names {
		s.Observe(served(name, 200, time.Millisecond))
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	used := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("%d tenants: %d bytes (%.1f MB), %d bytes a tenant; entry %d bytes", n, used, float64(used)/1e6, used/n, entrySize)
	if s.Len() != n {
		t.Fatalf("Len = %d, want %d", s.Len(), n)
	}
	if used > memoryAt10000 {
		t.Errorf("%d tenants take %d bytes, more than the %d doc.go states", n, used, memoryAt10000)
	}
	runtime.KeepAlive(s)
}
