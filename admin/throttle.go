package admin

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Wrong admin tokens are throttled per client address: each may send
// FailedAuthBurst wrong tokens at once, then one per FailedAuthEvery.
// Past that every request from the address is refused with 429 before its
// token is looked at, for otherwise a throttled guesser would still learn
// when it guessed right. A generated token (256 bits) cannot be guessed
// either way; this bounds online guessing of a short configured one to
// about 86,400 tries a day per address instead of the thousands a second
// an unthrottled loopback client can send. The allowance is generous on
// purpose: a Postman collection that checks one wrong token per run can
// be re-run back to back indefinitely.
const (
	FailedAuthBurst = 30
	FailedAuthEvery = time.Second
)

// maxThrottled bounds the addresses remembered. Past it, addresses whose
// allowance has refilled are forgotten first; if every one is still being
// throttled, half of them are forgotten, which at worst gives those
// addresses a fresh burst.
const maxThrottled = 10_000

// throttle counts wrong tokens per client address.
type throttle struct {
	every rate.Limit
	burst int
	now   func() time.Time

	mu      sync.Mutex
	clients map[string]*rate.Limiter
}

func newThrottle(every time.Duration, burst int, now func() time.Time) *throttle {
	return &throttle{every: rate.Every(every), burst: burst, now: now, clients: map[string]*rate.Limiter{}}
}

// wait reports how long addr must wait before its next request is looked
// at; zero when it may go on.
func (t *throttle) wait(addr string) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	lim, ok := t.clients[addr]
	if !ok {
		return 0
	}
	missing := 1 - lim.TokensAt(t.now())
	if missing <= 0 {
		return 0
	}
	// Rounded to the millisecond: the float arithmetic is off by a few
	// nanoseconds, and a caller is told whole seconds anyway.
	return max(time.Duration(missing/float64(t.every)*float64(time.Second)).Round(time.Millisecond), time.Millisecond)
}

// failed records one wrong token from addr.
func (t *throttle) failed(addr string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	lim, ok := t.clients[addr]
	if !ok {
		if len(t.clients) >= maxThrottled {
			t.prune(now)
		}
		lim = rate.NewLimiter(t.every, t.burst)
		t.clients[addr] = lim
	}
	lim.AllowN(now, 1)
}

// prune forgets the addresses whose allowance has refilled, and if that
// is not enough, half of the rest.
func (t *throttle) prune(now time.Time) {
	for a, lim := range t.clients {
		if lim.TokensAt(now) >= float64(t.burst) {
			delete(t.clients, a)
		}
	}
	for a := range t.clients {
		if len(t.clients) < maxThrottled/2 {
			return
		}
		delete(t.clients, a)
	}
}
