package admin

import (
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Wrong admin tokens are throttled per client network (budgetKey): each
// may send FailedAuthBurst wrong tokens at once, then one per
// FailedAuthEvery. Past that every request from the network is refused
// with 429 before its token is looked at, for otherwise a throttled guesser
// would still learn when it guessed right. A generated token (256 bits)
// cannot be guessed either way; this bounds online guessing of a short
// configured one to about 86,400 tries a day per network instead of the
// thousands a second an unthrottled loopback client can send. The
// allowance is generous on purpose: a Postman collection that checks one
// wrong token per run can be re-run back to back indefinitely.
const (
	FailedAuthBurst = 30
	FailedAuthEvery = time.Second
)

// maxThrottled bounds the networks remembered. Past it, networks whose
// allowance has refilled are forgotten first; if every one is still being
// throttled, half of them are forgotten, which at worst gives those
// networks a fresh burst.
const maxThrottled = 10_000

// IPv6 budgets cover a /64: it is the smallest prefix a site is given, and
// one host can pick any of its 2^64 addresses, so a budget per address
// would bound nothing.
const ipv6BudgetBits = 64

var (
	// loopback is the one budget of every loopback address: a local
	// process may bind any of 127.0.0.0/8 (Linux routes all of it to lo)
	// or ::1, so budgets per address would give it 2^24 of them.
	loopback = netip.MustParsePrefix("127.0.0.0/8")
	// unparsed is the budget of addresses that are not IPs at all; the
	// listeners only deliver IPs, so sharing one budget costs nobody.
	unparsed = netip.Prefix{}
)

// budgetKey returns the network whose budget addr spends: all loopback
// addresses together (127.0.0.0/8 and ::1), an IPv4 address alone, an
// IPv6 address with the rest of its /64. IPv4-mapped IPv6 addresses
// (::ffff:a.b.c.d, what a dual-stack listener reports) count as the IPv4
// address they carry, so one client cannot get two budgets by switching
// notation; zones are dropped for the same reason.
func budgetKey(addr string) netip.Prefix {
	ip, err := netip.ParseAddr(addr)
	if err != nil {
		return unparsed
	}
	ip = ip.Unmap().WithZone("")
	bits := ipv6BudgetBits
	switch {
	case ip.IsLoopback():
		return loopback
	case ip.Is4():
		bits = 32
	}
	p, err := ip.Prefix(bits)
	if err != nil {
		return unparsed // unreachable: bits fit both families and the zone is gone
	}
	return p
}

// throttle counts wrong tokens per client network (budgetKey).
type throttle struct {
	every rate.Limit
	burst int
	now   func() time.Time

	mu      sync.Mutex
	clients map[netip.Prefix]*rate.Limiter
}

func newThrottle(every time.Duration, burst int, now func() time.Time) *throttle {
	return &throttle{every: rate.Every(every), burst: burst, now: now, clients: map[netip.Prefix]*rate.Limiter{}}
}

// wait reports how long addr's network must wait before its next request
// is looked at; zero when it may go on.
func (t *throttle) wait(addr string) time.Duration {
	key := budgetKey(addr)
	t.mu.Lock()
	defer t.mu.Unlock()
	lim, ok := t.clients[key]
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

// failed records one wrong token from addr, against its network's budget.
func (t *throttle) failed(addr string) {
	key := budgetKey(addr)
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	lim, ok := t.clients[key]
	if !ok {
		if len(t.clients) >= maxThrottled {
			t.prune(now)
		}
		lim = rate.NewLimiter(t.every, t.burst)
		t.clients[key] = lim
	}
	lim.AllowN(now, 1)
}

// prune forgets the networks whose allowance has refilled, and if that is
// not enough, half of the rest.
func (t *throttle) prune(now time.Time) {
	for k, lim := range t.clients {
		if lim.TokensAt(now) >= float64(t.burst) {
			delete(t.clients, k)
		}
	}
	for k := range t.clients {
		if len(t.clients) < maxThrottled/2 {
			return
		}
		delete(t.clients, k)
	}
}
