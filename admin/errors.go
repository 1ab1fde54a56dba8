package admin

import (
	"errors"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"
	"gorm.io/gorm"

	"tenantry/problem"
	"tenantry/tenants"
)

// Problem is an RFC 9457 problem details object, the same as the tenant
// API's (package problem) so one client can read both.
type Problem = problem.Problem

// FieldError is one invalid field of a request and what is wrong with it.
type FieldError = problem.FieldError

// newRequestError is a client error with the problem to show.
func newRequestError(status int, slug, title, detail string, fields ...FieldError) *problem.Error {
	return problem.New(status, slug, title, detail, fields...)
}

// invalid is a 422 listing the invalid fields.
var invalid = problem.Invalid

var (
	errUnauthorized = newRequestError(http.StatusUnauthorized, "unauthorized", "Unauthorized",
		"Send the admin token as Authorization: Bearer <token>.")
	errTooManyWrongTokens = newRequestError(http.StatusTooManyRequests, "too-many-wrong-tokens", "Too many wrong tokens",
		"This address sent too many requests with a wrong admin token; retry after the number of seconds in Retry-After.")
	errTooLarge = problem.ErrTooLarge
	errNoRoute  = newRequestError(http.StatusNotFound, "not-found", "Not found",
		"No admin resource exists at this path.")
	errNoMethod = newRequestError(http.StatusMethodNotAllowed, "method-not-allowed", "Method not allowed",
		"This admin resource does not support the request's method.")
	errMigrationRunning = newRequestError(http.StatusConflict, "migration-running", "Migration already running",
		"A migration run is in progress on this instance; follow it with GET /admin/migrate.")
)

// problemFor is the one place that maps an error to what the client sees.
// The catalog's own messages for bad names and hosts are shown, since they
// only restate the client's input and the rule it broke; anything not
// recognised is a 500 whose details stay in the log.
func problemFor(err error) (Problem, bool) {
	if pr, ok := problem.From(err); ok {
		return pr, true
	}
	p := func(status int, slug, title, detail string) Problem {
		return problem.New(status, slug, title, detail).Problem
	}
	switch {
	case errors.Is(err, tenants.ErrNotFound):
		return p(http.StatusNotFound, "tenant-not-found", "Tenant not found", "No tenant has this name."), true
	case errors.Is(err, tenants.ErrExists):
		return p(http.StatusConflict, "tenant-exists", "Tenant already exists",
			"Conflicts with an existing tenant: "+reason(err, tenants.ErrExists)+"."), true
	case errors.Is(err, tenants.ErrHostTaken):
		return p(http.StatusConflict, "host-taken", "Host taken",
			"Host "+reason(err, tenants.ErrHostTaken)+" already belongs to another tenant."), true
	case errors.Is(err, tenants.ErrInvalidName):
		return p(http.StatusUnprocessableEntity, "invalid-name", "Invalid name", reason(err, tenants.ErrInvalidName)+"."), true
	case errors.Is(err, tenants.ErrMalformedHost):
		return p(http.StatusUnprocessableEntity, "invalid-host", "Invalid host", reason(err, tenants.ErrMalformedHost)+"."), true
	case errors.Is(err, gorm.ErrDuplicatedKey):
		// Two operators raced on the same name or host; the loser retries
		// and gets the precise answer.
		return p(http.StatusConflict, "conflict", "Conflict", "A concurrent change used the same name or host; retry."), true
	}
	return problem.Internal(), false
}

// reason returns the message that the tenants package attached to
// sentinel, without the sentinel's own text and any outer wrapping: for
// `provision tenant "x": invalid name: schema "x" is reserved` it returns
// `schema "x" is reserved`.
func reason(err, sentinel error) string {
	for e := err; e != nil; e = errors.Unwrap(e) {
		if errors.Unwrap(e) == sentinel {
			return strings.TrimPrefix(e.Error(), sentinel.Error()+": ")
		}
	}
	return sentinel.Error()
}

// respondError logs what the client must not see and writes the problem.
func (s *Server) respondError(c *gin.Context, err error) {
	pr, known := problemFor(err)
	if !known {
		s.log.ErrorContext(c.Request.Context(), "admin request failed", "err", err, "method", c.Request.Method, "path", c.Request.URL.Path)
	}
	s.writeProblem(c, pr)
}

func (s *Server) writeProblem(c *gin.Context, pr Problem) {
	if err := problem.Write(c.Writer, pr, c.Request.URL.Path); err != nil {
		s.log.WarnContext(c.Request.Context(), "write admin problem", "err", err)
	}
}
