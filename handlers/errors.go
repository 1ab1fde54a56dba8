package handlers

import (
	"errors"
	"net/http"

	"github.com/gin-gonic/gin"

	"tenantry/database"
	"tenantry/middleware"
	"tenantry/models"
	"tenantry/problem"
	"tenantry/requestid"
	"tenantry/tenants"
)

// Problem is an RFC 9457 problem details object (package problem).
type Problem = problem.Problem

var (
	errTooLarge = problem.ErrTooLarge
	errNoRoute  = problem.New(http.StatusNotFound, "not-found", "Not found", "No resource exists at this path.")
	errNoMethod = problem.New(http.StatusMethodNotAllowed, "method-not-allowed", "Method not allowed",
		"This resource does not support the request's method.")
	// errUserNotFound is models.ErrNotFound: an id that is not even a
	// number names no user either.
	errUserNotFound = models.ErrNotFound
	// errMalformedHost is how the tenant API shows tenants.ErrMalformedHost.
	errMalformedHost = problem.New(http.StatusNotFound, "unknown-host", "Unknown host", "The Host header is not a valid host name.")
)

// problemFor is the one place that maps an error to what the client sees:
// problem.From, the mapping both APIs share, and the two cases the tenant
// API shows in its own way. Anything not recognised is a 500 whose details
// stay in the log.
func problemFor(err error) (Problem, bool) {
	switch {
	case errors.Is(err, tenants.ErrMalformedHost):
		// To the admin API a malformed host is the operator's input (422
		// invalid-host). Here it is the Host header of a request, and a
		// host no workspace can be served on: it answers as an unknown
		// host does (openapi.yaml), never with the parser's words.
		return errMalformedHost.Problem, true
	case errors.Is(err, models.ErrEmailTaken):
		// The form shows the field's message next to the email input, in
		// the words of the other field messages ("must not be empty").
		pr, _ := problem.From(err)
		pr.Errors = []problem.FieldError{{Field: "email", Message: "is already used in this workspace"}}
		return pr, true
	}
	return problem.From(err)
}

// respondError logs what the client must not see and writes the problem:
// problem+json for programs, or the same Problem as an HTML page for
// people, as writeProblem decides. How each failure is logged (by kind,
// never per request for the transient ones) is middleware.LogError's.
func (s *Server) respondError(c *gin.Context, err error) {
	err = s.movedAway(c, err)
	pr, known := problemFor(err)
	middleware.LogError(c, s.Log, "request failed", err, known)
	s.writeProblem(c, pr)
}

// movedAway returns tenants.ErrMoved instead of a tenant-gone failure
// (database.ErrGone, 404) when the request's host still resolves to the
// same tenant, now on another database: its tables went away because a
// move retired them, not because the tenant was removed, and a retry is
// served. The resolver has the new placement by then: the statement
// waited behind the move's fence for at least its grace.
func (s *Server) movedAway(c *gin.Context, err error) error {
	if !errors.Is(err, database.ErrGone) || s.Tenants == nil {
		return err
	}
	t, ok := tenants.FromContext(c.Request.Context())
	if !ok {
		return err
	}
	cur, _ := s.Tenants.Current(c.Request)
	if cur == nil || cur.ID != t.ID || cur.Database == t.Database {
		return err
	}
	return tenants.ErrMoved.With("", "", err)
}

// writeProblem writes pr. It is the one place that chooses between
// problem+json and an HTML page (wantsHTML), so respondError, the panic
// handler and every route answer alike; both formats show the request's
// id (middleware.Access put it in the context).
//
// A 503 or 429 carries Retry-After in both formats, as openapi.yaml
// promises: problem.Write sets it for problem+json, and the page gets it
// from the same problem.SetRetryAfter.
func (s *Server) writeProblem(c *gin.Context, pr Problem) {
	pr.RequestID, _ = requestid.FromContext(c.Request.Context())
	if s.wantsHTML(c) {
		problem.SetRetryAfter(c.Writer.Header(), pr)
		s.writeProblemHTML(c, pr)
		return
	}
	_ = problem.Write(c.Writer, pr, c.Request.URL.Path)
}
