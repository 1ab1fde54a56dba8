package admin

import (
	"errors"
	"net/http"

	"github.com/gin-gonic/gin"
	"gorm.io/gorm"

	"tenantry/fault"
	"tenantry/middleware"
	"tenantry/problem"
	"tenantry/requestid"
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
	// errConcurrentChange is a unique index that refused a name or host
	// another operator took between the catalog's check and its insert.
	errConcurrentChange = newRequestError(http.StatusConflict, "conflict", "Conflict",
		"A concurrent change used the same name or host; retry.")
)

// problemFor is the one place that maps an error to what the client sees:
// problem.From, shared with the tenant API, shows the catalog's errors by
// their kind, code and message (which restate the operator's input and the
// rule it broke, never a cause). The admin API adds one case of its own;
// anything not recognised is a 500 whose details stay in the log.
func problemFor(err error) (Problem, bool) {
	if pr, ok := problem.From(err); ok {
		return pr, true
	}
	if errors.Is(err, gorm.ErrDuplicatedKey) {
		// Two operators raced on the same name or host; the loser retries
		// and gets the precise answer.
		return errConcurrentChange.Problem, true
	}
	return problem.Internal(), false
}

// message is what err says to the operator: the message of its
// *fault.Error (such as `tenant name "X" must match …` from the catalog's
// naming rules), for a request's own validation to list by field.
func message(err error) string {
	if fe, ok := fault.As(err); ok && fe.Message != "" {
		return fe.Message
	}
	return "is invalid"
}

// respondError logs what the client must not see and writes the problem.
// How each failure is logged (by kind, never per request for the
// transient ones) is middleware.LogError's.
func (s *Server) respondError(c *gin.Context, err error) {
	pr, known := problemFor(err)
	middleware.LogError(c, s.log, "admin request failed", err, known)
	s.writeProblem(c, pr)
}

// writeProblem writes pr as problem+json, with Retry-After on a 503 or
// 429 (problem.Write) and the request's id (middleware.Access put it in
// the context).
func (s *Server) writeProblem(c *gin.Context, pr Problem) {
	pr.RequestID, _ = requestid.FromContext(c.Request.Context())
	if err := problem.Write(c.Writer, pr, c.Request.URL.Path); err != nil {
		s.log.WarnContext(c.Request.Context(), "write admin problem", "err", err)
	}
}
