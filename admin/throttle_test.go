package admin

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"testing"
	"time"
)

func TestBudgetKey(t *testing.T) {
	for _, tc := range []struct {
		name string
		addr string
		want string // the budget's prefix; "" for the unparsed budget
	}{
		{"loopback", "127.0.0.1", "127.0.0.0/8"},
		{"any of 127/8 is loopback", "127.200.3.4", "127.0.0.0/8"},
		{"IPv6 loopback shares the IPv4 one", "::1", "127.0.0.0/8"},
		{"IPv4-mapped loopback", "::ffff:127.0.0.9", "127.0.0.0/8"},
		{"IPv4 alone", "192.0.2.7", "192.0.2.7/32"},
		{"IPv4-mapped IPv4 is the IPv4 address", "::ffff:192.0.2.7", "192.0.2.7/32"},
		{"IPv6 with its /64", "2001:db8:1:2:aaaa:bbbb:cccc:dddd", "2001:db8:1:2::/64"},
		{"zone dropped", "fe80::1%eth0", "fe80::/64"},
		{"not an IP", "nonsense", ""},
		{"empty", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := netip.Prefix{}
			if tc.want != "" {
				want = netip.MustParsePrefix(tc.want)
			}
			if got := budgetKey(tc.addr); got != want {
				t.Errorf("budgetKey(%q) = %v, want %v", tc.addr, got, want)
			}
		})
	}
}

func TestThrottle(t *testing.T) {
	now := time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	const every = 6 * time.Second
	const setUp = -1 // a step whose wait is not checked
	const a = "192.0.2.1"

	type step struct {
		advance  time.Duration
		failures int
		addr     string
		wait     time.Duration
	}
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"a new address may go on", []step{{addr: a, wait: 0}}},
		{"the burst is allowed", []step{{failures: 9, addr: a, wait: 0}}},
		{"past the burst it waits one interval", []step{{failures: 10, addr: a, wait: every}}},
		{"the wait shrinks with time", []step{{failures: 10, addr: a, wait: setUp}, {advance: 4 * time.Second, addr: a, wait: 2 * time.Second}}},
		{"one interval later one more try", []step{
			{failures: 10, addr: a, wait: setUp},
			{advance: every, addr: a, wait: 0},
			{failures: 1, addr: a, wait: every},
		}},
		{"other IPv4 addresses are not affected", []step{{failures: 10, addr: a, wait: setUp}, {addr: "192.0.2.2", wait: 0}}},
		{"the IPv4-mapped form is the same address", []step{{failures: 10, addr: "::ffff:" + a, wait: setUp}, {addr: a, wait: every}}},
		{"loopback addresses share one budget", []step{
			{failures: 5, addr: "127.0.0.1", wait: setUp},
			{failures: 4, addr: "127.0.0.2", wait: 0},
			{failures: 1, addr: "127.9.9.9", wait: every},
			{addr: "::1", wait: every},
			{addr: "::ffff:127.0.0.3", wait: every},
		}},
		{"loopback does not spend others' budgets", []step{{failures: 10, addr: "127.0.0.1", wait: setUp}, {addr: a, wait: 0}}},
		{"addresses in one /64 share a budget", []step{
			{failures: 5, addr: "2001:db8:0:1::1", wait: setUp},
			{failures: 5, addr: "2001:db8:0:1:ffff:ffff:ffff:ffff", wait: every},
		}},
		{"distinct /64s have distinct budgets", []step{
			{failures: 10, addr: "2001:db8:0:1::1", wait: setUp},
			{addr: "2001:db8:0:2::1", wait: 0},
			{addr: "2001:db8:0:1::2", wait: every},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			th := newThrottle(every, 10, clock) // the shape matters here, not the production figures
			for i, s := range tc.steps {
				now = now.Add(s.advance)
				for range s.failures {
					th.failed(s.addr)
				}
				if s.wait == setUp {
					continue
				}
				if got := th.wait(s.addr); got != s.wait {
					t.Errorf("step %d (%s): wait = %v, want %v", i, s.addr, got, s.wait)
				}
			}
		})
	}
}

// TestThrottleLetsACollectionRerun: with the production figures, the admin
// Postman collection (one wrong token per run, a run every 2 s at the
// fastest) can be re-run back to back forever, while a guesser gets no
// more than one try a second past the burst.
func TestThrottleLetsACollectionRerun(t *testing.T) {
	now := time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)
	th := newThrottle(FailedAuthEvery, FailedAuthBurst, func() time.Time { return now })
	const newman, guesser = "192.0.2.1", "198.51.100.1"
	for run := range 1000 {
		if w := th.wait(newman); w != 0 {
			t.Fatalf("run %d: throttled for %v", run, w)
		}
		th.failed(newman)
		now = now.Add(2 * time.Second)
	}

	tries := 0
	for range 24 * 3600 * 10 { // a day in steps of 100 ms
		if th.wait(guesser) == 0 {
			th.failed(guesser)
			tries++
		}
		now = now.Add(100 * time.Millisecond)
	}
	if limit := FailedAuthBurst + 24*3600 + 1; tries > limit {
		t.Errorf("a guesser got %d tries in a day, want at most %d", tries, limit)
	}
}

// TestThrottleForgetsNetworksPastItsBound: a client that owns many
// networks (an IPv6 /48 holds 65,536 /64s) cannot grow the store past
// maxThrottled.
func TestThrottleForgetsNetworksPastItsBound(t *testing.T) {
	now := time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)
	th := newThrottle(6*time.Second, 10, func() time.Time { return now })
	// net64 is the i-th /64 of 2001:db8::/32, given as one of its hosts.
	net64 := func(prefix string, i int) string { return fmt.Sprintf("2001:db8:%s:%x::1", prefix, i) }
	for i := range maxThrottled {
		th.failed(net64("1", i))
	}
	now = now.Add(time.Hour) // every old network has its allowance back
	th.failed("192.0.2.1")
	if n := len(th.clients); n != 1 {
		t.Errorf("after pruning refilled networks: %d remembered, want 1", n)
	}

	// One wrong token each: a network is forgotten early only once its
	// allowance has refilled, so these all count as still throttled.
	for i := range 2 * maxThrottled {
		th.failed(net64(strconv.Itoa(2+i/0x10000), i%0x10000))
		if n := len(th.clients); n > maxThrottled {
			t.Fatalf("%d networks remembered after %d, want at most %d", n, i+1, maxThrottled)
		}
	}
}

// TestLoopbackAddressesShareOneBudget sends one wrong token from each of
// 100 loopback addresses to the admin API on a real listener: they are
// one budget, so past FailedAuthBurst (plus what the elapsed time refills)
// they are answered 429, where per-address budgets would have let all 100
// through. The server needs no catalog: a wrong token is refused before
// any route runs.
func TestLoopbackAddressesShareOneBudget(t *testing.T) {
	srv, err := NewServer(Deps{Log: slog.New(slog.DiscardHandler), Token: "the-right-token"})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = hs.Serve(ln) }()
	t.Cleanup(func() { _ = hs.Close() })
	url := "http://" + ln.Addr().String() + "/admin/tenants"

	// from sends one request from source address 127.0.0.n.
	from := func(n int, token string) *http.Response {
		t.Helper()
		tr := &http.Transport{DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(n))}}).DialContext}
		defer tr.CloseIdleConnections()
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Do(req)
		if err != nil {
			t.Fatalf("from 127.0.0.%d: %v", n, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		return resp
	}

	start := time.Now()
	counts := map[int]int{}
	for n := 1; n <= 100; n++ {
		resp := from(n, "a-wrong-guess")
		counts[resp.StatusCode]++
		if resp.StatusCode == http.StatusTooManyRequests && resp.Header.Get("Retry-After") == "" {
			t.Errorf("429 to 127.0.0.%d without Retry-After", n)
		}
	}
	elapsed := time.Since(start)
	// Each elapsed FailedAuthEvery refills one guess; one more for rounding.
	limit := FailedAuthBurst + int(elapsed/FailedAuthEvery) + 1
	if counts[http.StatusUnauthorized] > limit || counts[http.StatusUnauthorized]+counts[http.StatusTooManyRequests] != 100 {
		t.Errorf("statuses %v in %v; want at most %d × 401 and the rest 429", counts, elapsed, limit)
	}
	// An address that has not guessed yet is throttled too, right token or
	// not, as long as the shared budget has not refilled.
	if counts[http.StatusTooManyRequests] > 0 && time.Since(start) < FailedAuthEvery {
		if resp := from(200, "the-right-token"); resp.StatusCode != http.StatusTooManyRequests {
			t.Errorf("right token from the fresh 127.0.0.200: %d, want 429", resp.StatusCode)
		}
	}
}
