package tenants_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"tenantry/fault"
	"tenantry/internal/testenv"
	"tenantry/tenants"
)

// clock is a settable time source for a Limiter.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 1, 2, 10, 0, 0, 0, time.UTC)} }

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func ptr[T any](v T) *T { return &v }

// tenant returns a tenant with id and the given own limits.
func tenant(id uint64, rate *float64, burst, concurrency *int) *tenants.Tenant {
	return &tenants.Tenant{ID: id, Name: fmt.Sprintf("t%d", id), Schema: fmt.Sprintf("t%d", id),
		RateLimit: rate, RateBurst: burst, MaxConcurrent: concurrency}
}

func TestLimiterFor(t *testing.T) {
	for _, tc := range []struct {
		name     string
		defaults tenants.LimitDefaults
		t        *tenants.Tenant
		want     tenants.Effective
	}{
		{"nothing anywhere", tenants.LimitDefaults{}, tenant(1, nil, nil, nil), tenants.Effective{}},
		{"defaults", tenants.LimitDefaults{Rate: 10, Burst: 20, Concurrency: 4}, tenant(1, nil, nil, nil),
			tenants.Effective{Rate: 10, Burst: 20, Concurrency: 4}},
		{"burst from the rate, rounded up", tenants.LimitDefaults{Rate: 2.5}, tenant(1, nil, nil, nil),
			tenants.Effective{Rate: 2.5, Burst: 3}},
		{"burst at least 1", tenants.LimitDefaults{Rate: 0.2}, tenant(1, nil, nil, nil),
			tenants.Effective{Rate: 0.2, Burst: 1}},
		{"burst without a rate is no limit", tenants.LimitDefaults{Burst: 5}, tenant(1, nil, nil, nil), tenants.Effective{}},
		{"own limits win", tenants.LimitDefaults{Rate: 10, Burst: 20, Concurrency: 4}, tenant(1, ptr(1.0), ptr(2), ptr(1)),
			tenants.Effective{Rate: 1, Burst: 2, Concurrency: 1}},
		{"own limits where the defaults have none", tenants.LimitDefaults{}, tenant(1, ptr(3.0), nil, ptr(2)),
			tenants.Effective{Rate: 3, Burst: 3, Concurrency: 2}},
		{"own burst over the default rate", tenants.LimitDefaults{Rate: 10}, tenant(1, nil, ptr(50), nil),
			tenants.Effective{Rate: 10, Burst: 50}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tenants.NewLimiter(tc.defaults).For(tc.t); got != tc.want {
				t.Errorf("For = %+v, want %+v", got, tc.want)
			}
		})
	}
}

// TestLimiterRate: a tenant over its rate is refused with a Retry-After
// computed from its bucket, and another tenant is not affected.
func TestLimiterRate(t *testing.T) {
	for _, tc := range []struct {
		name       string
		rate       float64
		burst      int
		retryAfter time.Duration
		refill     time.Duration // after which one more request passes
	}{
		{"two a second", 2, 2, time.Second, 500 * time.Millisecond},
		{"one every ten seconds", 0.1, 1, 10 * time.Second, 10 * time.Second},
		{"a burst of five at one a second", 1, 5, time.Second, time.Second},
		// 1/3 s to the next token, shown as a whole second.
		{"three a second", 3, 1, time.Second, 334 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := newClock()
			l := tenants.NewLimiter(tenants.LimitDefaults{Rate: tc.rate, Burst: tc.burst}, tenants.LimiterClock(clk.now))
			noisy, quiet := tenant(1, nil, nil, nil), tenant(2, ptr(1000.0), ptr(1000), nil)
			ctx := context.Background()
			for i := range tc.burst {
				if _, err := l.Hold(ctx, noisy); err != nil {
					t.Fatalf("request %d of the burst: %v", i+1, err)
				}
			}
			_, err := l.Hold(ctx, noisy)
			fe, ok := fault.As(err)
			if !ok || !errors.Is(err, tenants.ErrRateLimited) || fe.Kind != fault.TooMany {
				t.Fatalf("request over the burst: err = %v, want ErrRateLimited", err)
			}
			if fe.RetryAfter != tc.retryAfter {
				t.Errorf("RetryAfter = %v, want %v", fe.RetryAfter, tc.retryAfter)
			}
			for i := range 50 {
				if _, err := l.Hold(ctx, quiet); err != nil {
					t.Fatalf("other tenant's request %d while the first is limited: %v", i+1, err)
				}
			}
			clk.advance(tc.refill - time.Millisecond)
			if _, err := l.Hold(ctx, noisy); !errors.Is(err, tenants.ErrRateLimited) {
				t.Errorf("just before the refill: err = %v, want ErrRateLimited", err)
			}
			clk.advance(time.Millisecond)
			if _, err := l.Hold(ctx, noisy); err != nil {
				t.Errorf("after the refill: %v", err)
			}
			if r, c := l.Refused(); r != 2 || c != 0 {
				t.Errorf("Refused = %d, %d; want 2 over the rate, 0 over concurrency", r, c)
			}
		})
	}
}

// TestLimiterConcurrency: with every slot held a request waits for one
// up to the configured wait, gets one that is freed meanwhile, and is
// refused when none is; another tenant is admitted at once throughout.
func TestLimiterConcurrency(t *testing.T) {
	ctx := context.Background()
	busy, other := tenant(1, nil, nil, ptr(2)), tenant(2, nil, nil, ptr(2))

	t.Run("refused at once without a wait", func(t *testing.T) {
		l := tenants.NewLimiter(tenants.LimitDefaults{Concurrency: 5})
		r1, err1 := l.Hold(ctx, busy)
		r2, err2 := l.Hold(ctx, busy)
		if err1 != nil || err2 != nil {
			t.Fatal(err1, err2)
		}
		_, err := l.Hold(ctx, busy)
		fe, ok := fault.As(err)
		if !ok || !errors.Is(err, tenants.ErrConcurrencyLimited) || fe.RetryAfter != time.Second {
			t.Fatalf("third request: err = %v, want ErrConcurrencyLimited with RetryAfter 1s", err)
		}
		// The default (5) applies to a tenant without its own limit.
		for range 5 {
			if _, err := l.Hold(ctx, tenant(3, nil, nil, nil)); err != nil {
				t.Fatalf("a tenant at the default: %v", err)
			}
		}
		if _, err := l.Hold(ctx, tenant(3, nil, nil, nil)); !errors.Is(err, tenants.ErrConcurrencyLimited) {
			t.Errorf("sixth request at the default of 5: err = %v", err)
		}
		release, err := l.Hold(ctx, other)
		if err != nil {
			t.Fatalf("other tenant: %v", err)
		}
		release()
		r1()
		if release, err := l.Hold(ctx, busy); err != nil {
			t.Errorf("after a release: %v", err)
		} else {
			release()
		}
		r2()
		if _, c := l.Refused(); c != 2 {
			t.Errorf("refused over concurrency = %d, want 2", c)
		}
	})

	t.Run("a waiter gets the freed slot", func(t *testing.T) {
		l := tenants.NewLimiter(tenants.LimitDefaults{Wait: time.Minute})
		r1, _ := l.Hold(ctx, busy)
		r2, _ := l.Hold(ctx, busy)
		done := make(chan error, 1)
		go func() {
			release, err := l.Hold(ctx, busy)
			if err == nil {
				release()
			}
			done <- err
		}()
		testenv.Eventually(t, 5*time.Second, func() bool { return l.Waiting(busy.ID) == 1 }, "the third request waiting")
		release, err := l.Hold(ctx, other)
		if err != nil {
			t.Fatalf("other tenant while one waits: %v", err)
		}
		release()
		r1()
		if err := <-done; err != nil {
			t.Errorf("waiter: %v", err)
		}
		r2()
	})

	t.Run("refused after the wait", func(t *testing.T) {
		l := tenants.NewLimiter(tenants.LimitDefaults{Wait: 20 * time.Millisecond})
		r1, _ := l.Hold(ctx, busy)
		r2, _ := l.Hold(ctx, busy)
		defer r1()
		defer r2()
		start := time.Now()
		_, err := l.Hold(ctx, busy)
		if !errors.Is(err, tenants.ErrConcurrencyLimited) {
			t.Fatalf("err = %v, want ErrConcurrencyLimited", err)
		}
		if d := time.Since(start); d < 20*time.Millisecond {
			t.Errorf("refused after %v, before the 20ms wait", d)
		}
	})

	t.Run("the client giving up ends the wait", func(t *testing.T) {
		l := tenants.NewLimiter(tenants.LimitDefaults{Wait: time.Hour})
		r1, _ := l.Hold(ctx, busy)
		r2, _ := l.Hold(ctx, busy)
		defer r1()
		defer r2()
		cctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { _, err := l.Hold(cctx, busy); done <- err }()
		testenv.Eventually(t, 5*time.Second, func() bool { return l.Waiting(busy.ID) == 1 }, "the request waiting")
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v, want context.Canceled", err)
		}
		if _, c := l.Refused(); c != 0 {
			t.Errorf("a cancelled wait counted as refused (%d)", c)
		}
	})
}

// TestLimiterLimitsChange: new limits take effect with the first request
// that carries them; a request still carrying the tenant as it was
// before the change does not bring the old limits back.
func TestLimiterLimitsChange(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	l := tenants.NewLimiter(tenants.LimitDefaults{}, tenants.LimiterClock(clk.now))
	before := tenant(1, ptr(1.0), ptr(1), nil)
	before.UpdatedAt = clk.now()
	if _, err := l.Hold(ctx, before); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Hold(ctx, before); !errors.Is(err, tenants.ErrRateLimited) {
		t.Fatalf("second request at 1/s: err = %v, want ErrRateLimited", err)
	}
	after := tenant(1, ptr(100.0), ptr(100), nil)
	after.UpdatedAt = before.UpdatedAt.Add(time.Second)
	for i := range 50 {
		if _, err := l.Hold(ctx, after); err != nil {
			t.Fatalf("request %d under the raised limit: %v", i+1, err)
		}
	}
	// A stale copy is served under the newer limits, not the older ones.
	for i := range 10 {
		if _, err := l.Hold(ctx, before); err != nil {
			t.Fatalf("stale request %d: %v (the old limit came back)", i+1, err)
		}
	}
	if l.Len() != 1 {
		t.Errorf("Len = %d, want 1", l.Len())
	}
}

// TestLimiterEviction: state is dropped once idle for the idle period,
// not before, and never while a request is in flight or the bucket is
// still refilling; a tenant that comes back starts afresh.
func TestLimiterEviction(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	idle := time.Minute
	l := tenants.NewLimiter(tenants.LimitDefaults{Concurrency: 4}, tenants.LimiterClock(clk.now), tenants.LimiterIdle(idle))
	const n = 10_000
	for i := range uint64(n) {
		release, err := l.Hold(ctx, tenant(i+1, nil, nil, nil))
		if err != nil {
			t.Fatal(err)
		}
		release()
	}
	// A request in flight, and a bucket that a slow rate keeps refilling
	// for longer than the idle period.
	holding, err := l.Hold(ctx, tenant(n+1, nil, nil, nil))
	var release func()
	if err != nil {
		t.Fatal(err)
	}
	slow := tenant(n+2, ptr(0.01), ptr(2), nil)
	release, err = l.Hold(ctx, slow)
	if err != nil {
		t.Fatal(err)
	}
	release()
	if got := l.Len(); got != n+2 {
		t.Fatalf("Len = %d, want %d", got, n+2)
	}

	clk.advance(idle - time.Second)
	l.Sweep()
	if got := l.Len(); got != n+2 {
		t.Fatalf("before the idle period: Len = %d, want %d", got, n+2)
	}

	// The first request after the period sweeps; no call to Sweep.
	clk.advance(2 * time.Second)
	release, err = l.Hold(ctx, tenant(1, nil, nil, nil))
	if err != nil {
		t.Fatal(err)
	}
	release()
	// Left: tenant 1 (just used), the one in flight, the refilling bucket.
	if got := l.Len(); got != 3 {
		t.Errorf("after the idle period: Len = %d, want 3", got)
	}
	holding()
	// 100 s refill one token at 0.01/s: past it the bucket is full.
	clk.advance(100 * time.Second)
	l.Sweep()
	if got := l.Len(); got != 0 {
		t.Errorf("once every state is idle: Len = %d, want 0", got)
	}
	for range 2 {
		release, err := l.Hold(ctx, slow)
		if err != nil {
			t.Fatalf("a returning tenant starts with a full bucket: %v", err)
		}
		release()
	}
}

// TestLimiterLogsRefusals: a tenant's refusals are logged at its first
// and then at most once a minute, with how many were refused since the
// last line; another tenant's get lines of their own.
func TestLimiterLogsRefusals(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	var buf testenv.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	l := tenants.NewLimiter(tenants.LimitDefaults{Rate: 1, Burst: 1}, tenants.LimiterClock(clk.now), tenants.LimiterLog(log))
	noisy, other := tenant(1, nil, nil, nil), tenant(2, nil, nil, nil)
	refuse := func(tn *tenants.Tenant, n int) {
		t.Helper()
		for range n {
			if _, err := l.Hold(ctx, tn); !errors.Is(err, tenants.ErrRateLimited) {
				t.Fatalf("err = %v, want ErrRateLimited", err)
			}
		}
	}
	lines := func() []string {
		return strings.Split(strings.TrimSpace(buf.String()), "\n")
	}
	_, _ = l.Hold(ctx, noisy)
	refuse(noisy, 5)
	if got := lines(); len(got) != 1 || !strings.Contains(got[0], "tenant=t1 limit=rate refused=1 ") || strings.Contains(got[0], "since_last_line") {
		t.Fatalf("after the first refusals: %q, want one line for the first", got)
	}
	clk.advance(30 * time.Second) // refills the bucket: one request passes
	_, _ = l.Hold(ctx, noisy)
	refuse(noisy, 3)
	if got := lines(); len(got) != 1 {
		t.Fatalf("within the minute: %d lines, want still 1", len(got))
	}
	_, _ = l.Hold(ctx, other)
	refuse(other, 1)
	clk.advance(31 * time.Second)
	_, _ = l.Hold(ctx, noisy)
	refuse(noisy, 1)
	got := lines()
	if len(got) != 3 || !strings.Contains(got[1], "tenant=t2 limit=rate refused=1 ") ||
		!strings.Contains(got[2], "tenant=t1 limit=rate refused=8 ") || !strings.Contains(got[2], "since_last_line=1m1s") {
		t.Errorf("log:\n%s\nwant t2's first line, then t1's with the 8 refused since its first", strings.Join(got, "\n"))
	}
	if !strings.Contains(got[0], "level=WARN") {
		t.Errorf("line %q is not at WARN", got[0])
	}
}

// TestLimiterHandler: the middleware answers a refusal through onError
// and aborts, releases the slot when the handler returns (and when it
// panics), and passes requests without a tenant or without a limiter.
func TestLimiterHandler(t *testing.T) {
	gin.SetMode(gin.TestMode)
	l := tenants.NewLimiter(tenants.LimitDefaults{Concurrency: 1})
	busy := tenant(1, nil, nil, nil)
	var refused atomic.Value
	onError := func(c *gin.Context, err error) {
		refused.Store(err)
		c.Status(http.StatusTooManyRequests)
	}
	e := gin.New()
	e.Use(func(c *gin.Context) {
		defer func() {
			if recover() != nil {
				c.Status(http.StatusInternalServerError)
			}
		}()
		c.Next()
	})
	withTenant := func(c *gin.Context) {
		if c.Query("tenant") != "" {
			c.Request = c.Request.WithContext(tenants.NewContext(c.Request.Context(), busy))
		}
	}
	e.GET("/ok", withTenant, l.Handler(onError), func(c *gin.Context) { c.Status(http.StatusOK) })
	e.GET("/panic", withTenant, l.Handler(onError), func(*gin.Context) { panic("boom") })
	var nilLimiter *tenants.Limiter
	e.GET("/none", withTenant, nilLimiter.Handler(onError), func(c *gin.Context) { c.Status(http.StatusOK) })

	get := func(path string) int {
		w := httptest.NewRecorder()
		e.ServeHTTP(w, httptest.NewRequest(http.MethodGet, path, nil))
		return w.Code
	}
	for i, tc := range []struct {
		path string
		want int
	}{
		{"/ok?tenant=1", 200}, {"/ok?tenant=1", 200}, {"/panic?tenant=1", 500}, {"/ok?tenant=1", 200},
		{"/ok", 200}, {"/none?tenant=1", 200},
	} {
		if got := get(tc.path); got != tc.want {
			t.Errorf("request %d, %s = %d, want %d (slot leaked?)", i+1, tc.path, got, tc.want)
		}
	}
	release, err := l.Hold(context.Background(), busy)
	if err != nil {
		t.Fatal(err)
	}
	if got := get("/ok?tenant=1"); got != http.StatusTooManyRequests {
		t.Errorf("with the slot held: %d, want 429", got)
	}
	if err, _ := refused.Load().(error); !errors.Is(err, tenants.ErrConcurrencyLimited) {
		t.Errorf("onError got %v, want ErrConcurrencyLimited", err)
	}
	release()
}

// TestLimiterAllocations: admitting a request and releasing its slot
// allocate nothing, with limits off and with them on. (Measured on the
// limiter itself: under the race detector, which CI runs, sync.Pool drops
// Gin's contexts at random, so a whole request through Gin allocates.)
func TestLimiterAllocations(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name     string
		defaults tenants.LimitDefaults
	}{
		{"off", tenants.LimitDefaults{}},
		{"concurrency", tenants.LimitDefaults{Concurrency: 8}},
		{"rate and concurrency", tenants.LimitDefaults{Rate: 1e6, Burst: 1e6, Concurrency: 8}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := tenants.NewLimiter(tc.defaults)
			tn := tenant(7, nil, nil, nil)
			if err := l.AdmitAndRelease(ctx, tn); err != nil { // the tenant's state exists from here on
				t.Fatal(err)
			}
			if n := testing.AllocsPerRun(1000, func() {
				if err := l.AdmitAndRelease(ctx, tn); err != nil {
					t.Error(err)
				}
			}); n != 0 {
				t.Errorf("%v allocations per request, want 0", n)
			}
		})
	}
}

// BenchmarkLimiter is the middleware's cost per request for a tenant
// under its limits, from parallel goroutines over 1,000 tenants.
func BenchmarkLimiter(b *testing.B) {
	gin.SetMode(gin.ReleaseMode)
	for _, bc := range []struct {
		name     string
		defaults tenants.LimitDefaults
	}{
		{"off", tenants.LimitDefaults{}},
		{"concurrency", tenants.LimitDefaults{Concurrency: 1 << 20}},
		{"rate+concurrency", tenants.LimitDefaults{Rate: 1e6, Burst: 1e6, Concurrency: 1 << 20}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			l := tenants.NewLimiter(bc.defaults)
			e := gin.New()
			e.GET("/", l.Handler(func(*gin.Context, error) { b.Error("refused") }), func(*gin.Context) {})
			var next atomic.Uint64
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				w := nopWriter{header: http.Header{}}
				reqs := make([]*http.Request, 1000)
				for i := range reqs {
					ctx := tenants.NewContext(context.Background(), tenant(next.Add(1)%1000+1, nil, nil, nil))
					reqs[i] = httptest.NewRequestWithContext(ctx, http.MethodGet, "/", nil)
				}
				i := 0
				for pb.Next() {
					e.ServeHTTP(w, reqs[i%len(reqs)])
					i++
				}
			})
		})
	}
}

// nopWriter is a ResponseWriter that keeps nothing, so that measuring the
// middleware does not measure a recorder.
type nopWriter struct{ header http.Header }

func (w nopWriter) Header() http.Header         { return w.header }
func (w nopWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w nopWriter) WriteHeader(int)             {}

// TestLimiterLendsSpareRoom: with LimitDefaults.Lend the concurrency limit
// is work-conserving. A tenant alone may go past its limit up to the
// pool; once other tenants' requests fill the pool it is held to its own
// limit again, while they always get their own slots.
func TestLimiterLendsSpareRoom(t *testing.T) {
	ctx := context.Background()
	hot, quiet := tenant(1, nil, nil, nil), tenant(2, nil, nil, nil)
	hold := func(t *testing.T, l *tenants.Limiter, tn *tenants.Tenant) func() {
		t.Helper()
		release, err := l.Hold(ctx, tn)
		if err != nil {
			t.Fatalf("tenant %d refused: %v", tn.ID, err)
		}
		return release
	}
	refused := func(t *testing.T, l *tenants.Limiter, tn *tenants.Tenant) {
		t.Helper()
		if _, err := l.Hold(ctx, tn); !errors.Is(err, tenants.ErrConcurrencyLimited) {
			t.Fatalf("tenant %d: err = %v, want ErrConcurrencyLimited", tn.ID, err)
		}
	}

	l := tenants.NewLimiter(tenants.LimitDefaults{Concurrency: 2, Lend: 4})
	// Alone, the hot tenant uses the whole pool: 2 own slots, 2 lent.
	var hotHeld []func()
	for range 4 {
		hotHeld = append(hotHeld, hold(t, l, hot))
	}
	refused(t, l, hot)
	if got := l.Borrowed(); got != 2 {
		t.Errorf("Borrowed() = %d, want 2", got)
	}
	// The quiet tenant's own slots are never lent away.
	q1, q2 := hold(t, l, quiet), hold(t, l, quiet)
	refused(t, l, quiet) // its limit, and the pool is full
	// The lent slots come back as the hot tenant's requests end; with the
	// quiet tenant's two in flight the pool has no room to lend again.
	hotHeld[3]()
	hotHeld[2]()
	refused(t, l, hot)
	q1()
	q2()
	// The pool has room again: the hot tenant may borrow once more.
	hotHeld = append(hotHeld[:2], hold(t, l, hot))
	for _, r := range hotHeld {
		r()
	}

	t.Run("no pool, no lending", func(t *testing.T) {
		l := tenants.NewLimiter(tenants.LimitDefaults{Concurrency: 2})
		r1, r2 := hold(t, l, hot), hold(t, l, hot)
		refused(t, l, hot)
		r1()
		r2()
		if got := l.Borrowed(); got != 0 {
			t.Errorf("Borrowed() = %d, want 0", got)
		}
	})
}
