package handlers

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"tenantry/fault"
	"tenantry/models"
	"tenantry/problem"
	"tenantry/tenants"
	"tenantry/web"
)

// TestProblemFor is every error the domain gives the tenant API and the
// exact problem the API (and a page, which shows the same Problem) shows
// for it, from the typed error alone.
func TestProblemFor(t *testing.T) {
	must := func(_ string, err error) error { return err }
	p := func(status int, slug, title, detail string, fields ...problem.FieldError) Problem {
		return Problem{Type: problem.Base + slug, Title: title, Status: status, Detail: detail, Errors: fields}
	}
	for _, tc := range []struct {
		name  string
		err   error
		want  Problem
		known bool
	}{
		{"user not found", fmt.Errorf("get user 7: %w", models.ErrNotFound),
			p(404, "user-not-found", "User not found", "No user with this id exists in this workspace."), true},
		{"email taken", fmt.Errorf("create user: %w", models.ErrEmailTaken),
			p(409, "email-taken", "Email already used", "Another user in this workspace already has this email address.",
				problem.FieldError{Field: "email", Message: "is already used in this workspace"}), true},
		{"unknown host", fmt.Errorf("host %s: %w", "nobody.test", tenants.ErrUnknownHost),
			p(404, "unknown-host", "Unknown host", "No workspace is served on this host."), true},
		{"unknown host from the resolver", tenants.ErrUnknownHost,
			p(404, "unknown-host", "Unknown host", "No workspace is served on this host."), true},
		// The operator's 422 invalid-host is an unknown host here.
		{"malformed host", must(tenants.NormalizeHost("bad!host", false)),
			p(404, "unknown-host", "Unknown host", "The Host header is not a valid host name."), true},
		{"suspended", fmt.Errorf("%w: acme", tenants.ErrSuspended),
			p(403, "tenant-suspended", "Workspace suspended", "This workspace is suspended."), true},
		{"behind", fmt.Errorf("%w: acme is at version 1, the code needs 2", tenants.ErrBehind),
			Problem{Type: problem.Base + "tenant-migrating", Title: "Workspace being upgraded", Status: 503,
				Detail: "This workspace's data is being upgraded; try again shortly.", RetryAfter: 5 * time.Second}, true},
		{"validation", &models.ValidationError{Fields: []models.FieldError{{Field: "name", Message: "must not be empty"}}},
			p(422, "validation", "Invalid input", "One or more fields are invalid.", problem.FieldError{Field: "name", Message: "must not be empty"}), true},
		{"body too large", &http.MaxBytesError{Limit: 1}, problem.ErrTooLarge.Problem, true},
		{"statement deadline", fmt.Errorf("list users: %w", context.DeadlineExceeded),
			Problem{Type: problem.Base + "timeout", Title: "Request timed out", Status: 503,
				Detail: "The request took too long; retry after the number of seconds in Retry-After.", RetryAfter: 5 * time.Second}, true},
		{"scope refusal", fmt.Errorf("%w: raw SQL", tenants.ErrOutsideScope), problem.Internal(), false},
		{"driver error", errors.New(`pq: relation "acme.users" does not exist`), problem.Internal(), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, known := problemFor(tc.err)
			if !reflect.DeepEqual(got, tc.want) || known != tc.known {
				t.Errorf("problemFor(%v) =\n  %+v, %v\nwant\n  %+v, %v", tc.err, got, known, tc.want, tc.known)
			}
		})
	}
}

func send(t *testing.T, url, accept string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Accept", accept)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

// quiet is the servers' log here: the panics and failures are expected.
var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

const htmlAccept = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"

// TestPanicIsA500 sends requests whose handler panics through the
// handler New builds, over real HTTP: a 500 problem for programs and a
// 500 page for browsers, never a dropped connection or the panic's words.
func TestPanicIsA500(t *testing.T) {
	pages, err := web.New()
	if err != nil {
		t.Fatal(err)
	}
	h := New(Deps{Log: quiet, MaxBody: 1 << 10, Pages: pages,
		Ready: func(context.Context) error { panic("secret readiness detail") }})
	h.(*gin.Engine).GET("/test/panic", func(*gin.Context) { panic("secret page detail") })
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	for _, tc := range []struct {
		name, path, accept, contentType, want string
	}{
		{"health check", "/readyz", "", "application/problem+json", `"type":"urn:tenantry:problem:internal"`},
		{"health check from a browser", "/readyz", htmlAccept, "application/problem+json", `"type":"urn:tenantry:problem:internal"`},
		{"program", "/test/panic", "application/json", "application/problem+json", `"type":"urn:tenantry:problem:internal"`},
		{"browser", "/test/panic", htmlAccept, "text/html; charset=utf-8", "Something went wrong on our side; it has been logged."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := send(t, srv.URL+tc.path, tc.accept)
			if resp.StatusCode != 500 || resp.Header.Get("Content-Type") != tc.contentType || !strings.Contains(body, tc.want) {
				t.Errorf("got %d %q %s; want 500 %q with %q", resp.StatusCode, resp.Header.Get("Content-Type"), body, tc.contentType, tc.want)
			}
			if strings.Contains(body, "secret") {
				t.Errorf("the panic reached the client: %s", body)
			}
		})
	}
}

// TestRetryAfterOnPages: a 503 or 429 carries Retry-After as a page as
// well as as problem+json, from the same problem.
func TestRetryAfterOnPages(t *testing.T) {
	pages, err := web.New()
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Deps: Deps{Log: quiet, Pages: pages}}
	errs := map[string]error{
		"contention": fault.New(fault.Contention, "contention", "Retry."),
		"limited":    &fault.Error{Kind: fault.TooMany, Code: "rate-limited", Message: "Slow down.", RetryAfter: 2 * time.Second},
		"down":       fault.New(fault.Unavailable, "database-unavailable", "The database is unavailable."),
	}
	gin.SetMode(gin.ReleaseMode)
	e := gin.New()
	e.GET("/users/:err", func(c *gin.Context) { s.respondError(c, errs[c.Param("err")]) })
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)
	for _, tc := range []struct {
		err, retryAfter string
		status          int
	}{
		{"contention", "1", 503},
		{"limited", "2", 429},
		{"down", "5", 503},
	} {
		for _, accept := range []string{htmlAccept, "application/json"} {
			resp, body := send(t, srv.URL+"/users/"+tc.err, accept)
			if resp.StatusCode != tc.status || resp.Header.Get("Retry-After") != tc.retryAfter {
				t.Errorf("%s (Accept %s): %d Retry-After %q, want %d %q: %s", tc.err, accept, resp.StatusCode,
					resp.Header.Get("Retry-After"), tc.status, tc.retryAfter, body)
			}
		}
	}
}
