// Package problem is how tenantry's HTTP surfaces (the tenant API and the
// admin API) speak about errors and read request bodies: RFC 9457 problem
// details, client errors that carry the problem to show, and one JSON
// decoder that maps every client mistake to its status. Each API keeps its
// own mapping from domain errors to problems; this package only gives them
// the same shapes and the same words.
package problem

import (
	"errors"
	"io"
	"net/http"

	"encoding/json"

	"tenantry/models"
)

// Base prefixes every problem type URI.
const Base = "urn:tenantry:problem:"

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

// Write sends p as application/problem+json for the request path instance.
// A 503 carries Retry-After, which both APIs' documents promise; tests of
// each API's 503 depend on it being set here.
func Write(w http.ResponseWriter, p Problem, instance string) error {
	p.Instance = instance
	h := w.Header()
	h.Set("Content-Type", "application/problem+json")
	h.Set("Cache-Control", "no-store")
	if p.Status == http.StatusServiceUnavailable {
		h.Set("Retry-After", "5")
	}
	w.WriteHeader(p.Status)
	return EncodeJSON(w, p)
}

// EncodeJSON writes v as JSON without HTML escaping: responses are JSON
// documents, not fragments to paste into pages.
func EncodeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// From returns the problem that err already carries: a *Error, a
// *models.ValidationError (422) or an *http.MaxBytesError (413). Each API
// maps its other errors itself.
func From(err error) (Problem, bool) {
	var (
		pe *Error
		ve *models.ValidationError
		mb *http.MaxBytesError
	)
	switch {
	case errors.As(err, &pe):
		return pe.Problem, true
	case errors.As(err, &ve):
		return Invalid(ve.Fields...).Problem, true
	case errors.As(err, &mb):
		return ErrTooLarge.Problem, true
	}
	return Problem{}, false
}
