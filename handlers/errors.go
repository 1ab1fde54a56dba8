package handlers

import (
	"errors"
	"net/http"

	"github.com/gin-gonic/gin"

	"tenantry/models"
	"tenantry/tenants"
)

// Problem is an RFC 9457 problem details object.
type Problem struct {
	Type     string              `json:"type"`
	Title    string              `json:"title"`
	Status   int                 `json:"status"`
	Detail   string              `json:"detail,omitempty"`
	Instance string              `json:"instance,omitempty"`
	Errors   []models.FieldError `json:"errors,omitempty"`
}

const problemBase = "urn:tenantry:problem:"

// requestError is an error caused by the request itself, with the status
// and a message that is safe to show to the client.
type requestError struct {
	status int
	slug   string
	title  string
	detail string
	fields []models.FieldError
}

func (e *requestError) Error() string { return e.title + ": " + e.detail }

var (
	errTooLarge = &requestError{status: http.StatusRequestEntityTooLarge, slug: "body-too-large",
		title: "Request body too large", detail: "The request body is larger than the server accepts."}
	errNoRoute = &requestError{status: http.StatusNotFound, slug: "not-found",
		title: "Not found", detail: "No resource exists at this path."}
	errNoMethod = &requestError{status: http.StatusMethodNotAllowed, slug: "method-not-allowed",
		title: "Method not allowed", detail: "This resource does not support the request's method."}
	errUserNotFound = &requestError{status: http.StatusNotFound, slug: "user-not-found",
		title: "User not found", detail: "No user with this id exists in this workspace."}
)

// problemFor is the one place that maps an error to what the client sees.
// Anything not recognised is a 500 whose details stay in the log.
func problemFor(err error) (Problem, bool) {
	var (
		re *requestError
		ve *models.ValidationError
		mb *http.MaxBytesError
	)
	p := func(status int, slug, title, detail string) Problem {
		return Problem{Type: problemBase + slug, Title: title, Status: status, Detail: detail}
	}
	switch {
	case errors.As(err, &re):
		pr := p(re.status, re.slug, re.title, re.detail)
		pr.Errors = re.fields
		return pr, true
	case errors.As(err, &ve):
		pr := p(http.StatusUnprocessableEntity, "validation", "Invalid input", "One or more fields are invalid.")
		pr.Errors = ve.Fields
		return pr, true
	case errors.As(err, &mb):
		return problemFor(errTooLarge)
	case errors.Is(err, models.ErrNotFound):
		return problemFor(errUserNotFound)
	case errors.Is(err, models.ErrEmailTaken):
		pr := p(http.StatusConflict, "email-taken", "Email already used", "Another user in this workspace already has this email address.")
		pr.Errors = []models.FieldError{{Field: "email", Message: "is already used in this workspace"}}
		return pr, true
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
	return problemInternal(), false
}

func problemInternal() Problem {
	return Problem{Type: problemBase + "internal", Title: "Internal server error", Status: http.StatusInternalServerError,
		Detail: "Something went wrong on our side; it has been logged."}
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
func (s *Server) writeProblem(c *gin.Context, pr Problem) {
	pr.Instance = c.Request.URL.Path
	if pr.Status == http.StatusServiceUnavailable {
		c.Header("Retry-After", "5")
	}
	if s.wantsHTML(c) {
		s.writeProblemHTML(c, pr)
		return
	}
	c.Header("Content-Type", "application/problem+json")
	c.Header("Cache-Control", "no-store")
	c.Status(pr.Status)
	_ = jsonEncode(c.Writer, pr)
}
