// Package problem is how tenantry's HTTP surfaces (the tenant API and the
// admin API) speak about errors and read request bodies: RFC 9457 problem
// details, client errors that carry the problem to show, one JSON decoder
// that maps every client mistake to its status, and From, the one mapping
// from an error (above all a *fault.Error) to the problem shown for it.
// Status is the one table from a fault.Kind to an HTTP status. Each API
// adds on top of From only the few cases that read differently there.
package problem

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"encoding/json"

	"tenantry/fault"
	"tenantry/models"
)

// Base prefixes every problem type URI.
const Base = "urn:tenantry:problem:"

// StatusClientClosed is the status of a request whose client went away
// (fault.Canceled), as nginx logs it. Nobody reads the answer; the status
// only keeps such requests apart from failures in access logs.
const StatusClientClosed = 499

// FieldError is one invalid field and a message a person can act on.
type FieldError = models.FieldError

// Problem is an RFC 9457 problem details object.
type Problem struct {
	Type     string       `json:"type"`
	Title    string       `json:"title"`
	Status   int          `json:"status"`
	Detail   string       `json:"detail,omitempty"`
	Instance string       `json:"instance,omitempty"`
	Errors   []FieldError `json:"errors,omitempty"`
	// RequestID is the id of the request that failed (its X-Request-ID
	// header, package requestid): what a client quotes to an operator,
	// who finds the request's log lines by it. Each server's problem
	// writer fills it in.
	RequestID string `json:"request_id,omitempty"`
	// RetryAfter is the wait a 503 or a 429 asks for in its Retry-After
	// header (SetRetryAfter); zero takes the status's default. It is a
	// header, never part of the body.
	RetryAfter time.Duration `json:"-"`
}

// Error is an error caused by the request itself; its Problem is safe to
// show to the client.
type Error struct {
	Problem Problem
}

func (e *Error) Error() string { return e.Problem.Title + ": " + e.Problem.Detail }

// New returns a client error whose problem type is Base+slug.
func New(status int, slug, title, detail string, fields ...FieldError) *Error {
	return &Error{Problem: Problem{Type: Base + slug, Title: title, Status: status, Detail: detail, Errors: fields}}
}

// Invalid is a 422 listing every invalid field.
func Invalid(fields ...FieldError) *Error {
	return New(http.StatusUnprocessableEntity, "validation", "Invalid input", "One or more fields are invalid.", fields...)
}

// BadQuery is a 400 listing the invalid query parameters.
func BadQuery(fields ...FieldError) *Error {
	return New(http.StatusBadRequest, "invalid-query", "Invalid query parameters", "One or more query parameters are invalid.", fields...)
}

// ErrTooLarge answers a body over the configured limit.
var ErrTooLarge = New(http.StatusRequestEntityTooLarge, "body-too-large", "Request body too large",
	"The request body is larger than the server accepts.")

// Internal is the problem for every error that is not the client's: it
// says nothing about the cause, which belongs in the log.
func Internal() Problem {
	return Problem{Type: Base + "internal", Title: "Internal server error", Status: http.StatusInternalServerError,
		Detail: "Something went wrong on our side; it has been logged."}
}

// Status is the one table from a fault kind to the HTTP status both APIs
// and the pages answer with. Gone (a tenant removed while the request was
// served) is a 404 like any tenant that does not exist; the transient
// kinds are 503, which a client may retry after Retry-After.
func Status(k fault.Kind) int {
	switch k {
	case fault.Invalid:
		return http.StatusUnprocessableEntity
	case fault.BadRequest:
		return http.StatusBadRequest
	case fault.NotFound, fault.Gone:
		return http.StatusNotFound
	case fault.Conflict:
		return http.StatusConflict
	case fault.Forbidden:
		return http.StatusForbidden
	case fault.TooMany:
		return http.StatusTooManyRequests
	case fault.Unavailable, fault.Timeout, fault.Contention:
		return http.StatusServiceUnavailable
	case fault.Canceled:
		return StatusClientClosed
	case fault.TooLarge:
		return http.StatusRequestEntityTooLarge
	case fault.RequestTimeout:
		return http.StatusRequestTimeout
	}
	return http.StatusInternalServerError
}

// kindText is the title and detail a problem of each kind shows when its
// error has none of its own.
var kindText = [...]struct{ title, detail string }{
	fault.Invalid:        {"Invalid input", "The request breaks a rule of this API."},
	fault.BadRequest:     {"Bad request", "The request cannot be read."},
	fault.NotFound:       {"Not found", "The resource does not exist."},
	fault.Gone:           {"Not found", "The resource no longer exists."},
	fault.Conflict:       {"Conflict", "The request conflicts with the current state; reload and retry."},
	fault.Forbidden:      {"Forbidden", "The request is not allowed."},
	fault.TooMany:        {"Too many requests", "Too many requests; retry after the number of seconds in Retry-After."},
	fault.Unavailable:    {"Service unavailable", "The service cannot answer right now; retry after the number of seconds in Retry-After."},
	fault.Timeout:        {"Request timed out", "The request took too long; retry after the number of seconds in Retry-After."},
	fault.Contention:     {"Busy", "The request clashed with another one and was undone; retry it."},
	fault.Canceled:       {"Request canceled", "The client closed the request."},
	fault.TooLarge:       {"Request body too large", "The request body is larger than the server accepts."},
	fault.RequestTimeout: {"Request timeout", "The request body arrived too slowly."},
}

// retryAfter is the wait a transient kind asks for when its error names
// none: a transaction undone to resolve a deadlock may run again at once,
// while a database that is down or stalled needs a moment.
func retryAfter(k fault.Kind) time.Duration {
	switch k {
	case fault.Contention, fault.TooMany:
		return time.Second
	case fault.Unavailable, fault.Timeout:
		return 5 * time.Second
	}
	return 0
}

// From returns the problem to show for err and whether err was recognised.
// It reads, first found in err's chain: a *Error (its Problem), a
// *models.ValidationError (422), an *http.MaxBytesError (413), a
// *fault.Error (Status of its kind, type Base+Code, its Title or the kind's,
// its Message as the detail and, when it names a Field, that field in
// errors), and a bare context.DeadlineExceeded (Timeout) or
// context.Canceled (Canceled). Anything else, and a *fault.Error of kind
// Internal, is the Internal problem and not recognised: its cause belongs in
// the log, never in the answer.
func From(err error) (Problem, bool) {
	var (
		pe *Error
		ve *models.ValidationError
		mb *http.MaxBytesError
	)
	switch {
	case err == nil:
		return Internal(), false
	case errors.As(err, &pe):
		return pe.Problem, true
	case errors.As(err, &ve):
		return Invalid(ve.Fields...).Problem, true
	case errors.As(err, &mb):
		return ErrTooLarge.Problem, true
	}
	if fe, ok := fault.As(err); ok {
		return fromFault(fe)
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return fromFault(&fault.Error{Kind: fault.Timeout, Code: "timeout"})
	case errors.Is(err, context.Canceled):
		return fromFault(&fault.Error{Kind: fault.Canceled, Code: "canceled"})
	}
	return Internal(), false
}

// fromFault is the problem of a classified error.
func fromFault(e *fault.Error) (Problem, bool) {
	if e.Kind == fault.Internal || int(e.Kind) >= len(kindText) {
		return Internal(), false
	}
	text := kindText[e.Kind]
	p := Problem{Type: Base + e.Code, Title: e.Title, Status: Status(e.Kind), Detail: sentence(e.Message), RetryAfter: e.RetryAfter}
	if e.Code == "" {
		p.Type = Base + slug(e.Kind)
	}
	if p.Title == "" {
		p.Title = text.title
	}
	if p.Detail == "" {
		p.Detail = text.detail
	}
	if e.Field != "" {
		msg := e.Message
		if msg == "" {
			msg = p.Detail
		}
		p.Errors = []FieldError{{Field: e.Field, Message: msg}}
	}
	if p.RetryAfter <= 0 {
		p.RetryAfter = retryAfter(e.Kind)
	}
	return p, true
}

// slug is the problem type of a kind whose error has no Code: its name
// with hyphens, as every other slug is spelt.
func slug(k fault.Kind) string {
	b := []byte(k.String())
	for i, c := range b {
		if c == '_' {
			b[i] = '-'
		}
	}
	return string(b)
}

// sentence ends msg with a full stop unless it ends a sentence already. A
// message that names a field is written as a fragment, the way every
// field message of the APIs is ("must not be empty"), and as a problem's
// detail it reads as a sentence: `schema "x" is reserved.`.
func sentence(msg string) string {
	if msg == "" {
		return ""
	}
	switch msg[len(msg)-1] {
	case '.', '!', '?':
		return msg
	}
	return msg + "."
}

// Write sends p as application/problem+json for the request path instance.
// A 503 or a 429 carries Retry-After (SetRetryAfter), which both APIs'
// documents promise.
func Write(w http.ResponseWriter, p Problem, instance string) error {
	p.Instance = instance
	h := w.Header()
	h.Set("Content-Type", "application/problem+json")
	h.Set("Cache-Control", "no-store")
	SetRetryAfter(h, p)
	w.WriteHeader(p.Status)
	return EncodeJSON(w, p)
}

// SetRetryAfter sets the Retry-After header of a 503 or 429 answer to p's
// RetryAfter in whole seconds, rounded up, or to the status's default (5 s
// for a 503, 1 s for a 429) when p names none. A header the caller has set
// already is kept: it knows the wait better (the admin API's throttle).
// Every writer of a problem, as JSON or as a page, calls it, so that no 503
// or 429 goes out without one.
func SetRetryAfter(h http.Header, p Problem) {
	if p.Status != http.StatusServiceUnavailable && p.Status != http.StatusTooManyRequests {
		return
	}
	if h.Get("Retry-After") != "" {
		return
	}
	d := p.RetryAfter
	if d <= 0 {
		d = 5 * time.Second
		if p.Status == http.StatusTooManyRequests {
			d = time.Second
		}
	}
	h.Set("Retry-After", strconv.FormatInt(int64((d+time.Second-1)/time.Second), 10))
}

// WriteJSON sends v as a JSON body with status: how both APIs answer
// when all went well.
func WriteJSON(w http.ResponseWriter, status int, v any) error {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	return EncodeJSON(w, v)
}

// EncodeJSON writes v as JSON without HTML escaping: responses are JSON
// documents, not fragments to paste into pages.
func EncodeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}
