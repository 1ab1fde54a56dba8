package fault

import (
	"context"
	"errors"
	"time"
)

// Kind is what sort of failure an error is. The HTTP status each kind
// maps to is decided in one place (problem.Status).
type Kind uint8

// The kinds. Internal is the zero value: an error nobody classified is
// never shown in detail.
const (
	// Internal is a fault of the service; details go to the log only.
	Internal Kind = iota
	// Invalid is input that breaks a rule (422).
	Invalid
	// BadRequest is a request that cannot be read at all (400).
	BadRequest
	// NotFound is a resource, tenant or host that does not exist (404).
	NotFound
	// Gone is a tenant removed or archived while the request was being
	// served; shown as NotFound, kept apart for logs and metrics.
	Gone
	// Conflict is a request that clashes with the current state (409).
	Conflict
	// Forbidden is a request that is understood and refused (403).
	Forbidden
	// TooMany is a request over a rate or concurrency limit (429).
	TooMany
	// Unavailable is a dependency that cannot be reached (the database is
	// down, restarting or out of connections) or a tenant that cannot be
	// served right now (being migrated or drained): 503, retry later.
	Unavailable
	// Timeout is a request that ran out of time, its own deadline or a
	// database statement or lock timeout: 503, retry later.
	Timeout
	// Contention is a transaction the database aborted to resolve a
	// conflict with another (deadlock, serialization failure): 503, safe
	// to retry at once.
	Contention
	// Canceled is a request whose client went away; nobody reads the
	// answer.
	Canceled
	// TooLarge is a request body over the limit (413).
	TooLarge
	// RequestTimeout is a request body that arrived too slowly (408).
	RequestTimeout
)

var kindNames = [...]string{
	Internal: "internal", Invalid: "invalid", BadRequest: "bad_request", NotFound: "not_found", Gone: "gone",
	Conflict: "conflict", Forbidden: "forbidden", TooMany: "too_many", Unavailable: "unavailable",
	Timeout: "timeout", Contention: "contention", Canceled: "canceled", TooLarge: "too_large",
	RequestTimeout: "request_timeout",
}

// String returns the kind's name as logs and metrics show it.
func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "internal"
}

// Transient reports whether a request that failed with k may succeed when
// sent again later, unchanged.
func (k Kind) Transient() bool {
	return k == Unavailable || k == Timeout || k == Contention || k == TooMany
}

// Error is a classified error. Build it with New or Wrap; its fields are
// exported so that a package can declare sentinel values and match them
// with errors.Is (two *Error match when their Kind and Code are equal).
type Error struct {
	Kind Kind
	// Code is a short stable slug naming the failure ("tenant-not-found");
	// APIs use it as the problem type.
	Code string
	// Title is a short human summary ("Tenant not found"); empty takes
	// the kind's generic title.
	Title string
	// Message is safe to show to the client.
	Message string
	// Field names the input field at fault, if one is.
	Field string
	// RetryAfter is how long a client should wait before retrying a
	// transient failure; zero lets the API choose.
	RetryAfter time.Duration
	// Err is the cause: for errors.Is/As and the log, never shown.
	Err error
}

// New returns an error of kind with a stable code and a message safe to
// show.
func New(kind Kind, code, message string) *Error {
	return &Error{Kind: kind, Code: code, Message: message}
}

// Wrap returns an error of kind that keeps err as its cause.
func Wrap(err error, kind Kind, code, message string) *Error {
	return &Error{Kind: kind, Code: code, Message: message, Err: err}
}

// Error returns the message and, after a colon, the cause: the text logs
// show. Clients are shown Message alone.
func (e *Error) Error() string {
	msg := e.Message
	if msg == "" {
		msg = e.Code
	}
	if e.Err == nil {
		return msg
	}
	return msg + ": " + e.Err.Error()
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Is matches another *Error of the same Kind and Code, so that a sentinel
// declared as an *Error is found by errors.Is in a copy that carries a
// field, a message or a cause of its own.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Kind == e.Kind && t.Code == e.Code
}

// With returns a copy of e with field and message set (either may be
// empty to keep e's), and cause as its Err: for a sentinel that needs the
// particulars of one failure.
func (e *Error) With(field, message string, cause error) *Error {
	c := *e
	if field != "" {
		c.Field = field
	}
	if message != "" {
		c.Message = message
	}
	c.Err = cause
	return &c
}

// As returns the first *Error in err's chain.
func As(err error) (*Error, bool) {
	var e *Error
	if errors.As(err, &e) {
		return e, true
	}
	return nil, false
}

// KindOf returns the kind of err: the first *Error in its chain, else
// Timeout for an expired context deadline and Canceled for a cancelled
// context, else Internal.
func KindOf(err error) Kind {
	if err == nil {
		return Internal
	}
	if e, ok := As(err); ok {
		return e.Kind
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return Timeout
	case errors.Is(err, context.Canceled):
		return Canceled
	}
	return Internal
}
