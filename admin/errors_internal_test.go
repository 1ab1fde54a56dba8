package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"gorm.io/gorm"

	"tenantry/fault"
	"tenantry/problem"
	"tenantry/tenants"
)

// TestProblemFor is every error the catalog gives the admin API and the
// exact problem the API shows for it, from the typed error alone.
func TestProblemFor(t *testing.T) {
	must := func(_ string, err error) error { return err }
	p := func(status int, slug, title, detail string, fields ...FieldError) Problem {
		return Problem{Type: problem.Base + slug, Title: title, Status: status, Detail: detail, Errors: fields}
	}
	for _, tc := range []struct {
		name  string
		err   error
		want  Problem
		known bool
	}{
		{"tenant not found", fmt.Errorf("tenant %q: %w", "x", tenants.ErrNotFound),
			p(404, "tenant-not-found", "Tenant not found", "No tenant has this name."), true},
		{"tenant exists", fmt.Errorf("provision: %w", tenants.ErrExists.With("", `Conflicts with an existing tenant: "acme".`, nil)),
			p(409, "tenant-exists", "Tenant already exists", `Conflicts with an existing tenant: "acme".`), true},
		{"host taken", tenants.ErrHostTaken.With("", "Host a.test already belongs to another tenant.", gorm.ErrDuplicatedKey),
			p(409, "host-taken", "Host taken", "Host a.test already belongs to another tenant."), true},
		{"invalid name", tenants.ValidateName("Not A Name"),
			p(422, "invalid-name", "Invalid name", `tenant name "Not A Name" must match ^[a-z0-9][a-z0-9_-]{0,62}$.`,
				FieldError{Field: "name", Message: `tenant name "Not A Name" must match ^[a-z0-9][a-z0-9_-]{0,62}$`}), true},
		{"sqlite schema", fmt.Errorf("provision: %w", tenants.ValidateSchema("sqlite_x")),
			p(422, "invalid-name", "Invalid name", `schema "sqlite_x" is reserved: names starting with sqlite belong to SQLite.`,
				FieldError{Field: "schema", Message: `schema "sqlite_x" is reserved: names starting with sqlite belong to SQLite`}), true},
		// The operator's host is input breaking a rule here, not an
		// unknown host as on the tenant API.
		{"malformed host", must(tenants.NormalizeHost("bad host", false)),
			p(422, "invalid-host", "Invalid host", `"bad host": bad host name.`, FieldError{Field: "host", Message: `"bad host": bad host name`}), true},
		{"malformed host sentinel", tenants.ErrMalformedHost,
			p(422, "invalid-host", "Invalid host", "not a valid host[:port].", FieldError{Field: "host", Message: "not a valid host[:port]"}), true},
		{"concurrent insert", fmt.Errorf("insert tenant: %w", gorm.ErrDuplicatedKey),
			p(409, "conflict", "Conflict", "A concurrent change used the same name or host; retry."), true},
		{"suspended", fmt.Errorf("%w: acme", tenants.ErrSuspended), p(403, "tenant-suspended", "Workspace suspended", "This workspace is suspended."), true},
		{"database down", fault.Wrap(errors.New("dial tcp: refused"), fault.Unavailable, "database-unavailable", "The database is unavailable."),
			Problem{Type: problem.Base + "database-unavailable", Title: "Service unavailable", Status: 503,
				Detail: "The database is unavailable.", RetryAfter: 5 * time.Second}, true},
		{"code fault", fmt.Errorf("scope: %w", tenants.ErrNoTenant), problem.Internal(), false},
		{"driver error", errors.New(`pq: relation "x" does not exist`), problem.Internal(), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, known := problemFor(tc.err)
			if !reflect.DeepEqual(got, tc.want) || known != tc.known {
				t.Errorf("problemFor(%v) =\n  %+v, %v\nwant\n  %+v, %v", tc.err, got, known, tc.want, tc.known)
			}
		})
	}
}

// testServer is the admin API with extra routes that fail on purpose,
// served over real HTTP, and what it logged.
func testServer(t *testing.T, extra func(s *Server, e *gin.Engine)) (url string, logs *syncBuffer) {
	t.Helper()
	logs = &syncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s, err := NewServer(Deps{Log: log, Token: "t0ken"})
	if err != nil {
		t.Fatal(err)
	}
	extra(s, s.engine)
	hs := httptest.NewServer(s)
	t.Cleanup(hs.Close)
	return hs.URL, logs
}

// syncBuffer is a log the server writes from its goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func get(t *testing.T, url string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Authorization", "Bearer t0ken")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// TestPanicIsA500Problem: a panic in a handler is a logged 500 problem,
// never a dropped connection, and says nothing of its cause.
func TestPanicIsA500Problem(t *testing.T) {
	url, logs := testServer(t, func(_ *Server, e *gin.Engine) {
		e.GET("/admin/test/panic", func(*gin.Context) { panic("secret detail") })
	})
	resp, body := get(t, url+"/admin/test/panic")
	var p Problem
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatalf("decode %s: %v", body, err)
	}
	if resp.StatusCode != 500 || resp.Header.Get("Content-Type") != "application/problem+json" ||
		!reflect.DeepEqual(p, Problem{Type: problem.Base + "internal", Title: "Internal server error", Status: 500,
			Detail: "Something went wrong on our side; it has been logged.", Instance: "/admin/test/panic",
			RequestID: resp.Header.Get("X-Request-ID")}) || p.RequestID == "" {
		t.Errorf("got %d %s, want the internal problem", resp.StatusCode, body)
	}
	if strings.Contains(string(body), "secret") {
		t.Errorf("the panic reached the client: %s", body)
	}
	if l := logs.String(); !strings.Contains(l, "level=ERROR msg=panic") || !strings.Contains(l, "secret detail") {
		t.Errorf("log = %q, want the panic at error level", l)
	}
}

// TestFailuresAnswerAndLog sends errors of each kind through respondError
// over real HTTP: the status and Retry-After of each, and what the log
// got (nothing per request for a database that is down).
func TestFailuresAnswerAndLog(t *testing.T) {
	errs := map[string]error{
		"unavailable": fault.Wrap(errors.New("dial tcp: connection refused"), fault.Unavailable, "database-unavailable", "The database is unavailable."),
		"contention":  fault.Wrap(errors.New("deadlock detected"), fault.Contention, "contention", "Retry."),
		"own-wait":    &fault.Error{Kind: fault.Unavailable, Code: "draining", Message: "Draining.", RetryAfter: 3 * time.Second},
		"deadline":    fmt.Errorf("query: %w", context.DeadlineExceeded),
		"too-many":    fault.New(fault.TooMany, "rate-limited", "Slow down."),
		"not-found":   fmt.Errorf("tenant %q: %w", "x", tenants.ErrNotFound),
		"internal":    fmt.Errorf("list tenants: %w", errors.New(`pq: relation "tenants" does not exist`)),
	}
	url, logs := testServer(t, func(s *Server, e *gin.Engine) {
		e.GET("/admin/test/fail/:kind", func(c *gin.Context) { s.respondError(c, errs[c.Param("kind")]) })
	})
	for _, tc := range []struct {
		kind       string
		status     int
		retryAfter string
	}{
		{"unavailable", 503, "5"},
		{"contention", 503, "1"},
		{"own-wait", 503, "3"},
		{"deadline", 503, "5"},
		{"too-many", 429, "1"},
		{"not-found", 404, ""},
		{"internal", 500, ""},
	} {
		resp, body := get(t, url+"/admin/test/fail/"+tc.kind)
		if resp.StatusCode != tc.status || resp.Header.Get("Retry-After") != tc.retryAfter {
			t.Errorf("%s: %d with Retry-After %q, want %d with %q: %s", tc.kind, resp.StatusCode,
				resp.Header.Get("Retry-After"), tc.status, tc.retryAfter, body)
		}
	}
	var failed []string
	for line := range strings.Lines(logs.String()) {
		if strings.Contains(line, `msg="admin request failed"`) {
			failed = append(failed, line)
		}
	}
	// The transient kinds are not logged per request: at most at debug,
	// the client's mistakes; at error, the fault of the service with its
	// whole chain.
	if len(failed) != 3 || !strings.Contains(failed[0], "level=DEBUG") || !strings.Contains(failed[0], "kind=too_many") ||
		!strings.Contains(failed[1], "level=DEBUG") || !strings.Contains(failed[1], "kind=not_found") ||
		!strings.Contains(failed[2], `level=ERROR msg="admin request failed" err="list tenants: pq: relation \"tenants\" does not exist"`) {
		t.Errorf("failures logged:\n%s\nwant debug lines for too-many and not-found and an error line with the internal chain", strings.Join(failed, ""))
	}
}
