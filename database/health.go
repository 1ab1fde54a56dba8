package database

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"tenantry/fault"
)

// HealthReportEvery is how often Health reports, while the database stays
// unavailable, how many statements failed since its last line.
const HealthReportEvery = 30 * time.Second

// Health follows whether the database answers, from the outcome of every
// statement (the pool's GORM logger feeds it) and of every readiness
// check, and logs only the changes: one line when the database becomes
// unavailable, with the cause; one line every HealthReportEvery while it
// stays so, with the count of failed statements; one line when it answers
// again. An outage at a thousand requests a second is then a few lines,
// not two per request.
//
// A database that flaps (fails, answers, fails again) is announced at
// most once per HealthReportEvery: the failures in between are counted in
// the next line, so the log stays bounded whatever the failure pattern.
type Health struct {
	log   *slog.Logger
	now   func() time.Time
	every time.Duration

	// down is read without the lock by Answered, on every statement; it
	// is only written with mu held.
	down atomic.Bool

	mu sync.Mutex
	// since is when the current outage began.
	since time.Time
	// announced says the current outage's first line was written, so
	// that its end is announced too.
	announced bool
	// lastLine is when the last unavailable line was written; the zero
	// time before the first.
	lastLine time.Time
	// failed counts failed statements not yet reported; total counts
	// those of the current outage.
	failed, total int
}

// HealthOption changes a Health built by NewHealth.
type HealthOption func(*Health)

// HealthClock makes Health read the time from now instead of time.Now,
// so that a test can step through HealthReportEvery.
func HealthClock(now func() time.Time) HealthOption { return func(h *Health) { h.now = now } }

// NewHealth returns a Health that logs to log and starts out available.
func NewHealth(log *slog.Logger, opts ...HealthOption) *Health {
	h := &Health{log: log, now: time.Now, every: HealthReportEvery}
	for _, o := range opts {
		o(h)
	}
	return h
}

// Available reports whether the last outcome was an answer.
func (h *Health) Available() bool { return !h.down.Load() }

// Answered records a statement the database answered (with rows or with
// an error of its own making: a constraint, a missing row).
func (h *Health) Answered(ctx context.Context) {
	if !h.down.Load() {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.down.Load() {
		return
	}
	h.down.Store(false)
	if h.announced {
		h.log.InfoContext(ctx, "database available again",
			"down_for", h.now().Sub(h.since).Round(time.Millisecond).String(), "failed_statements", h.total)
		h.failed = 0
	}
	h.announced, h.total = false, 0
}

// Failed records a statement that failed because the database could not
// be reached or did not answer in time (fault kinds Unavailable and
// Timeout); err is its classified error.
func (h *Health) Failed(ctx context.Context, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := h.now()
	h.failed++
	h.total++
	if !h.down.Load() {
		h.down.Store(true)
		h.since, h.total = now, 1
	}
	due := h.lastLine.IsZero() || now.Sub(h.lastLine) >= h.every
	if !due {
		return
	}
	args := []any{"kind", fault.KindOf(err).String(), "err", err, "failed_statements", h.failed}
	if h.announced {
		h.log.WarnContext(ctx, "database still unavailable", append(args, "down_for", now.Sub(h.since).Round(time.Second).String())...)
	} else {
		h.log.ErrorContext(ctx, "database unavailable", args...)
		h.announced = true
	}
	h.lastLine, h.failed = now, 0
}

// Observe records the outcome of a statement or check by its error's
// kind: nil and the database's own refusals (a lock wait past
// lock_timeout among them) are answers, Unavailable and other Timeouts are
// failures, and a cancelled request says nothing either way.
func (h *Health) Observe(ctx context.Context, err error) {
	if err == nil {
		h.Answered(ctx)
		return
	}
	switch fault.KindOf(err) {
	case fault.Unavailable:
		h.Failed(ctx, err)
	case fault.Timeout:
		// A lock wait that timed out is the database answering, about
		// one row another transaction holds; only a statement that got no
		// answer in time says something about the database.
		if lockWait(err) {
			h.Answered(ctx)
			return
		}
		h.Failed(ctx, err)
	case fault.Canceled:
	default:
		h.Answered(ctx)
	}
}

// ReadyTimeout bounds a readiness check (Check): /readyz must answer
// within two seconds during any fault, and a check must not wait long
// behind a full pool for a connection.
const ReadyTimeout = time.Second

// Check runs ping (the pool's PingContext) within ReadyTimeout, records
// its outcome and returns its error, classified.
func (h *Health) Check(ctx context.Context, ping func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, ReadyTimeout)
	defer cancel()
	err := Classify(ping(ctx))
	h.Observe(ctx, err)
	return err
}
