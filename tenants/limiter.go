package tenants

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
	"golang.org/x/time/rate"

	"tenantry/fault"
)

// LimitDefaults are the limits of a tenant that has none of its own: the
// tenancy.* configuration. A zero limit is no limit.
type LimitDefaults struct {
	// Rate is requests per second (tenancy.rate_limit).
	Rate float64
	// Burst is tenancy.rate_burst; 0 takes Rate rounded up, at least 1.
	Burst int
	// Concurrency is requests in flight (tenancy.max_concurrent_per_tenant).
	Concurrency int
	// Wait is how long a request over the concurrency limit waits for a
	// slot before it is refused (tenancy.concurrency_wait).
	Wait time.Duration
	// Lend makes the concurrency limit work-conserving: a request over
	// its tenant's limit is still admitted, for that one request, while
	// no more than Lend requests of limited tenants are in flight in all,
	// so a tenant alone on the process uses most of the database pool.
	// Lend stays below the pool (config.LendLimit keeps a quarter back),
	// so connections are free for a tenant that arrives while one is
	// borrowing; once the others fill the pool every tenant is held to
	// its own limit again. 0 never lends.
	Lend int
	// RefusalHold is the longest a repeated rate refusal is held before
	// it is answered (tenancy.refusal_hold; limiter_hold.go); 0 answers
	// every refusal at once.
	RefusalHold time.Duration
	// MaxHeld bounds the refusals held at once in the whole process
	// (tenancy.max_held_refusals); past it a refusal is answered at once.
	// 0 holds none.
	MaxHeld int
}

// Errors the Limiter refuses a request with: 429 on every API, with
// Retry-After.
var (
	// ErrRateLimited means the tenant sent more requests than its rate
	// allows; RetryAfter says when the next one will be accepted.
	ErrRateLimited = &fault.Error{Kind: fault.TooMany, Code: "rate-limited", Title: "Too many requests",
		Message: "This workspace is sending requests faster than it may; retry after the number of seconds in Retry-After."}
	// ErrConcurrencyLimited means the tenant already had as many requests
	// in flight as it may, and none finished within the wait.
	ErrConcurrencyLimited = &fault.Error{Kind: fault.TooMany, Code: "concurrency-limited", Title: "Too many requests",
		Message:    "This workspace has too many requests in progress; retry after the number of seconds in Retry-After.",
		RetryAfter: time.Second}
)

// Limiter bounds each tenant's request rate (a token bucket,
// golang.org/x/time/rate) and the number of its requests served at once
// (a semaphore), so that one tenant cannot take the whole database pool
// or the whole CPU from the others. Handler is its Gin middleware; it
// runs after Middleware.Handler, which puts the tenant in the context.
//
// A tenant's limits are its own (Tenant.Limits, set with
// Catalog.SetLimits) or else the defaults. They are read from the
// *Tenant the resolver hands each request, so a change in the catalog
// takes effect with the resolver's reload: at once on the process that
// made it, within a second on the others. Limits are per process: N
// processes let a tenant have N times its limits in all, as N pools let
// it have N times the connections.
//
// A tenant that goes on sending through its rate refusals, ignoring
// their Retry-After, has its further refusals held before they are
// answered (RefusalHold, MaxHeld; see limiter_hold.go), so that a client
// that sends its next request as soon as the last is answered is paced
// by the hold instead of costing a refusal per round trip.
//
// State is kept per tenant ID, created on a tenant's first request under
// a limit and dropped once it has been idle for the idle period with
// nothing in flight and its bucket full again (so dropping it changes no
// answer); a sweep over every entry runs on the first request after each
// idle period. There is no goroutine per tenant, and memory follows the
// tenants active in the last idle period, not the catalog's size.
type Limiter struct {
	defaults LimitDefaults
	now      func() time.Time
	idle     time.Duration
	log      *slog.Logger // nil: refusals are not logged

	shards    [limiterShards]limiterShard
	nextSweep atomic.Int64 // unix nanoseconds

	rateRefused, concurrencyRefused atomic.Uint64
	// holds counts held refusals (limiter_hold.go).
	holds holdCounters
	// holdWait spends a held refusal's hold; tests replace it.
	holdWait func(ctx context.Context, d time.Duration)
	// inflight counts the requests of tenants under a concurrency limit
	// that are admitted or waiting; it decides whether a slot may be
	// lent (LimitDefaults.Lend).
	inflight atomic.Int64
	borrowed atomic.Uint64
}

// limiterShards spreads the entries over several maps so that requests of
// different tenants rarely share a lock.
const limiterShards = 16

type limiterShard struct {
	mu sync.RWMutex
	m  map[uint64]*tenantLimit
}

// DefaultLimiterIdle is how long a tenant's limiter state outlives its
// last request.
const DefaultLimiterIdle = time.Minute

// LimiterOption changes a Limiter built by NewLimiter.
type LimiterOption func(*Limiter)

// LimiterClock makes the limiter read the time from now (for buckets,
// idleness, sweeps and refusal windows) instead of time.Now; tests use
// it. Waiting for a concurrency slot and holding a refusal still use real
// timers.
func LimiterClock(now func() time.Time) LimiterOption {
	return func(l *Limiter) { l.now = now }
}

// LimiterIdle sets how long idle state is kept (DefaultLimiterIdle).
func LimiterIdle(d time.Duration) LimiterOption {
	return func(l *Limiter) { l.idle = d }
}

// LimiterLog makes the limiter log, at WARN, when it refuses a tenant's
// requests: at the first refusal, then at most once per
// refusalLogInterval per tenant, with the number refused since the last
// line. Without it nothing is logged (the responses are the record).
func LimiterLog(log *slog.Logger) LimiterOption {
	return func(l *Limiter) { l.log = log }
}

// refusalLogInterval spaces a tenant's refusal lines: a tenant over its
// limit may be refused thousands of times a second, and one line per
// refusal would turn its flood into a flood of log.
const refusalLogInterval = time.Minute

// NewLimiter returns a limiter that applies d to every tenant without
// limits of its own.
func NewLimiter(d LimitDefaults, opts ...LimiterOption) *Limiter {
	l := &Limiter{defaults: d, now: time.Now, idle: DefaultLimiterIdle, holdWait: waitJittered}
	for _, o := range opts {
		o(l)
	}
	for i := range l.shards {
		l.shards[i].m = map[uint64]*tenantLimit{}
	}
	l.nextSweep.Store(l.now().Add(l.idle).UnixNano())
	return l
}

// Effective are the limits that apply to one tenant, overrides and
// defaults combined; zero fields are no limit.
type Effective struct {
	Rate        float64
	Burst       int
	Concurrency int
}

// For returns the limits that apply to t.
func (l *Limiter) For(t *Tenant) Effective {
	e := Effective{Rate: l.defaults.Rate, Burst: l.defaults.Burst, Concurrency: l.defaults.Concurrency}
	if t.RateLimit != nil {
		e.Rate = *t.RateLimit
	}
	if t.RateBurst != nil {
		e.Burst = *t.RateBurst
	}
	if t.MaxConcurrent != nil {
		e.Concurrency = *t.MaxConcurrent
	}
	if e.Rate <= 0 {
		// A burst means nothing without a rate; dropping it keeps
		// "no limit at all" one value, the zero Effective.
		e.Rate, e.Burst = 0, 0
	} else if e.Burst <= 0 {
		e.Burst = max(int(math.Ceil(e.Rate)), 1)
	}
	return e
}

// Refused returns how many requests the limiter has refused since it was
// built, over the rate and over the concurrency limit.
func (l *Limiter) Refused() (rate, concurrency uint64) {
	return l.rateRefused.Load(), l.concurrencyRefused.Load()
}

// Len returns how many tenants' states the limiter holds.
func (l *Limiter) Len() int {
	n := 0
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.RLock()
		n += len(s.m)
		s.mu.RUnlock()
	}
	return n
}

// Handler returns Gin middleware that admits each request of the tenant
// in its context or answers onError with ErrRateLimited,
// ErrConcurrencyLimited (both 429 with Retry-After) or, when the client
// gives up while waiting for a slot, its context's error; then it aborts.
// A repeated rate refusal reaches onError only once its hold is over
// (limiter_hold.go). A nil Limiter limits nothing.
func (l *Limiter) Handler(onError func(c *gin.Context, err error)) gin.HandlerFunc {
	return func(c *gin.Context) {
		if l == nil {
			c.Next()
			return
		}
		t, ok := FromContext(c.Request.Context())
		if !ok {
			// Only routes behind Middleware.Handler use this; a route
			// without a tenant has no tenant's limits to apply.
			c.Next()
			return
		}
		held, err := l.admit(c.Request.Context(), t)
		if err != nil {
			onError(c, err)
			c.Abort()
			return
		}
		// Deferred, so that a panicking handler (answered 500 by the
		// recover middleware further out) still frees its slot.
		defer l.release(held)
		c.Next()
	}
}

// ticket is what an admitted request holds until release: one of its
// tenant's slots (own), a slot lent from the pool's spare room, or
// nothing (a tenant without a concurrency limit).
type ticket struct {
	e   *tenantLimit
	own bool
}

// release gives back what t holds.
func (l *Limiter) release(t ticket) {
	if t.e == nil {
		return
	}
	if t.own {
		t.e.release()
	}
	l.inflight.Add(-1)
}

// Borrowed returns how many requests were admitted over their tenant's
// concurrency limit because the pool had room (LimitDefaults.Lend).
func (l *Limiter) Borrowed() uint64 { return l.borrowed.Load() }

// admit applies t's limits to one request and returns what the request
// holds until release.
func (l *Limiter) admit(ctx context.Context, t *Tenant) (ticket, error) {
	want := l.For(t)
	if want == (Effective{}) {
		// No limit at all: no state, no clock, nothing to allocate.
		return ticket{}, nil
	}
	now := l.now()
	l.maybeSweep(now)
	e := l.entry(t, want, now)
	if e.bucket != nil && !e.bucket.AllowN(now, 1) {
		l.rateRefused.Add(1)
		l.refused(ctx, t, e, "rate", now)
		// Checked before a slot is sought: a held refusal keeps no
		// token, no concurrency slot and no database connection.
		return ticket{}, l.refuseRate(ctx, e, now)
	}
	if e.slots == nil {
		return ticket{}, nil
	}
	// Counted before the slot is sought, so that a request waiting for
	// one is demand on the pool too, and no tenant borrows past it.
	n := l.inflight.Add(1)
	select {
	case e.slots <- struct{}{}:
		return ticket{e: e, own: true}, nil
	default:
	}
	if n <= int64(l.defaults.Lend) {
		l.borrowed.Add(1)
		return ticket{e: e}, nil
	}
	if err := e.wait(ctx, l.defaults.Wait); err != nil {
		l.inflight.Add(-1)
		if fault.KindOf(err) == fault.TooMany {
			l.concurrencyRefused.Add(1)
			l.refused(ctx, t, e, "concurrency", now)
		}
		return ticket{}, err
	}
	return ticket{e: e, own: true}, nil
}

// refused counts a refusal of t's request over limit ("rate",
// "concurrency") and logs it when LimiterLog asked for it and the
// tenant's last line is refusalLogInterval old (or there was none).
func (l *Limiter) refused(ctx context.Context, t *Tenant, e *tenantLimit, limit string, now time.Time) {
	e.refusals.Add(1)
	last := e.logged.Load()
	if l.log == nil || (last != 0 && now.UnixNano()-last < int64(refusalLogInterval)) ||
		!e.logged.CompareAndSwap(last, now.UnixNano()) {
		return
	}
	attrs := []any{"tenant", t.Name, "limit", limit, "refused", e.refusals.Swap(0),
		"rate", e.limits.Rate, "burst", e.limits.Burst, "concurrency", e.limits.Concurrency}
	if last != 0 {
		// refused then counts every refusal since that line.
		attrs = append(attrs, "since_last_line", time.Duration(now.UnixNano()-last).Round(time.Second).String())
	}
	l.log.WarnContext(ctx, "tenant over its limits: refusing its requests with 429", attrs...)
}

// entry returns t's state for limits want, creating it, or replacing it
// when t's limits have changed since it was made.
//
// Invariant that makes the idle sweep safe: a request marks the entry
// used while it holds its shard's read lock, and the sweep looks at that
// mark, and deletes, holding the write lock. So a request either marked
// the entry before the sweep looked (and the sweep keeps it), or finds it
// gone and makes a new one; it never goes on using an entry the map has
// dropped, which would let it escape the limit a new entry enforces.
func (l *Limiter) entry(t *Tenant, want Effective, now time.Time) *tenantLimit {
	s := &l.shards[t.ID%limiterShards]
	s.mu.RLock()
	e := s.m[t.ID]
	if e != nil && (e.limits == want || t.UpdatedAt.Before(e.version)) {
		e.used.Store(now.UnixNano())
		s.mu.RUnlock()
		return e
	}
	s.mu.RUnlock()

	s.mu.Lock()
	defer s.mu.Unlock()
	e = s.m[t.ID]
	// A request still carrying the tenant as it was before a change (the
	// resolver handed it out just before its reload) must not put the old
	// limits back: only a version at least as new as the entry's replaces
	// it. Requests in flight under the old entry release their slots to
	// it, so for as long as they run the tenant may have up to the old
	// and the new limit in flight together.
	if e == nil || (e.limits != want && !t.UpdatedAt.Before(e.version)) {
		e = newTenantLimit(want, t.UpdatedAt)
		s.m[t.ID] = e
	}
	e.used.Store(now.UnixNano())
	return e
}

// maybeSweep drops idle state once per idle period. The first request
// after the period sweeps (one CompareAndSwap decides which); the others
// go on at once.
func (l *Limiter) maybeSweep(now time.Time) {
	next := l.nextSweep.Load()
	if now.UnixNano() < next || !l.nextSweep.CompareAndSwap(next, now.Add(l.idle).UnixNano()) {
		return
	}
	l.Sweep()
}

// Sweep drops the state of every tenant that has been idle for the idle
// period: no request in that time, none in flight or waiting, and its
// bucket full again, so that a new state made at its next request answers
// exactly as the dropped one would have.
func (l *Limiter) Sweep() {
	now := l.now()
	cutoff := now.Add(-l.idle).UnixNano()
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		for id, e := range s.m {
			if e.idle(now, cutoff) {
				delete(s.m, id)
			}
		}
		s.mu.Unlock()
	}
}

// tenantLimit is one tenant's state: its bucket and its slots, for one
// set of limits.
type tenantLimit struct {
	limits Effective
	// version is the tenant's UpdatedAt when these limits were read.
	version time.Time
	bucket  *rate.Limiter // nil without a rate limit
	// slots holds a token per request in flight; nil without a
	// concurrency limit.
	slots   chan struct{}
	waiting atomic.Int32
	used    atomic.Int64 // unix nanoseconds of the last request
	// refusals counts refused requests since the last log line, logged
	// when that line was written (unix nanoseconds; 0: never).
	refusals atomic.Uint64
	logged   atomic.Int64
	// window is the tenant's current refusal window, which decides which
	// of its rate refusals are held (limiter_hold.go).
	window refusalWindow
}

func newTenantLimit(want Effective, version time.Time) *tenantLimit {
	e := &tenantLimit{limits: want, version: version}
	if want.Rate > 0 {
		// A new bucket is full, whatever the clock says.
		e.bucket = rate.NewLimiter(rate.Limit(want.Rate), want.Burst)
	}
	if want.Concurrency > 0 {
		e.slots = make(chan struct{}, want.Concurrency)
	}
	return e
}

func (e *tenantLimit) release() { <-e.slots }

// wait waits up to d (and no longer than ctx) for a slot.
func (e *tenantLimit) wait(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ErrConcurrencyLimited
	}
	e.waiting.Add(1)
	defer e.waiting.Add(-1)
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case e.slots <- struct{}{}:
		return nil
	case <-timer.C:
		return ErrConcurrencyLimited
	case <-ctx.Done():
		return fmt.Errorf("wait for a request slot: %w", ctx.Err())
	}
}

// retryAfter is how long until the bucket holds a whole token again,
// rounded up to a whole second, as Retry-After counts.
func (e *tenantLimit) retryAfter(now time.Time) time.Duration {
	missing := 1 - e.bucket.TokensAt(now)
	d := time.Duration(missing / float64(e.bucket.Limit()) * float64(time.Second))
	return max(time.Second, (d + time.Second - 1).Truncate(time.Second))
}

// idle reports whether e may be dropped at now (see Sweep).
func (e *tenantLimit) idle(now time.Time, cutoff int64) bool {
	if e.used.Load() > cutoff {
		return false
	}
	if e.slots != nil && (len(e.slots) > 0 || e.waiting.Load() > 0) {
		return false
	}
	return e.bucket == nil || e.bucket.TokensAt(now) >= float64(e.bucket.Burst())
}
