package testenv

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// Polling starts at minPoll between checks and backs off to maxPoll: a
// condition that holds at once costs a millisecond, and a long wait (a
// process starting) costs a check per maxPoll, not a busy loop. maxPoll
// is also the precision of a duration Eventually measures.
const (
	minPoll = time.Millisecond
	maxPoll = 10 * time.Millisecond
)

// Poll calls cond until it returns true, and then returns true, or until
// ctx ends, and then returns false. cond runs at least once, even when ctx
// has already ended, so a condition that holds is never reported as not
// holding. Use it where a failure needs its own message or where the
// polling runs outside the test's goroutine; otherwise use Eventually.
func Poll(ctx context.Context, cond func() bool) bool {
	wait := minPoll
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		if cond() {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-timer.C:
		}
		wait = min(2*wait, maxPoll)
		timer.Reset(wait)
	}
}

// Eventually waits for cond to hold and returns how long that took. It
// fails t at once when cond has not held within `within`, naming what was
// awaited: msg is formatted like fmt.Sprint when given, and else the
// message says only that the condition did not hold.
//
// This, not time.Sleep, is how tests wait for something another goroutine
// or process does: a sleep long enough on a loaded CI machine is needlessly
// slow everywhere else, and one short enough to be quick is a flake.
func Eventually(t testing.TB, within time.Duration, cond func() bool, msg ...any) time.Duration {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	start := time.Now()
	if !Poll(ctx, cond) {
		what := "condition"
		if len(msg) > 0 {
			what = fmt.Sprint(msg...)
		}
		t.Fatalf("testenv: %s: not true within %v", what, within)
	}
	return time.Since(start)
}
