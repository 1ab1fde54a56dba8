package database_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"tenantry/database"
	"tenantry/fault"
	"tenantry/internal/testenv"
)

// fakeClock is a clock the test moves by hand.
type fakeClock struct{ now time.Time }

func (c *fakeClock) Now() time.Time                     { return c.now }
func (c *fakeClock) At(base time.Time, d time.Duration) { c.now = base.Add(d) }

// logLines returns the records of a text log, one per line.
func logLines(s string) []string {
	var out []string
	for l := range strings.SplitSeq(strings.TrimSpace(s), "\n") {
		if l != "" {
			out = append(out, l)
		}
	}
	return out
}

// countMsg counts the records whose message is msg.
func countMsg(log, msg string) int {
	return strings.Count(log, `msg="`+msg+`"`)
}

// TestHealthLogsChangesOnly walks an outage through a clock the test
// moves: one line when it starts, one per HealthReportEvery while it
// lasts, one when it ends, and none per statement.
func TestHealthLogsChangesOnly(t *testing.T) {
	var buf testenv.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := &fakeClock{now: t0}
	h := database.NewHealth(log, database.HealthClock(clock.Now))
	ctx := context.Background()
	down := database.ErrUnavailable.With("", "", errors.New("dial tcp 127.0.0.1:5432: connect: connection refused"))
	slow := database.ErrTimeout.With("", "", context.DeadlineExceeded)

	type step struct {
		at    time.Duration
		do    func()
		lines []string // messages logged by this step, in order
	}
	fail := func(err error, n int) func() {
		return func() {
			for range n {
				h.Failed(ctx, err)
			}
		}
	}
	answered := func() { h.Answered(ctx) }
	steps := []step{
		{0, answered, nil},
		{0, fail(down, 500), []string{"database unavailable"}},
		{10 * time.Second, fail(slow, 300), nil},
		{31 * time.Second, fail(down, 1), []string{"database still unavailable"}},
		{35 * time.Second, fail(down, 1000), nil},
		{40 * time.Second, answered, []string{"database available again"}},
		{41 * time.Second, answered, nil},
		// A flap within HealthReportEvery of the last line is counted,
		// not announced, and so is its end.
		{45 * time.Second, fail(down, 5), nil},
		{46 * time.Second, answered, nil},
		// The next failure after that is announced, with the count.
		{62 * time.Second, fail(down, 1), []string{"database unavailable"}},
		{63 * time.Second, answered, []string{"database available again"}},
	}
	for i, s := range steps {
		before := len(logLines(buf.String()))
		clock.At(t0, s.at)
		s.do()
		got := logLines(buf.String())[before:]
		if len(got) != len(s.lines) {
			t.Fatalf("step %d (t+%v): logged %d lines, want %d:\n%s", i, s.at, len(got), len(s.lines), strings.Join(got, "\n"))
		}
		for j, msg := range s.lines {
			if !strings.Contains(got[j], `msg="`+msg+`"`) {
				t.Errorf("step %d (t+%v): line %q, want message %q", i, s.at, got[j], msg)
			}
		}
	}
	all := buf.String()
	for _, want := range []string{
		`level=ERROR msg="database unavailable" kind=unavailable err="The database is unavailable; retry after the number of seconds in Retry-After.: dial tcp 127.0.0.1:5432: connect: connection refused" failed_statements=1`,
		`level=WARN msg="database still unavailable" kind=unavailable`,
		`failed_statements=800 down_for=31s`, // 499 + 300 + 1 since the first line
		`msg="database available again" down_for=40s failed_statements=1801`,
		`msg="database unavailable" kind=unavailable`,
		`failed_statements=6`, // the 5 of the flap and the one announced
	} {
		if !strings.Contains(all, want) {
			t.Errorf("log lacks %q:\n%s", want, all)
		}
	}
	if !h.Available() {
		t.Error("Available() = false after the last answer")
	}
}

// TestHealthObserve: which outcomes count as failures.
func TestHealthObserve(t *testing.T) {
	for _, tc := range []struct {
		err       error
		available bool
	}{
		{nil, true},
		{database.ErrUnavailable.With("", "", errors.New("x")), false},
		{database.ErrTimeout.With("", "", errors.New("x")), false},
		{fmt.Errorf("q: %w", context.DeadlineExceeded), false},
		{database.ErrContention.With("", "", errors.New("x")), true},
		{database.ErrGone.With("", "", errors.New("x")), true},
		{errors.New("syntax error"), true},
	} {
		h := database.NewHealth(slog.New(slog.DiscardHandler))
		h.Observe(context.Background(), tc.err)
		if got := h.Available(); got != tc.available {
			t.Errorf("Observe(%v): Available() = %v, want %v", tc.err, got, tc.available)
		}
	}
	// A cancelled request says nothing about the database.
	h := database.NewHealth(slog.New(slog.DiscardHandler))
	h.Failed(context.Background(), database.ErrUnavailable)
	h.Observe(context.Background(), database.ErrCanceled.With("", "", context.Canceled))
	if h.Available() {
		t.Error("a cancelled statement ended an outage")
	}
	if k := fault.KindOf(h.Check(context.Background(), func(context.Context) error { return context.DeadlineExceeded })); k != fault.Timeout {
		t.Errorf("Check of an expired ping: kind %v, want timeout", k)
	}
}

// TestHealthCheckIsBounded: a ping that would hang is cut at
// ReadyTimeout, so /readyz answers in time.
func TestHealthCheckIsBounded(t *testing.T) {
	h := database.NewHealth(slog.New(slog.DiscardHandler))
	start := time.Now()
	err := h.Check(context.Background(), func(ctx context.Context) error {
		<-ctx.Done()
		return ctx.Err()
	})
	if d := time.Since(start); d > database.ReadyTimeout+500*time.Millisecond {
		t.Errorf("check took %v, want at most about %v", d, database.ReadyTimeout)
	}
	if fault.KindOf(err) != fault.Timeout || h.Available() {
		t.Errorf("err = %v, available = %v: want a timeout and the database marked down", err, h.Available())
	}
}

// TestHealthLockWaitIsAnAnswer: a statement refused after lock_timeout
// (PostgreSQL 55P03) was answered by the database; only failures without
// an answer take it for unavailable.
func TestHealthLockWaitIsAnAnswer(t *testing.T) {
	for _, tc := range []struct {
		name          string
		err           error
		wantAvailable bool
	}{
		{"lock_timeout", &pgconn.PgError{Code: "55P03", Message: "canceling statement due to lock timeout"}, true},
		{"statement_timeout", &pgconn.PgError{Code: "57014", Message: "canceling statement due to statement timeout"}, false},
		{"request deadline", context.DeadlineExceeded, false},
		{"connection refused", &pgconn.PgError{Code: "57P03", Message: "the database system is starting up"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf testenv.Buffer
			h := database.NewHealth(slog.New(slog.NewTextHandler(&buf, nil)))
			h.Observe(context.Background(), database.Classify(tc.err))
			if got := h.Available(); got != tc.wantAvailable {
				t.Errorf("Available() = %v after %v, want %v", got, tc.err, tc.wantAvailable)
			}
			if got := countMsg(buf.String(), "database unavailable"); got != map[bool]int{true: 0, false: 1}[tc.wantAvailable] {
				t.Errorf("%d unavailable lines, log:\n%s", got, buf.String())
			}
		})
	}
}
