package tenants

import (
	"context"
	"time"
)

// LimiterHoldWait makes the limiter spend each held refusal's hold by
// calling wait instead of waiting on a real timer, so that a test sees
// the hold it was given (and may move its clock by it, or block) without
// spending it.
func LimiterHoldWait(wait func(ctx context.Context, d time.Duration)) LimiterOption {
	return func(l *Limiter) { l.holdWait = wait }
}

// WaitJittered is the real hold, for its own test.
var WaitJittered = waitJittered
