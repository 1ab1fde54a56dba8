package handlers

import (
	"errors"
	"net/http"

	"github.com/gin-gonic/gin"

	"tenantry/models"
	"tenantry/problem"
	"tenantry/tenants"
)

// Problem is an RFC 9457 problem details object (package problem).
type Problem = problem.Problem

var (
	errTooLarge = problem.ErrTooLarge
	errNoRoute  = problem.New(http.StatusNotFound, "not-found", "Not found", "No resource exists at this path.")
	errNoMethod = problem.New(http.StatusMethodNotAllowed, "method-not-allowed", "Method not allowed",
		"This resource does not support the request's method.")
	errUserNotFound = problem.New(http.StatusNotFound, "user-not-found", "User not found",
		"No user with this id exists in this workspace.")
)

// problemFor is the one place that maps an error to what the client sees.
// Anything not recognised is a 500 whose details stay in the log.
func problemFor(err error) (Problem, bool) {
	if pr, ok := problem.From(err); ok {
		return pr, true
	}
	p := func(status int, slug, title, detail string) Problem {
		return problem.New(status, slug, title, detail).Problem
	}
	switch {
	case errors.Is(err, models.ErrNotFound):
		return errUserNotFound.Problem, true
	case errors.Is(err, models.ErrEmailTaken):
		return problem.New(http.StatusConflict, "email-taken", "Email already used",
			"Another user in this workspace already has this email address.",
			problem.FieldError{Field: "email", Message: "is already used in this workspace"}).Problem, true
	case errors.Is(err, tenants.ErrMalformedHost):
		return p(http.StatusNotFound, "unknown-host", "Unknown host", "The Host header is not a valid host name."), true
	case errors.Is(err, tenants.ErrUnknownHost):
		return p(http.StatusNotFound, "unknown-host", "Unknown host", "No workspace is served on this host."), true
	case errors.Is(err, tenants.ErrSuspended):
		return p(http.StatusForbidden, "tenant-suspended", "Workspace suspended", "This workspace is suspended."), true
	case errors.Is(err, tenants.ErrBehind):
		return p(http.StatusServiceUnavailable, "tenant-migrating", "Workspace being upgraded",
			"This workspace's data is being upgraded; try again shortly."), true
	}
	return problem.Internal(), false
}

// respondError logs what the client must not see and writes the problem:
// problem+json for programs, or the same Problem as an HTML page for
// people, as writeProblem decides.
func (s *Server) respondError(c *gin.Context, err error) {
	pr, known := problemFor(err)
	if !known {
		s.Log.ErrorContext(c.Request.Context(), "request failed", "err", err, "method", c.Request.Method, "path", c.Request.URL.Path)
	}
	s.writeProblem(c, pr)
}

// writeProblem writes pr. It is the one place that chooses between
// problem+json and an HTML page (wantsHTML), so respondError, the panic
// handler and every route answer alike.
//
// A 503 (a tenant being migrated) carries Retry-After in both formats, as
// openapi.yaml promises; problem.Write sets it for problem+json, so that
// the admin API's 503s carry it too.
func (s *Server) writeProblem(c *gin.Context, pr Problem) {
	if s.wantsHTML(c) {
		if pr.Status == http.StatusServiceUnavailable {
			c.Header("Retry-After", "5")
		}
		s.writeProblemHTML(c, pr)
		return
	}
	_ = problem.Write(c.Writer, pr, c.Request.URL.Path)
}
