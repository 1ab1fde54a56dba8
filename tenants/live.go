package tenants

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgxlisten"
	"gorm.io/gorm"
)

// NotifyChannel is the PostgreSQL channel on which every committed catalog
// change is announced, whichever process made it (a server's admin API, the
// CLI, start-up seeding). The payload is "ORIGIN MICROS": the process that
// made the change, for logs, and when it announced it (Unix microseconds
// on its clock), from which listeners measure how long the change took to
// reach them (Listener.ReportLag). Listeners reload the whole catalog
// whatever the payload says.
const NotifyChannel = "tenantry_catalog"

// ListenerApplicationName is the application_name of the listener's
// connection, so that operators (and tests) can find it in pg_stat_activity.
const ListenerApplicationName = "tenantry-catalog-listener"

// notifyTimeout bounds one NOTIFY. The change it announces is already
// committed, so a slow NOTIFY must not hold up the caller for long; the
// periodic refresh still catches what a lost NOTIFY missed.
const notifyTimeout = 2 * time.Second

// Notifier announces catalog changes to every process on the same
// PostgreSQL database. Install Notify in Catalog.OnChange.
type Notifier struct {
	db     *gorm.DB
	origin string
	log    *slog.Logger
}

// NewNotifier returns a notifier that sends on db's pool. origin names this
// process in the payload (for example host:pid).
func NewNotifier(db *gorm.DB, origin string, log *slog.Logger) *Notifier {
	return &Notifier{db: db, origin: origin, log: log}
}

// Notify sends one notification on NotifyChannel. It runs after the change
// committed, so it is not cancelled with the caller's context (an admin
// request that ends as its response is written must still announce its
// change), only bounded by notifyTimeout. A failure is logged and returned:
// the change stands, and other processes see it at their next periodic
// refresh instead of at once.
func (n *Notifier) Notify(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), notifyTimeout)
	defer cancel()
	payload := n.origin + " " + strconv.FormatInt(time.Now().UnixMicro(), 10)
	err := n.db.WithContext(ctx).Exec("SELECT pg_notify(?, ?)", NotifyChannel, payload).Error
	if err != nil {
		n.log.WarnContext(ctx, "catalog change not announced; other processes will see it at their next periodic refresh", "err", err)
		return fmt.Errorf("notify %s: %w", NotifyChannel, err)
	}
	return nil
}

// Listener keeps a Resolver in step with changes other processes make to
// the catalog. It holds one dedicated PostgreSQL connection that LISTENs on
// NotifyChannel; each notification triggers a full Refresh of the resolver.
//
// Notifications sent while the connection is down are lost, so the
// listener reconnects on its own (every ReconnectDelay) and does a full
// Refresh each time it is connected again. A burst of notifications (a
// migration run announces every tenant) costs at most one refresh in
// flight and one queued, at most one per minGap.
type Listener struct {
	resolver *Resolver
	config   *pgx.ConnConfig
	log      *slog.Logger
	// ReconnectDelay is how long to wait before connecting again after the
	// connection failed or dropped.
	ReconnectDelay time.Duration
	kick           chan struct{}

	// ReportLag, when set, is called after every reload that followed a
	// notification carrying its time (Notify), with the time from the
	// oldest announcement the reload covers to the reload's end: how long
	// a change made elsewhere took to be served here. It reads the
	// announcing process's clock, so clocks out of step skew it; a lag
	// below zero is reported as zero. Set it before Run.
	ReportLag func(time.Duration)

	// announced is the oldest announcement no reload has covered yet.
	announced struct {
		sync.Mutex
		at time.Time
	}

	// outage counts failed connection attempts since the last success,
	// and when that was last logged (logFailure).
	outage struct {
		sync.Mutex
		failures int
		logged   time.Time
	}
}

// minGap spaces refreshes so that a storm of notifications cannot turn
// into a storm of full catalog reads; it is well inside the one-second
// propagation the catalog promises.
const minGap = 100 * time.Millisecond

// NewListener returns a listener for the PostgreSQL database at dsn (a URL
// or key=value string, as database.dsn) that refreshes resolver.
func NewListener(dsn string, resolver *Resolver, log *slog.Logger) (*Listener, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("catalog listener: parse dsn: %w", err)
	}
	cfg.RuntimeParams["application_name"] = ListenerApplicationName
	return &Listener{
		resolver:       resolver,
		config:         cfg,
		log:            log,
		ReconnectDelay: time.Second,
		kick:           make(chan struct{}, 1),
	}, nil
}

// Run listens until ctx ends. It returns nil then; connection failures are
// logged and retried, never returned.
func (l *Listener) Run(ctx context.Context) error {
	refreshed := make(chan struct{})
	go func() {
		defer close(refreshed)
		l.refreshLoop(ctx)
	}()
	pl := &pgxlisten.Listener{
		Connect: func(ctx context.Context) (*pgx.Conn, error) {
			return pgx.ConnectConfig(ctx, l.config.Copy())
		},
		LogError: func(ctx context.Context, err error) {
			if ctx.Err() == nil {
				l.logFailure(ctx, err)
			}
		},
		ReconnectDelay: l.ReconnectDelay,
	}
	pl.Handle(NotifyChannel, handler{l})
	err := pl.Listen(ctx)
	<-refreshed
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return nil
	}
	return err
}

// handler adapts the listener to pgxlisten: a notification asks for a
// refresh, and so does every (re)connection, through HandleBacklog, which
// pgxlisten calls right after LISTEN succeeds, so no change can fall in
// between.
type handler struct{ l *Listener }

func (h handler) HandleNotification(ctx context.Context, n *pgconn.Notification, _ *pgx.Conn) error {
	h.l.log.DebugContext(ctx, "catalog changed", "by", n.Payload)
	h.l.announce(n.Payload)
	h.l.request()
	return nil
}

func (h handler) HandleBacklog(ctx context.Context, _ string, _ *pgx.Conn) error {
	h.l.outage.Lock()
	failed := h.l.outage.failures
	h.l.outage.failures, h.l.outage.logged = 0, time.Time{}
	h.l.outage.Unlock()
	h.l.log.InfoContext(ctx, "catalog listener connected; reloading the catalog", "channel", NotifyChannel, "failed_attempts", failed)
	h.l.request()
	return nil
}

// outageLogEvery is how often a listener that keeps failing to reconnect
// says so again: one line when the connection is lost, then one per
// interval with the count, instead of one per attempt (every second)
// for as long as the database is down.
const outageLogEvery = 30 * time.Second

// logFailure logs a lost or refused connection once, then a count every
// outageLogEvery while reconnecting keeps failing.
func (l *Listener) logFailure(ctx context.Context, err error) {
	l.outage.Lock()
	l.outage.failures++
	n := l.outage.failures
	now := time.Now()
	due := l.outage.logged.IsZero() || now.Sub(l.outage.logged) >= outageLogEvery
	if due {
		l.outage.logged = now
	}
	l.outage.Unlock()
	if !due {
		return
	}
	if n == 1 {
		l.log.WarnContext(ctx, "catalog listener: connection lost or refused; reconnecting, periodic refresh still runs",
			"err", err, "retry_in", l.ReconnectDelay)
		return
	}
	l.log.WarnContext(ctx, "catalog listener: still reconnecting", "err", err, "failed_attempts", n)
}

// announce keeps the time a notification's payload carries, when it is
// the oldest not yet covered by a reload. A payload without one (from a
// process that predates the time field) is left out of the lag.
func (l *Listener) announce(payload string) {
	i := strings.LastIndexByte(payload, ' ')
	if i < 0 {
		return
	}
	us, err := strconv.ParseInt(payload[i+1:], 10, 64)
	if err != nil {
		return
	}
	at := time.UnixMicro(us)
	l.announced.Lock()
	if l.announced.at.IsZero() || at.Before(l.announced.at) {
		l.announced.at = at
	}
	l.announced.Unlock()
}

// takeAnnounced returns and forgets the oldest uncovered announcement: the
// reload about to start covers it.
func (l *Listener) takeAnnounced() time.Time {
	l.announced.Lock()
	defer l.announced.Unlock()
	at := l.announced.at
	l.announced.at = time.Time{}
	return at
}

// request asks for a refresh without blocking; requests made while one is
// already queued are merged into it.
func (l *Listener) request() {
	select {
	case l.kick <- struct{}{}:
	default:
	}
}

// refreshLoop reloads the resolver once per request. When a reload fails
// the cache is known to be stale, so it is dropped rather than kept: a
// suspended tenant must not go on being served from memory. Requests then
// resolve through the catalog one host at a time.
func (l *Listener) refreshLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-l.kick:
		}
		announced := l.takeAnnounced()
		if err := l.resolver.Refresh(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			l.resolver.Invalidate()
			l.log.WarnContext(ctx, "catalog reload after a change failed; cache dropped", "err", err)
		} else if l.ReportLag != nil && !announced.IsZero() {
			l.ReportLag(max(time.Since(announced), 0))
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(minGap):
		}
	}
}
