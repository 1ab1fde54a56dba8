package middleware_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"

	"tenantry/fault"
	"tenantry/middleware"
	"tenantry/problem"
)

func init() { gin.SetMode(gin.ReleaseMode) }

// logTo returns a logger at debug level writing text lines to buf.
func logTo(buf *bytes.Buffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// writeJSON is a server's problem writer, as problem.Write.
func writeJSON(c *gin.Context, p problem.Problem) { _ = problem.Write(c.Writer, p, c.Request.URL.Path) }

func TestRecover(t *testing.T) {
	var logs bytes.Buffer
	e := gin.New()
	e.Use(middleware.Recover(logTo(&logs), writeJSON))
	e.GET("/panic", func(*gin.Context) { panic("boom") })
	e.GET("/panic-after-writing", func(c *gin.Context) {
		c.String(http.StatusAccepted, "partial")
		panic(errors.New("late"))
	})
	e.GET("/abort", func(*gin.Context) { panic(http.ErrAbortHandler) })

	t.Run("answers 500 problem", func(t *testing.T) {
		w := httptest.NewRecorder()
		e.ServeHTTP(w, httptest.NewRequest("GET", "/panic", nil))
		if w.Code != 500 || w.Header().Get("Content-Type") != "application/problem+json" ||
			!strings.Contains(w.Body.String(), `"type":"urn:tenantry:problem:internal"`) {
			t.Errorf("got %d %q %s, want a 500 internal problem", w.Code, w.Header().Get("Content-Type"), w.Body)
		}
		if strings.Contains(w.Body.String(), "boom") {
			t.Errorf("the panic value reached the client: %s", w.Body)
		}
		if l := logs.String(); !strings.Contains(l, "level=ERROR") || !strings.Contains(l, "panic=boom") ||
			!strings.Contains(l, "stack=") || !strings.Contains(l, "route=/panic") {
			t.Errorf("log = %q, want an error line with the panic, its route and the stack", l)
		}
	})
	t.Run("keeps an answer already begun", func(t *testing.T) {
		w := httptest.NewRecorder()
		e.ServeHTTP(w, httptest.NewRequest("GET", "/panic-after-writing", nil))
		if w.Code != http.StatusAccepted || w.Body.String() != "partial" {
			t.Errorf("got %d %q, want the handler's own 202 partial", w.Code, w.Body)
		}
	})
	t.Run("lets ErrAbortHandler through", func(t *testing.T) {
		defer func() {
			if v := recover(); v != http.ErrAbortHandler {
				t.Errorf("recovered %v, want http.ErrAbortHandler", v)
			}
		}()
		e.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/abort", nil))
	})
}

// chunked is a body of unknown length (Content-Length -1), as a chunked
// request has.
type chunked struct{ io.Reader }

func (chunked) Close() error { return nil }

func TestLimitBody(t *testing.T) {
	const max = 10
	e := gin.New()
	tooLarge := 0
	e.Use(middleware.LimitBody(max, func(c *gin.Context) {
		tooLarge++
		writeJSON(c, problem.ErrTooLarge.Problem)
	}))
	e.POST("/", func(c *gin.Context) {
		b, err := io.ReadAll(c.Request.Body)
		if err != nil {
			p, _ := problem.From(err)
			writeJSON(c, p)
			return
		}
		c.String(200, "%d", len(b))
	})
	e.GET("/", func(c *gin.Context) {
		if c.Request.Body != http.NoBody {
			t.Errorf("a GET's body was wrapped")
		}
		c.Status(204)
	})
	for _, tc := range []struct {
		name      string
		req       func() *http.Request
		status    int
		tooLarges int // calls of onTooLarge
	}{
		{"under the limit", func() *http.Request { return httptest.NewRequest("POST", "/", strings.NewReader("12345")) }, 200, 0},
		{"at the limit", func() *http.Request { return httptest.NewRequest("POST", "/", strings.NewReader("1234567890")) }, 200, 0},
		{"Content-Length over", func() *http.Request { return httptest.NewRequest("POST", "/", strings.NewReader("12345678901")) }, 413, 1},
		{"chunked over", func() *http.Request {
			r := httptest.NewRequest("POST", "/", nil)
			r.Body, r.ContentLength = chunked{strings.NewReader(strings.Repeat("x", 100))}, -1
			return r
		}, 413, 0},
		{"no body", func() *http.Request { return httptest.NewRequest("GET", "/", http.NoBody) }, 204, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tooLarge = 0
			w := httptest.NewRecorder()
			e.ServeHTTP(w, tc.req())
			if w.Code != tc.status || tooLarge != tc.tooLarges {
				t.Errorf("status %d, onTooLarge called %d times; want %d and %d: %s", w.Code, tooLarge, tc.status, tc.tooLarges, w.Body)
			}
		})
	}

	// The GET path, the servers' hottest, allocates nothing for the limit.
	h := middleware.LimitBody(max, func(*gin.Context) {})
	c, _ := gin.CreateTestContext(httptest.NewRecorder())
	c.Request = httptest.NewRequest("GET", "/", http.NoBody)
	if n := testing.AllocsPerRun(100, func() { h(c) }); n != 0 {
		t.Errorf("LimitBody on a GET: %v allocations, want 0", n)
	}
}

// TestLogError: only faults of the service are errors in the log, with
// their whole chain; the transient kinds of a bad day are not logged per
// request; the rest is debug.
func TestLogError(t *testing.T) {
	internal := fmt.Errorf("list users: %w", errors.New(`pq: relation "acme.users" does not exist`))
	for _, tc := range []struct {
		name string
		err  error
		want string // "" for no line, else the level and a part of it
	}{
		{"unclassified", internal, `level=ERROR msg="request failed" err="list users: pq: relation \"acme.users\" does not exist"`},
		{"internal fault", fault.Wrap(internal, fault.Internal, "x", "X."), `level=ERROR`},
		{"unavailable", fault.Wrap(internal, fault.Unavailable, "database-unavailable", "Down."), ""},
		{"timeout", fmt.Errorf("query: %w", context.DeadlineExceeded), ""},
		{"contention", fault.New(fault.Contention, "contention", "Retry."), ""},
		{"canceled", fmt.Errorf("query: %w", context.Canceled), "level=DEBUG msg=\"request failed\" err=\"query: context canceled\" kind=canceled"},
		{"client error", fault.New(fault.NotFound, "user-not-found", "No user."), "level=DEBUG msg=\"request failed\" err=\"No user.\" kind=not_found"},
		{"problem error", problem.ErrTooLarge, "level=DEBUG"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs bytes.Buffer
			c, _ := gin.CreateTestContext(httptest.NewRecorder())
			c.Request = httptest.NewRequest("GET", "/api/users", nil)
			_, known := problem.From(tc.err)
			middleware.LogError(c, logTo(&logs), "request failed", tc.err, known)
			got := logs.String()
			switch {
			case tc.want == "" && got != "":
				t.Errorf("logged %q, want nothing", got)
			case tc.want != "" && !strings.Contains(got, tc.want):
				t.Errorf("logged %q, want a line with %q", got, tc.want)
			case tc.want != "" && strings.Count(got, "\n") != 1:
				t.Errorf("logged %q, want one line", got)
			}
		})
	}
	// At info level a known error costs no log line at all.
	var logs bytes.Buffer
	c, _ := gin.CreateTestContext(httptest.NewRecorder())
	c.Request = httptest.NewRequest("GET", "/", nil)
	middleware.LogError(c, slog.New(slog.NewTextHandler(&logs, nil)), "request failed", fault.New(fault.NotFound, "x", "X."), true)
	if logs.Len() != 0 {
		t.Errorf("at info level logged %q", logs.String())
	}
}
