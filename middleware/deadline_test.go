package middleware_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"tenantry/middleware"
)

// TestDeadline: every request's context ends timeout after it arrives,
// except those exempt, and a zero timeout sets none.
func TestDeadline(t *testing.T) {
	exempt := func(r *http.Request) bool { return strings.HasPrefix(r.URL.Path, "/long/") }
	for _, tc := range []struct {
		name    string
		timeout time.Duration
		path    string
		want    time.Duration // 0: no deadline
	}{
		{"bounded", 3 * time.Second, "/api/users", 3 * time.Second},
		{"exempt", 3 * time.Second, "/long/profile", 0},
		{"zero timeout", 0, "/api/users", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var (
				deadline time.Time
				has      bool
			)
			h := middleware.Deadline(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				deadline, has = r.Context().Deadline()
				w.WriteHeader(http.StatusNoContent)
			}), tc.timeout, exempt)
			start := time.Now()
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, tc.path, nil))
			if rec.Code != http.StatusNoContent {
				t.Fatalf("status = %d, want the handler's 204", rec.Code)
			}
			if has != (tc.want > 0) {
				t.Fatalf("deadline set = %v, want %v", has, tc.want > 0)
			}
			if has {
				if got := deadline.Sub(start); got < tc.want || got > tc.want+time.Second {
					t.Errorf("deadline %v after the request, want %v", got, tc.want)
				}
			}
		})
	}
}

// TestDeadlineEndsTheContext: a handler waiting on its context is
// released at the deadline, with context.DeadlineExceeded.
func TestDeadlineEndsTheContext(t *testing.T) {
	var waited time.Duration
	var err error
	h := middleware.Deadline(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		<-r.Context().Done()
		waited, err = time.Since(start), r.Context().Err()
	}), 50*time.Millisecond, nil)
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil))
	if err == nil || waited > 2*time.Second {
		t.Errorf("handler released after %v with %v, want about 50ms with a deadline error", waited, err)
	}
}
