package database

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"

	gosqlite "github.com/glebarez/go-sqlite"
	"github.com/jackc/pgx/v5/pgconn"
	"gorm.io/gorm"

	"tenantry/fault"
)

// The classified database failures. Classify returns copies of these that
// carry the driver's error as their cause, so errors.Is(err, ErrUnavailable)
// holds for every outage whatever the driver said. Their messages are
// written for the client; the cause goes to the log only.
var (
	// ErrUnavailable is a database that cannot be reached: down,
	// restarting, refusing connections or out of them.
	ErrUnavailable = &fault.Error{Kind: fault.Unavailable, Code: "database-unavailable", Title: "Database unavailable",
		Message: "The database is unavailable; retry after the number of seconds in Retry-After."}
	// ErrTimeout is a statement that ran out of time: the request's own
	// deadline, PostgreSQL's statement_timeout or lock_timeout, or SQLite's
	// busy_timeout behind another writer.
	ErrTimeout = &fault.Error{Kind: fault.Timeout, Code: "database-timeout", Title: "Database timeout",
		Message: "The database did not answer in time; retry after the number of seconds in Retry-After."}
	// ErrContention is a transaction the database aborted to resolve a
	// conflict with another one (deadlock, serialization failure).
	ErrContention = &fault.Error{Kind: fault.Contention, Code: "database-contention", Title: "Conflicting requests",
		Message: "The request conflicted with another one running at the same time; retry it."}
	// ErrGone is a tenant statement whose tables or schema no longer
	// exist: the tenant was removed or archived while the request ran.
	ErrGone = &fault.Error{Kind: fault.Gone, Code: "tenant-gone", Title: "Workspace not found",
		Message: "This workspace no longer exists."}
	// ErrMoved is a write to a tenant's old database after a move sealed
	// it (MovedSQLState): the tenant is served from another database now,
	// and a retry reaches it there. Nothing of the statement was written.
	ErrMoved = &fault.Error{Kind: fault.Unavailable, Code: "tenant-moved", Title: "Workspace moved",
		Message: "This workspace was moved to another database while the request ran; nothing was changed. Retry after the number of seconds in Retry-After."}
	// ErrCanceled is a statement whose request was cancelled (its client
	// went away).
	ErrCanceled = &fault.Error{Kind: fault.Canceled, Code: "canceled", Title: "Request canceled",
		Message: "The request was canceled."}
)

// Classify returns err as a *fault.Error of the kind its driver failure
// is (ErrUnavailable, ErrTimeout, ErrContention, ErrGone, ErrCanceled,
// with err as the cause), or err unchanged when it is nil, already
// classified, or not a failure Classify knows (a constraint violation, a
// syntax error: those stay the caller's to map, or Internal).
//
// A missing table or schema is ErrGone: Classify is meant for errors of
// tenant statements, whose tables vanish only when the tenant is removed.
// The pool's own hooks (Open) classify every statement GORM runs and use
// that rule only for statements made in a tenant's context, so that a
// missing catalog table stays an internal error.
func Classify(err error) error { return classify(err, true) }

// classify is Classify, with tenant saying whether a missing table means
// the tenant is gone.
func classify(err error, tenant bool) error {
	if err == nil {
		return nil
	}
	if _, ok := fault.As(err); ok {
		return err
	}
	// The server's own verdict comes first: a connection attempt refused
	// for a wrong password or a missing database is a *pgconn.ConnectError
	// too, and must not be taken for an outage worth waiting out.
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		if e := pgKind(pg.Code, tenant); e != nil {
			return e.With("", "", err)
		}
		return err
	}
	var lite *gosqlite.Error
	if errors.As(err, &lite) {
		if e := sqliteKind(lite, tenant); e != nil {
			return e.With("", "", err)
		}
		return err
	}
	switch {
	// The request's own deadline, whether it expired while waiting for a
	// pooled connection, while connecting or during the statement.
	case errors.Is(err, context.DeadlineExceeded):
		return ErrTimeout.With("", "", err)
	case errors.Is(err, context.Canceled):
		return ErrCanceled.With("", "", err)
	case lostConnection(err):
		return ErrUnavailable.With("", "", err)
	}
	return err
}

// lockWait reports whether err is a wait for a lock that ran out:
// PostgreSQL's lock_timeout (55P03) or SQLite's busy_timeout behind
// another writer. The database answered it; it is no sign of an outage.
func lockWait(err error) bool {
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		return pg.Code == "55P03"
	}
	var lite *gosqlite.Error
	if errors.As(err, &lite) {
		c := lite.Code() & 0xff
		return c == sqliteBusy || c == sqliteLocked
	}
	return false
}

// pgKind maps a SQLSTATE (PostgreSQL Appendix A) to its sentinel, or nil.
func pgKind(code string, tenant bool) *fault.Error {
	switch {
	case strings.HasPrefix(code, "08"), // connection_exception and its subclasses
		strings.HasPrefix(code, "53"), // insufficient_resources: too_many_connections, disk_full, out_of_memory
		code == "57P01",               // admin_shutdown (also pg_terminate_backend)
		code == "57P02",               // crash_shutdown
		code == "57P03",               // cannot_connect_now: starting up or shutting down
		code == "57P05",               // idle_session_timeout: the server closed the session
		code == "25P03":               // idle_in_transaction_session_timeout: likewise
		return ErrUnavailable
	case code == "57014", // query_canceled: statement_timeout, or a cancelled context
		code == "55P03": // lock_not_available: lock_timeout
		return ErrTimeout
	case code == "40001", // serialization_failure
		code == "40P01": // deadlock_detected
		return ErrContention
	case tenant && (code == "42P01" || code == "3F000"): // undefined_table, invalid_schema_name
		return ErrGone
	case code == MovedSQLState:
		return ErrMoved
	}
	return nil
}

// MovedSQLState is the SQLSTATE a moved tenant's old tables raise on any
// write (tenants.Catalog.Move seals them before its switch): a class of
// its own, which no PostgreSQL error uses.
const MovedSQLState = "T0M01"

// SQLite result codes (sqlite.org/rescode.html); the low byte of an
// extended code is its primary code.
const (
	sqliteError     = 1
	sqliteBusy      = 5
	sqliteLocked    = 6
	sqliteInterrupt = 9
	sqliteIOErr     = 10
	sqliteFull      = 13
	sqliteCantOpen  = 14
)

// sqliteKind maps a SQLite error to its sentinel, or nil.
func sqliteKind(e *gosqlite.Error, tenant bool) *fault.Error {
	switch e.Code() & 0xff {
	case sqliteBusy, sqliteLocked:
		// Another writer held the database past busy_timeout.
		return ErrTimeout
	case sqliteInterrupt:
		// The driver interrupts a statement when its context ends; the
		// only interrupts tenantry causes.
		return ErrTimeout
	case sqliteIOErr, sqliteFull, sqliteCantOpen:
		return ErrUnavailable
	case sqliteError:
		// SQLite has no code of its own for a missing table: it is the
		// generic SQLITE_ERROR, told apart only by its text.
		if tenant && strings.Contains(e.Error(), "no such table") {
			return ErrGone
		}
	}
	return nil
}

// lostConnection reports whether err is a connection that could not be
// made or broke: the database is not there to answer.
func lostConnection(err error) bool {
	var (
		connect *pgconn.ConnectError
		netErr  net.Error
	)
	return errors.As(err, &connect) ||
		errors.Is(err, pgconn.ErrConnClosed) ||
		errors.Is(err, driver.ErrBadConn) ||
		errors.Is(err, sql.ErrConnDone) ||
		errors.Is(err, io.EOF) ||
		errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) ||
		errors.As(err, &netErr)
}

// classifier is the pool's hook: it classifies the error of every
// statement GORM runs, knowing from the statement's context whether it is
// a tenant's (route).
type classifier struct{ route RouteKey }

// callback is registered after every other callback of every GORM
// processor, so that db.Error is classified before the caller, and GORM's
// logger, see it.
func (c classifier) callback(db *gorm.DB) {
	if db.Error == nil {
		return
	}
	tenant := false
	if c.route != nil && db.Statement != nil && db.Statement.Context != nil {
		_, tenant = c.route(db.Statement.Context)
	}
	db.Error = classify(db.Error, tenant)
	if db.Statement != nil && db.Statement.Result != nil {
		db.Statement.Result.Error = db.Error
	}
}

// register installs the hook on every processor of db.
func (c classifier) register(db *gorm.DB) error {
	const name = "tenantry:classify"
	cb := db.Callback()
	return errors.Join(
		cb.Create().After("*").Register(name, c.callback),
		cb.Query().After("*").Register(name, c.callback),
		cb.Update().After("*").Register(name, c.callback),
		cb.Delete().After("*").Register(name, c.callback),
		cb.Row().After("*").Register(name, c.callback),
		cb.Raw().After("*").Register(name, c.callback),
	)
}
