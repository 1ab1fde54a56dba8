package admin

import (
	"fmt"
	"testing"
	"time"
)

func TestThrottle(t *testing.T) {
	now := time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	const every = 6 * time.Second
	const setUp = -1 // a step whose wait is not checked

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
		{"a new address may go on", []step{{addr: "a", wait: 0}}},
		{"the burst is allowed", []step{{failures: 9, addr: "a", wait: 0}}},
		{"past the burst it waits one interval", []step{{failures: 10, addr: "a", wait: every}}},
		{"the wait shrinks with time", []step{{failures: 10, addr: "a", wait: setUp}, {advance: 4 * time.Second, addr: "a", wait: 2 * time.Second}}},
		{"one interval later one more try", []step{
			{failures: 10, addr: "a", wait: setUp},
			{advance: every, addr: "a", wait: 0},
			{failures: 1, addr: "a", wait: every},
		}},
		{"other addresses are not affected", []step{{failures: 10, addr: "a", wait: setUp}, {addr: "b", wait: 0}}},
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
					t.Errorf("step %d: wait = %v, want %v", i, got, s.wait)
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
	for run := range 1000 {
		if w := th.wait("newman"); w != 0 {
			t.Fatalf("run %d: throttled for %v", run, w)
		}
		th.failed("newman")
		now = now.Add(2 * time.Second)
	}

	tries := 0
	for range 24 * 3600 * 10 { // a day in steps of 100 ms
		if th.wait("guesser") == 0 {
			th.failed("guesser")
			tries++
		}
		now = now.Add(100 * time.Millisecond)
	}
	if limit := FailedAuthBurst + 24*3600 + 1; tries > limit {
		t.Errorf("a guesser got %d tries in a day, want at most %d", tries, limit)
	}
}

func TestThrottleForgetsAddressesPastItsBound(t *testing.T) {
	now := time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)
	th := newThrottle(6*time.Second, 10, func() time.Time { return now })
	for i := range maxThrottled {
		th.failed(fmt.Sprint("old", i))
	}
	now = now.Add(time.Hour) // every old address has its allowance back
	th.failed("guesser")
	if n := len(th.clients); n != 1 {
		t.Errorf("after pruning refilled addresses: %d remembered, want 1", n)
	}

	for i := range maxThrottled {
		for range 10 {
			th.failed(fmt.Sprint("busy", i))
		}
	}
	if n := len(th.clients); n > maxThrottled {
		t.Errorf("%d addresses remembered, want at most %d", n, maxThrottled)
	}
}
