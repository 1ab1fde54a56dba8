package database

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"tenantry/config"
	"tenantry/fault"
)

// Connection retry at start-up: the wait between attempts starts at
// connectBackoff and doubles up to connectMaxBackoff, each attempt may
// take up to connectAttempt, and a failed attempt is logged at most once
// per connectLogEvery.
const (
	connectBackoff    = 100 * time.Millisecond
	connectMaxBackoff = 2 * time.Second
	connectAttempt    = 5 * time.Second
	connectLogEvery   = 5 * time.Second
)

// connect pings until the database answers. A PostgreSQL server that
// cannot be reached, or answers that it is starting up, is tried again
// with backoff for database.connect_timeout, so that the service and its
// database may start in any order; a refusal that waiting cannot cure (a
// wrong password, a missing database) and any SQLite failure (a file
// either opens or does not) fail at once. The final error names the
// server and the time waited, and holds no password: pgx's errors name
// the user and database only.
func connect(ctx context.Context, ping func(context.Context) error, c config.Database, log *slog.Logger) error {
	where := address(c)
	start := time.Now()
	deadline := start.Add(c.ConnectTimeout)
	wait := connectBackoff
	var logged time.Time
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, attemptTimeout(time.Until(deadline)))
		err := ping(actx)
		cancel()
		if err == nil {
			if attempt > 1 {
				log.InfoContext(ctx, "database reachable", "addr", where, "attempts", attempt,
					"after", time.Since(start).Round(time.Millisecond).String())
			}
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("connect to database at %s: %w", where, ctx.Err())
		}
		if k := fault.KindOf(classify(err, false)); c.Driver != "postgres" || (k != fault.Unavailable && k != fault.Timeout) {
			return fmt.Errorf("connect to %s database at %s: %w", c.Driver, where, err)
		}
		left := time.Until(deadline)
		if left <= 0 {
			return fmt.Errorf("database at %s not reachable after %v: %w", where, c.ConnectTimeout, err)
		}
		if logged.IsZero() || time.Since(logged) >= connectLogEvery {
			log.WarnContext(ctx, "database not reachable yet; retrying", "addr", where, "attempt", attempt,
				"gives_up_in", left.Round(time.Second).String(), "err", err)
			logged = time.Now()
		}
		t := time.NewTimer(min(wait, left))
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("connect to database at %s: %w", where, ctx.Err())
		case <-t.C:
		}
		wait = min(2*wait, connectMaxBackoff)
	}
}

// attemptTimeout is how long one connection attempt may take with left
// of the retry window remaining: long enough for a slow but live server
// (at least a second), never much past the window.
func attemptTimeout(left time.Duration) time.Duration {
	return min(max(left, time.Second), connectAttempt)
}

// address names the database for messages: host:port on PostgreSQL (never
// the DSN, which may hold a password), the file on SQLite.
func address(c config.Database) string {
	if c.Driver != "postgres" {
		return c.DSN
	}
	pc, err := pgx.ParseConfig(c.DSN)
	if err != nil {
		return "(unparsable dsn)"
	}
	return net.JoinHostPort(pc.Host, strconv.Itoa(int(pc.Port)))
}
