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
			th := newThrottle(every, 10, clock)
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
