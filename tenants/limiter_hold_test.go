package tenants_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"tenantry/config"
	"tenantry/fault"
	"tenantry/internal/testenv"
	"tenantry/problem"
	"tenantry/tenants"
)

// holdStep is one request of a tenant in TestLimiterHoldDecision: the
// clock moves by advance, then the request is admitted and what it met
// is compared with want.
type holdStep struct {
	tenant  uint64 // 0: tenant 1
	advance time.Duration
	want    string
}

// outcome names what one request met: "served", or its refusal's code,
// whether it was answered at once or held and for how long, and the
// Retry-After it was answered with.
func outcome(err error, held []time.Duration) string {
	if err == nil {
		return "served"
	}
	fe, ok := fault.As(err)
	if !ok {
		return "error " + err.Error()
	}
	switch len(held) {
	case 0:
		return fmt.Sprintf("%s at once, retry %v", fe.Code, fe.RetryAfter)
	case 1:
		return fmt.Sprintf("%s held %v, retry %v", fe.Code, held[0], fe.RetryAfter)
	}
	return fmt.Sprintf("%s held %d times", fe.Code, len(held))
}

// TestLimiterHoldDecision: which rate refusals are held and for how long.
// The hold is not spent: the limiter's wait moves the injected clock by
// it, as the hold would, so the next step comes after it.
func TestLimiterHoldDecision(t *testing.T) {
	const (
		served  = "served"
		atOnce1 = "rate-limited at once, retry 1s"
		held1   = "rate-limited held 1s, retry 1s"
	)
	hold := func(rate float64, burst int, refusalHold time.Duration) tenants.LimitDefaults {
		return tenants.LimitDefaults{Rate: rate, Burst: burst, RefusalHold: refusalHold, MaxHeld: 10}
	}
	for _, tc := range []struct {
		name     string
		defaults tenants.LimitDefaults
		steps    []holdStep
	}{
		{"the first refusal at once, the repeated ones held", hold(1, 1, time.Second), []holdStep{
			{want: served}, {want: atOnce1}, {want: held1},
			// The hold has moved the clock past the window and refilled the
			// bucket: the client that came back is served, and its next
			// refusal opens a new window.
			{want: served}, {want: atOnce1}, {want: held1}, {want: served},
		}},
		{"the first Burst refusals of a window at once", hold(10, 3, time.Second), []holdStep{
			{want: served}, {want: served}, {want: served},
			{want: atOnce1}, {want: atOnce1}, {want: atOnce1}, {want: held1},
		}},
		{"held until the Retry-After, capped by refusal_hold", hold(0.1, 1, 3*time.Second), []holdStep{
			{want: served}, {want: "rate-limited at once, retry 10s"},
			// Retry-After is recomputed when the answer is written.
			{want: "rate-limited held 3s, retry 7s"}, {want: "rate-limited held 3s, retry 4s"},
			{want: "rate-limited held 3s, retry 1s"},
			// 1 s left: held that long, not the 3 s cap.
			{want: held1}, {want: served},
		}},
		{"a cap above the Retry-After holds until the Retry-After", hold(0.1, 1, time.Minute), []holdStep{
			{want: served}, {want: "rate-limited at once, retry 10s"}, {want: "rate-limited held 10s, retry 1s"}, {want: served},
		}},
		{"a client that waits Retry-After, Burst requests in flight, is never held", hold(1, 2, time.Second), []holdStep{
			{want: served}, {want: served}, {want: atOnce1}, {want: atOnce1},
			{advance: time.Second, want: served}, {want: atOnce1},
			{advance: time.Second, want: served}, {want: atOnce1},
		}},
		{"a window opens again after its Retry-After", hold(0.5, 1, time.Second), []holdStep{
			{want: served}, {want: "rate-limited at once, retry 2s"},
			{advance: 2 * time.Second, want: served}, {want: "rate-limited at once, retry 2s"},
			{want: "rate-limited held 1s, retry 1s"},
		}},
		{"windows are per tenant", hold(1, 1, time.Second), []holdStep{
			{want: served}, {want: atOnce1}, {want: held1},
			{tenant: 2, want: served}, {tenant: 2, want: atOnce1}, {tenant: 2, want: held1},
		}},
		{"refusal_hold 0 holds nothing", hold(1, 1, 0), []holdStep{
			{want: served}, {want: atOnce1}, {want: atOnce1}, {want: atOnce1},
		}},
		{"max_held_refusals 0 holds nothing", tenants.LimitDefaults{Rate: 1, Burst: 1, RefusalHold: time.Second}, []holdStep{
			{want: served}, {want: atOnce1}, {want: atOnce1}, {want: atOnce1},
		}},
		{"concurrency refusals are not held", tenants.LimitDefaults{Concurrency: 1, RefusalHold: time.Second, MaxHeld: 10}, []holdStep{
			{want: served},
			{want: "concurrency-limited at once, retry 1s"}, {want: "concurrency-limited at once, retry 1s"},
			{want: "concurrency-limited at once, retry 1s"},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := newClock()
			var held []time.Duration
			l := tenants.NewLimiter(tc.defaults, tenants.LimiterClock(clk.now),
				tenants.LimiterHoldWait(func(_ context.Context, d time.Duration) {
					held = append(held, d)
					clk.advance(d)
				}))
			var wantHeld uint64
			for i, s := range tc.steps {
				clk.advance(s.advance)
				held = held[:0]
				// Slots are kept: the concurrency case needs its first
				// request still in flight.
				_, err := l.Hold(context.Background(), tenant(max(s.tenant, 1), nil, nil, nil))
				if got := outcome(err, held); got != s.want {
					t.Errorf("request %d: %s, want %s", i+1, got, s.want)
				}
				if strings.Contains(s.want, " held ") {
					wantHeld++
				}
			}
			if h, full := l.Held(); h != wantHeld || full != 0 {
				t.Errorf("Held = %d, %d; want %d held, 0 answered at once for a full cap", h, full, wantHeld)
			}
			if n := l.Holding(); n != 0 {
				t.Errorf("Holding = %d after every hold ended, want 0", n)
			}
		})
	}
}

// TestLimiterHoldCap: at most max_held_refusals are held at once in the
// whole process; past it a refusal that would be held is answered at
// once and counted, whichever tenant it is; a place that frees up is
// used again.
func TestLimiterHoldCap(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	release := make(chan struct{})
	l := tenants.NewLimiter(tenants.LimitDefaults{Rate: 1, Burst: 1, RefusalHold: time.Second, MaxHeld: 2},
		tenants.LimiterClock(clk.now),
		tenants.LimiterHoldWait(func(ctx context.Context, _ time.Duration) {
			select {
			case <-release:
			case <-ctx.Done():
			}
		}))
	noisy, other := tenant(1, nil, nil, nil), tenant(2, nil, nil, nil)
	// A refusal that should go out at once but is held instead ends with
	// this context and shows in Held's counts; the test does not hang.
	refuse := func(tn *tenants.Tenant) {
		t.Helper()
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		if _, err := l.Hold(ctx, tn); !errors.Is(err, tenants.ErrRateLimited) {
			t.Fatalf("tenant %d: err = %v, want ErrRateLimited", tn.ID, err)
		}
	}
	for _, tn := range []*tenants.Tenant{noisy, other} {
		if _, err := l.Hold(ctx, tn); err != nil {
			t.Fatal(err)
		}
		refuse(tn) // each tenant's first refusal: at once
	}
	done := make(chan error, 2)
	for range 2 {
		go func() { _, err := l.Hold(ctx, noisy); done <- err }()
	}
	testenv.Eventually(t, 5*time.Second, func() bool { return l.Holding() == 2 }, "two refusals held")
	// The cap is full: a repeated refusal of either tenant goes out at once.
	refuse(noisy)
	refuse(other)
	if h, full := l.Held(); h != 2 || full != 2 {
		t.Errorf("Held = %d, %d; want 2 held, 2 answered at once for the full cap", h, full)
	}
	close(release)
	for range 2 {
		if err := <-done; !errors.Is(err, tenants.ErrRateLimited) {
			t.Errorf("held refusal: err = %v, want ErrRateLimited", err)
		}
	}
	if n := l.Holding(); n != 0 {
		t.Errorf("Holding = %d after the holds ended, want 0", n)
	}
	refuse(noisy) // a place is free again: held (and let go at once)
	if h, full := l.Held(); h != 3 || full != 2 {
		t.Errorf("after the cap freed: Held = %d, %d; want 3, 2", h, full)
	}
}

// TestLimiterHoldEndsWhenTheClientGoes: a held refusal ends as soon as
// its request's context does, on the real timer, with a hold of about
// 17 minutes (the Retry-After of a rate of one request per 1,000 s).
func TestLimiterHoldEndsWhenTheClientGoes(t *testing.T) {
	l := tenants.NewLimiter(tenants.LimitDefaults{Rate: 0.001, Burst: 1, RefusalHold: time.Hour, MaxHeld: 10})
	noisy := tenant(1, nil, nil, nil)
	ctx := context.Background()
	if _, err := l.Hold(ctx, noisy); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Hold(ctx, noisy); !errors.Is(err, tenants.ErrRateLimited) {
		t.Fatalf("first refusal: %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { _, err := l.Hold(cctx, noisy); done <- err }()
	testenv.Eventually(t, 5*time.Second, func() bool { return l.Holding() == 1 }, "the refusal held")
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, tenants.ErrRateLimited) {
			t.Errorf("err = %v, want ErrRateLimited (answered, to nobody)", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the hold went on after its client went away")
	}
	if n := l.Holding(); n != 0 {
		t.Errorf("Holding = %d, want 0", n)
	}
}

// TestHeldRefusalBoundsShutdown: graceful shutdown waits for a held
// refusal no longer than its hold (300 ms here), not the 100 s its
// Retry-After names, and the held client gets its 429.
func TestHeldRefusalBoundsShutdown(t *testing.T) {
	gin.SetMode(gin.TestMode)
	const hold = 300 * time.Millisecond
	l := tenants.NewLimiter(tenants.LimitDefaults{Rate: 0.01, Burst: 1, RefusalHold: hold, MaxHeld: 10})
	noisy := tenant(1, nil, nil, nil)
	e := gin.New()
	e.GET("/", func(c *gin.Context) {
		c.Request = c.Request.WithContext(tenants.NewContext(c.Request.Context(), noisy))
	}, l.Handler(func(c *gin.Context, err error) {
		pr, _ := problem.From(err)
		_ = problem.Write(c.Writer, pr, c.Request.URL.Path)
	}), func(c *gin.Context) { c.Status(http.StatusOK) })
	srv := httptest.NewServer(e)
	defer srv.Close()
	get := func() (int, string) {
		resp, err := http.Get(srv.URL)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, resp.Header.Get("Retry-After")
	}
	if st, _ := get(); st != http.StatusOK {
		t.Fatalf("first request: %d", st)
	}
	if st, _ := get(); st != http.StatusTooManyRequests {
		t.Fatalf("first refusal: %d", st)
	}
	type answer struct {
		status     int
		retryAfter string
	}
	heldAnswer := make(chan answer, 1)
	go func() { st, ra := get(); heldAnswer <- answer{st, ra} }()
	testenv.Eventually(t, 5*time.Second, func() bool { return l.Holding() == 1 }, "the refusal held")

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	if err := srv.Config.Shutdown(ctx); err != nil {
		// Closing the connection ends the hold (its request's context),
		// so that the deferred Close does not wait for it.
		srv.CloseClientConnections()
		t.Fatalf("Shutdown: %v (waited %v)", err, time.Since(start))
	}
	// net/http looks for idle connections at most every 500 ms.
	if took := time.Since(start); took > hold+2*time.Second {
		t.Errorf("shutdown took %v with a hold of %v", took, hold)
	}
	if a := <-heldAnswer; a.status != http.StatusTooManyRequests || a.retryAfter == "" {
		t.Errorf("held client got %d with Retry-After %q, want 429 with one", a.status, a.retryAfter)
	}
}

// TestHeldRefusalsPaceAFlood runs the whole service: tenant1 (5/s, burst
// 5, refusal_hold 50 ms) is flooded closed-loop on 8 keep-alive
// connections that ignore Retry-After, API and pages alike, for a second.
// Held, each connection gets at most about one answer per half hold (a
// hold is jittered between half and all of refusal_hold), so the 429s are
// bounded by connections × window / (hold/2) (320; without holding a
// loopback flood draws thousands). Held answers are the same 429
// problem+json or page with Retry-After, and tenant2 is served at once
// throughout.
func TestHeldRefusalsPaceAFlood(t *testing.T) {
	const (
		conns  = 8
		window = time.Second
		hold   = 50 * time.Millisecond
		burst  = 5
	)
	env := testenv.Start(t, "postgres", func(c *config.Config) {
		c.Tenancy.RefusalHold = hold
		// A default so high it never bites tenant2.
		c.Tenancy.RateLimit, c.Tenancy.RateBurst = 10_000, 10_000
	})
	if _, err := env.App.Catalog.SetLimits(context.Background(), "tenant1",
		tenants.LimitsChange{Rate: ptr(5.0), Burst: ptr(burst)}); err != nil {
		t.Fatal(err)
	}
	untilStatus(t, env.URL1+"/api/tenant", http.StatusTooManyRequests, time.Second)

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns}}
	defer client.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), window)
	defer cancel()
	var (
		tooMany, ok atomic.Int64
		mu          sync.Mutex
		heldAPI     *answer // a 429 answered after at least the hold
		heldPage    *answer
		failures    []string
		wg          sync.WaitGroup
	)
	for i := range conns {
		page := i%4 == 3 // two of the eight connections ask for pages
		wg.Go(func() {
			for ctx.Err() == nil {
				url, accept := env.URL1+"/api/tenant", ""
				if page {
					url, accept = env.URL1+"/users", "text/html"
				}
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
				if accept != "" {
					req.Header.Set("Accept", accept)
				}
				start := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					if ctx.Err() == nil {
						mu.Lock()
						failures = append(failures, err.Error())
						mu.Unlock()
					}
					return
				}
				b, err := io.ReadAll(resp.Body)
				_ = resp.Body.Close()
				if err != nil {
					return // the window ended while reading
				}
				a := &answer{status: resp.StatusCode, header: resp.Header, body: string(b)}
				switch a.status {
				case http.StatusOK:
					ok.Add(1)
				case http.StatusTooManyRequests:
					tooMany.Add(1)
					if time.Since(start) >= hold {
						mu.Lock()
						if page && heldPage == nil {
							heldPage = a
						} else if !page && heldAPI == nil {
							heldAPI = a
						}
						mu.Unlock()
					}
				default:
					mu.Lock()
					failures = append(failures, fmt.Sprintf("%d %s", a.status, a.body))
					mu.Unlock()
				}
			}
		})
	}

	// tenant2, while tenant1's refusals are being held: twenty requests,
	// every one served, and together in less time than one hold each
	// (their latency is that of a request, not of a hold).
	testenv.Eventually(t, 5*time.Second, func() bool { return env.App.Limits.Holding() > 0 }, "tenant1's refusals held")
	start := time.Now()
	for i := range 20 {
		if a := send(t, http.MethodGet, env.URL2+"/api/tenant", "", ""); a.status != http.StatusOK {
			t.Errorf("tenant2 request %d during the flood: %d %s", i+1, a.status, a.body)
		}
	}
	tenant2 := time.Since(start)
	if ctx.Err() != nil {
		t.Logf("tenant2's requests outlasted the flood (%v)", tenant2)
	}
	if tenant2 >= 20*hold {
		t.Errorf("tenant2's 20 requests took %v during the flood, want less than 20 holds (%v)", tenant2, 20*hold)
	}
	wg.Wait()

	n := tooMany.Load()
	// Each connection: one answer per shortest hold (half the hold), and
	// one more begun before the window; the first Burst refusals of each
	// window (two at most in the second) come at once; then a margin of 2×.
	bound := int64(2 * (conns*(int(window/(hold/2))+1) + 2*burst))
	t.Logf("flood of %v on %d connections: %d 429s, %d served; tenant2's 20 requests: %v; Held = %v",
		window, conns, n, ok.Load(), tenant2, fmt.Sprint(env.App.Limits.Held()))
	if n == 0 || n > bound {
		t.Errorf("%d 429s in %v on %d connections with a hold of %v, want 1 to %d", n, window, conns, hold, bound)
	}
	if len(failures) > 0 {
		t.Errorf("%d requests failed otherwise, e.g. %s", len(failures), failures[0])
	}
	if held, full := env.App.Limits.Held(); held == 0 || full != 0 {
		t.Errorf("Held = %d, %d; want some held, none over the default cap", held, full)
	}
	if heldAPI == nil || heldPage == nil {
		t.Fatalf("no held answer seen (API %v, page %v)", heldAPI != nil, heldPage != nil)
	}
	checkTooMany(t, *heldAPI, "rate-limited", 1, false)
	checkTooMany(t, *heldPage, "rate-limited", 1, true)
	// The flood's last requests, cut off at the window's end, leave no
	// hold behind.
	testenv.Eventually(t, 5*time.Second, func() bool { return env.App.Limits.Holding() == 0 }, "every hold ended")
}

// TestWaitJittered: a real hold lasts between half and all of what it is
// given, and ends with its context.
func TestWaitJittered(t *testing.T) {
	const d = 40 * time.Millisecond
	for range 5 {
		start := time.Now()
		tenants.WaitJittered(context.Background(), d)
		if took := time.Since(start); took < d/2 || took > d+time.Second {
			t.Fatalf("a hold of %v took %v, want %v to %v", d, took, d/2, d)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	start := time.Now()
	tenants.WaitJittered(ctx, time.Hour)
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("a hold whose context had ended took %v", took)
	}
}
