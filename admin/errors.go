package admin

import (
	"errors"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"
	"gorm.io/gorm"

	"tenantry/tenants"
)

// Problem is an RFC 9457 problem details object, shaped as the tenant
// API's (package handlers) so one client can read both.
type Problem struct {
	Type     string       `json:"type"`
	Title    string       `json:"title"`
	Status   int          `json:"status"`
	Detail   string       `json:"detail,omitempty"`
	Instance string       `json:"instance,omitempty"`
	Errors   []FieldError `json:"errors,omitempty"`
}

// FieldError is one invalid field of a request and what is wrong with it.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

const problemBase = "urn:tenantry:problem:"

// requestError is an error caused by the request itself, with the status
// and a message that is safe to show to the client.
type requestError struct {
	status int
	slug   string
	title  string
	detail string
	fields []FieldError
}

func (e *requestError) Error() string { return e.title + ": " + e.detail }

func newRequestError(status int, slug, title, detail string, fields ...FieldError) *requestError {
	return &requestError{status: status, slug: slug, title: title, detail: detail, fields: fields}
}

var (
	errUnauthorized = newRequestError(http.StatusUnauthorized, "unauthorized", "Unauthorized",
		"Send the admin token as Authorization: Bearer <token>.")
	errTooLarge = newRequestError(http.StatusRequestEntityTooLarge, "body-too-large", "Request body too large",
		"The request body is larger than the admin API accepts.")
	errNoRoute = newRequestError(http.StatusNotFound, "not-found", "Not found",
		"No admin resource exists at this path.")
	errNoMethod = newRequestError(http.StatusMethodNotAllowed, "method-not-allowed", "Method not allowed",
		"This admin resource does not support the request's method.")
	errMigrationRunning = newRequestError(http.StatusConflict, "migration-running", "Migration already running",
		"A migration run is in progress on this instance; follow it with GET /admin/migrate.")
)

// invalid is a 422 listing the invalid fields.
func invalid(fields ...FieldError) *requestError {
	return newRequestError(http.StatusUnprocessableEntity, "validation", "Invalid input",
		"One or more fields are invalid.", fields...)
}

// problemFor is the one place that maps an error to what the client sees.
// The catalog's own messages for bad names and hosts are shown, since they
// only restate the client's input and the rule it broke; anything not
// recognised is a 500 whose details stay in the log.
func problemFor(err error) (Problem, bool) {
	var (
		re *requestError
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
	case errors.As(err, &mb):
		return problemFor(errTooLarge)
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
	return Problem{Type: problemBase + "internal", Title: "Internal server error", Status: http.StatusInternalServerError,
		Detail: "Something went wrong on our side; it has been logged."}, false
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
	pr.Instance = c.Request.URL.Path
	c.Header("Content-Type", "application/problem+json")
	c.Header("Cache-Control", "no-store")
	c.Status(pr.Status)
	if err := jsonEncode(c.Writer, pr); err != nil {
		s.log.WarnContext(c.Request.Context(), "write admin problem", "err", err)
	}
}
