package testenv

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestPoll(t *testing.T) {
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		name      string
		ctx       context.Context
		trueAt    int // the call on which cond first holds; 0: never
		want      bool
		wantCalls int
	}{
		{"holds at once", context.Background(), 1, true, 1},
		{"holds on the fifth call", context.Background(), 5, true, 5},
		{"ended context, condition holds", cancelled, 1, true, 1},
		{"ended context, condition does not hold", cancelled, 0, false, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			calls := 0
			got := Poll(tc.ctx, func() bool {
				calls++
				return tc.trueAt != 0 && calls >= tc.trueAt
			})
			if got != tc.want || calls != tc.wantCalls {
				t.Errorf("Poll = %v after %d calls, want %v after %d", got, calls, tc.want, tc.wantCalls)
			}
		})
	}
}

func TestPollStopsWhenTheContextEnds(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	if Poll(ctx, func() bool { return false }) {
		t.Fatal("Poll = true for a condition that never holds")
	}
	// Generous: the point is that it returns, not how promptly.
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("Poll returned %v after its context ended", took)
	}
}

// fatalRecorder is a testing.TB that records Fatalf instead of stopping.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (r *fatalRecorder) Helper() {}

func (r *fatalRecorder) Fatalf(format string, args ...any) { r.msg = fmt.Sprintf(format, args...) }

func TestEventually(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cond    func() bool
		msg     []any
		wantMsg string // "" when Eventually must not fail
	}{
		{"holds", func() bool { return true }, nil, ""},
		{"never holds, no message", func() bool { return false }, nil, "testenv: condition: not true within 20ms"},
		{"never holds, named", func() bool { return false }, []any{"tenant ", 7, " ready"}, "testenv: tenant 7 ready: not true within 20ms"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &fatalRecorder{TB: t}
			Eventually(r, 20*time.Millisecond, tc.cond, tc.msg...)
			if r.msg != tc.wantMsg {
				t.Errorf("Eventually failed with %q, want %q", r.msg, tc.wantMsg)
			}
			if tc.wantMsg != "" && !strings.Contains(r.msg, "20ms") {
				t.Errorf("message %q does not say how long it waited", r.msg)
			}
		})
	}
}
