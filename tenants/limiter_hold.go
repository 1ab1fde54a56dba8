package tenants

import (
	"context"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// Holding repeated rate refusals (a bounded tarpit).
//
// A refusal costs little, but an immediate 429 lets a client that ignores
// Retry-After come straight back: bench/noisy's flood, 64 keep-alive
// connections sending closed-loop, drew about 10,000 refusals a second,
// and parsing, resolving and answering them on two cores was what slowed
// the other tenants. So a refusal that shows its client is not waiting is
// held before it is answered, for as long as its Retry-After asks
// (capped by LimitDefaults.RefusalHold): a closed-loop client then sends
// at most one request per connection per hold.
//
// Which refusals are held. Each tenant has a refusal window: it opens
// at a rate refusal made outside any window and lasts that refusal's
// Retry-After. The first Burst refusals of a window are answered at once;
// every later one in it is held. Why Burst: a client that honours
// Retry-After is refused at most once per request it has in flight when
// its bucket runs dry, and then waits at least to the window's end (at a
// rate of 1/s or more every Retry-After is exactly 1 s, so each waiting
// request comes back in a later window). Burst is how many requests the
// tenant is allowed to send at once, so a well-behaved client with no
// more than that in flight is never held. A client with more in flight,
// or one ignoring Retry-After, sees refusals past Burst in one window:
// those are held. (Below 1 request a second Retry-After is rounded up
// from a shorter wait, so a request that waited may come back before the
// window closes; if another request took the token meanwhile it is
// refused again in the same window, and a client with more than Burst/2
// requests in flight can then be held once.)
//
// How long. Until the moment this refusal's Retry-After names (the
// bucket holds a token again, rounded up to whole seconds, at least 1 s),
// capped by RefusalHold, and jittered down to as little as half of that
// (waitJittered) so that held clients do not all return at once. The answer is the same 429 with its Retry-After
// recomputed when it is written, so that it counts from the moment the
// client reads it, not from the moment the request arrived.
//
// Bounded. At most MaxHeld refusals are held at once in the process;
// past that a refusal is answered at once, as without holding, and
// counted (Held's full). A held refusal costs its sleeping goroutine and
// a timer, nothing else: it has no token (it was refused), no
// concurrency slot and no database connection (the rate is checked
// before either is taken).
//
// Ending early. A hold ends when the request's context does: the client
// went away, or the request's deadline (server.request_timeout, which
// config keeps above the hold) passed; the 429 is then answered at once
// (to nobody, when the client is gone). Graceful shutdown waits for
// requests in flight, so a held refusal delays it by at most its hold.
//
// Concurrency refusals are not held: they are already answered only
// after waiting up to tenancy.concurrency_wait for a slot, which paces a
// closed-loop client the same way.

// refusalWindow is one tenant's current refusal window.
type refusalWindow struct {
	mu sync.Mutex
	// end is when the window closes (unix nanoseconds); refusals is how
	// many rate refusals were made in it. A mutex rather than two atomics:
	// opening a window resets both at once, and a refusal counted into the
	// window that is just being replaced would be held at the new
	// window's start. Only the tenant's own refused requests take it.
	end      int64
	refusals int
}

// repeated counts a rate refusal made at now, whose Retry-After is ra,
// in the window, opening a new window when now is past the current one,
// and reports whether the refusal is past the free ones of its window.
func (w *refusalWindow) repeated(now time.Time, ra time.Duration, free int) bool {
	n := now.UnixNano()
	w.mu.Lock()
	defer w.mu.Unlock()
	if n >= w.end {
		w.end, w.refusals = n+int64(ra), 0
	}
	w.refusals++
	// free is the tenant's effective burst, at least 1 whenever it has a
	// rate (Limiter.For), so the first refusal of a window is never held.
	return w.refusals > free
}

// holdCounters are the Limiter's counts of held refusals.
type holdCounters struct {
	// now is how many refusals are held at this moment; it is what
	// MaxHeld bounds.
	now atomic.Int64
	// held counts refusals that were held; full counts those that would
	// have been but found MaxHeld already held, and were answered at
	// once.
	held, full atomic.Uint64
}

// Held returns how many rate refusals the limiter has held before
// answering them since it was built (held), and how many it answered at
// once instead because tenancy.max_held_refusals were held already
// (full).
func (l *Limiter) Held() (held, full uint64) {
	return l.holds.held.Load(), l.holds.full.Load()
}

// Holding returns how many refusals are being held at this moment.
func (l *Limiter) Holding() int { return int(l.holds.now.Load()) }

// refuseRate returns ErrRateLimited for a request of e's tenant refused
// at now, after holding it when it is a repeated refusal (holdFor).
func (l *Limiter) refuseRate(ctx context.Context, e *tenantLimit, now time.Time) error {
	ra := e.retryAfter(now)
	if d := l.holdFor(e, now, ra); d > 0 {
		l.holdWait(ctx, d)
		l.holds.now.Add(-1)
		// Recomputed: the Retry-After counted from the request's arrival
		// would tell the client to wait past the moment it names.
		ra = e.retryAfter(l.now())
	}
	err := *ErrRateLimited
	err.RetryAfter = ra
	return &err
}

// holdFor decides how long a rate refusal of e's tenant made at now, with
// Retry-After ra, is held: 0 to answer it at once. When it returns more
// than 0 it has taken one of the MaxHeld places, which the caller gives
// back once the hold is over.
func (l *Limiter) holdFor(e *tenantLimit, now time.Time, ra time.Duration) time.Duration {
	if l.defaults.RefusalHold <= 0 || l.defaults.MaxHeld <= 0 {
		return 0
	}
	if !e.window.repeated(now, ra, e.limits.Burst) {
		return 0
	}
	// Taken first and given back when over the bound, so that two
	// refusals racing for the last place cannot both have it.
	if l.holds.now.Add(1) > int64(l.defaults.MaxHeld) {
		l.holds.now.Add(-1)
		l.holds.full.Add(1)
		return 0
	}
	l.holds.held.Add(1)
	return min(ra, l.defaults.RefusalHold)
}

// waitJittered spends a hold of at most d: a random time between d/2 and
// d, or until ctx ends. Jittered because every refusal of one window
// names the same moment: a closed-loop flood held to that moment comes
// back on all its connections at once, and the bucket's burst then lets
// that many requests reach the database together (bench/noisy: the other
// tenants' p99 1.85-2.09x of quiet with fixed holds). Spread over half
// the hold, the returns meet the bucket about as its tokens refill.
func waitJittered(ctx context.Context, d time.Duration) {
	if half := d / 2; half > 0 {
		d = half + rand.N(half+1)
	}
	waitOrDone(ctx, d)
}

// waitOrDone waits d, or until ctx ends if that is sooner.
func waitOrDone(ctx context.Context, d time.Duration) {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-ctx.Done():
	}
}
