package handlers_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"tenantry/internal/testenv"
	"tenantry/logging"
)

// discardWriter is a ResponseWriter that keeps nothing but its header map,
// reused from one request to the next, so that the benchmark counts the
// router's allocations and not the recorder's.
type discardWriter struct {
	header http.Header
	status int
}

func (w *discardWriter) Header() http.Header         { return w.header }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *discardWriter) WriteHeader(status int)      { w.status = status }

// BenchmarkRequestOverhead measures what tenantry adds to every request
// before and after a handler's own work: recover, the request id and the
// access log, the Host header normalised and resolved, the tenant put in
// the context, the same-origin check, the body limit and the JSON or problem+json answer.
// The requests go through the real router of a running service (SQLite)
// and need no query: GET /api/tenant answers from the resolved tenant, an
// unknown path on a tenant host is a 404 problem, and /healthz resolves
// no tenant at all. Logging is at the default level (info), as in
// production.
//
//	go test -run '^$' -bench RequestOverhead -benchtime 1s ./handlers/
func BenchmarkRequestOverhead(b *testing.B) {
	// The process's logger at info level, as main builds it by default
	// (testenv.Logger logs at debug).
	log := slog.New(logging.NewHandler(slog.NewTextHandler(io.Discard, nil)))
	env := testenv.StartWithLog(b, "sqlite", log)
	h := env.App.Handler
	for _, bc := range []struct {
		name, path string
		want       int
	}{
		{"tenant", "/api/tenant", http.StatusOK},
		{"unknown path", "/api/nothing-here", http.StatusNotFound},
		{"healthz", "/healthz", http.StatusOK},
	} {
		b.Run(bc.name, func(b *testing.B) {
			req := httptest.NewRequest(http.MethodGet, bc.path, nil)
			req.Host = env.Addr1
			req.RemoteAddr = "127.0.0.1:40000"
			w := &discardWriter{header: http.Header{}}
			b.ReportAllocs()
			for b.Loop() {
				clear(w.header)
				w.status = 0
				h.ServeHTTP(w, req)
				if w.status != bc.want {
					b.Fatalf("GET %s: status %d, want %d", bc.path, w.status, bc.want)
				}
			}
		})
	}
}
