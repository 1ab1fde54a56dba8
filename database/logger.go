package database

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"tenantry/fault"
)

// slowStatement is the duration past which a statement is logged at WARN
// when Open is not given LogSlowerThan (log.slow_statement's default).
const slowStatement = 500 * time.Millisecond

// GORM's Scan (and whatever else records a statement through
// logger.NewTraceRecorder) renders the statement it hands to the logger
// through this package-level hook of GORM's, not through the logger's own
// ParamsFilter; left as it is, it fills every value in. It is set once,
// before main starts any goroutine, for the whole process: no value of a
// statement is ever rendered into a log line, whoever opened the pool.
func init() {
	logger.RecorderParamsFilter = func(_ context.Context, sql string, _ ...any) (string, []any) { return sql, nil }
}

// explained matches the $1$ that GORM's Explain leaves of a PostgreSQL
// placeholder it was given no value for.
var explained = regexp.MustCompile(`\$(\d+)\$`)

// gormLogger is the pool's GORM logger. It differs from GORM's slog
// logger in three ways that matter on a bad day:
//
//   - No value ever reaches it: ParamsFilter drops every bound value at
//     every level, so a logged statement shows its placeholders ($1, ?),
//     never a user's name or email. (GORM only asks a logger that
//     implements ParamsFilter; a wrapper that hid it once put values in
//     the log despite ParameterizedQueries.)
//   - An outage is not logged per statement: a statement that failed as
//     Unavailable or Timeout goes to health, which logs the change of
//     state and periodic counts instead.
//   - Outcomes the application answers itself (a duplicate key is a 409,
//     a missing row a 404, a cancelled request nothing) are not errors.
type gormLogger struct {
	log    *slog.Logger
	level  logger.LogLevel
	slow   time.Duration
	health *Health
	// healthOf, when set, picks the Health of a statement's database
	// (Placements.Health), so that one database down is logged as that
	// database, not as flapping with the others' answers.
	healthOf func(ctx context.Context) *Health
}

var (
	_ logger.Interface  = (*gormLogger)(nil)
	_ gorm.ParamsFilter = (*gormLogger)(nil)
)

func newLogger(log *slog.Logger, health *Health, slow time.Duration) *gormLogger {
	return &gormLogger{log: log, level: logger.Warn, slow: slow, health: health}
}

// LogMode returns a copy logging at level.
func (l *gormLogger) LogMode(level logger.LogLevel) logger.Interface {
	c := *l
	c.level = level
	return &c
}

// ParamsFilter drops the statement's values: what Trace then shows is the
// statement with its placeholders.
func (l *gormLogger) ParamsFilter(_ context.Context, sql string, _ ...any) (string, []any) {
	return sql, nil
}

// Info, Warn and Error log GORM's own messages (printf-style).
func (l *gormLogger) Info(ctx context.Context, msg string, data ...any) {
	if l.level >= logger.Info {
		l.log.InfoContext(ctx, fmt.Sprintf(msg, data...))
	}
}

func (l *gormLogger) Warn(ctx context.Context, msg string, data ...any) {
	if l.level >= logger.Warn {
		l.log.WarnContext(ctx, fmt.Sprintf(msg, data...))
	}
}

func (l *gormLogger) Error(ctx context.Context, msg string, data ...any) {
	if l.level >= logger.Error {
		l.log.ErrorContext(ctx, fmt.Sprintf(msg, data...))
	}
}

// Trace counts one statement in its request's Usage (NewUsageContext),
// records its outcome in health and logs what an operator must see: a
// failure the application does not answer itself, or a slow statement.
// GORM calls it for every statement whatever the log level.
func (l *gormLogger) Trace(ctx context.Context, begin time.Time, fc func() (string, int64), err error) {
	elapsed := time.Since(begin)
	if u := usageFrom(ctx); u != nil {
		u.add(elapsed)
	}
	switch {
	case err == nil, errors.Is(err, gorm.ErrRecordNotFound), errors.Is(err, gorm.ErrDuplicatedKey):
		l.healthFor(ctx).Answered(ctx)
		if l.slow > 0 && elapsed > l.slow && l.level >= logger.Warn {
			l.statement(ctx, slog.LevelWarn, "slow SQL", elapsed, fc, nil)
		} else if l.level >= logger.Info {
			l.statement(ctx, slog.LevelDebug, "SQL executed", elapsed, fc, nil)
		}
		return
	}
	l.healthFor(ctx).Observe(ctx, err)
	if l.level < logger.Error {
		return
	}
	switch fault.KindOf(err) {
	case fault.Unavailable, fault.Timeout, fault.Canceled:
		// Health logs the outage; a cancelled request has nobody to tell.
	case fault.Gone:
		// A tenant removed under a request: the request answers 404.
		l.statement(ctx, slog.LevelDebug, "SQL failed: tenant gone", elapsed, fc, err)
	case fault.Contention:
		// The database resolved a conflict by aborting this transaction;
		// worth seeing, but the client is told to retry.
		l.statement(ctx, slog.LevelWarn, "SQL aborted by a conflict", elapsed, fc, err)
	default:
		l.statement(ctx, slog.LevelError, "SQL failed", elapsed, fc, err)
	}
}

// statement logs one statement. fc returns it with placeholders only
// (ParamsFilter).
func (l *gormLogger) statement(ctx context.Context, level slog.Level, msg string, elapsed time.Duration, fc func() (string, int64), err error) {
	if !l.log.Enabled(ctx, level) {
		return
	}
	sql, rows := fc()
	sql = explained.ReplaceAllString(sql, "$$$1")
	attrs := []slog.Attr{
		slog.String("sql", sql),
		slog.Float64("duration_ms", float64(elapsed.Microseconds())/1000),
	}
	if rows >= 0 {
		attrs = append(attrs, slog.Int64("rows", rows))
	}
	if err != nil {
		attrs = append(attrs, slog.String("err", redact(err)))
	}
	l.log.LogAttrs(ctx, level, msg, attrs...)
}

// redact returns err's text for the log without values a user sent.
// PostgreSQL's data exceptions (class 22) quote the offending input in
// their message ("invalid input syntax for type integer: \"…\""), so for
// those the message is replaced by its SQLSTATE; other messages name
// constraints, columns and tables, never values (and pgconn leaves the
// DETAIL line, which does quote them, out of Error()).
func redact(err error) string {
	s := err.Error()
	var pg *pgconn.PgError
	if errors.As(err, &pg) && strings.HasPrefix(pg.Code, "22") && pg.Message != "" {
		s = strings.ReplaceAll(s, pg.Message, "data exception "+pg.Code+" (message withheld: it may quote a value)")
	}
	return s
}

func (l *gormLogger) healthFor(ctx context.Context) *Health {
	if l.healthOf != nil {
		return l.healthOf(ctx)
	}
	return l.health
}
