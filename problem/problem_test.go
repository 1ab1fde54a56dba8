package problem_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"
	"time"

	"tenantry/fault"
	"tenantry/models"
	"tenantry/problem"
)

// TestStatus is the one table from kinds to statuses, every kind in it.
func TestStatus(t *testing.T) {
	want := map[fault.Kind]int{
		fault.Internal: 500, fault.Invalid: 422, fault.BadRequest: 400, fault.NotFound: 404, fault.Gone: 404,
		fault.Conflict: 409, fault.Forbidden: 403, fault.TooMany: 429, fault.Unavailable: 503, fault.Timeout: 503,
		fault.Contention: 503, fault.Canceled: 499, fault.TooLarge: 413, fault.RequestTimeout: 408,
	}
	for k := fault.Internal; k <= fault.RequestTimeout; k++ {
		w, ok := want[k]
		if !ok {
			t.Errorf("kind %v has no expected status in this test: add it", k)
			continue
		}
		if got := problem.Status(k); got != w {
			t.Errorf("Status(%v) = %d, want %d", k, got, w)
		}
	}
	if got := problem.Status(fault.Kind(200)); got != 500 {
		t.Errorf("Status of an unknown kind = %d, want 500", got)
	}
}

// TestFromEveryKind: a classified error without a title or message of
// its own still gets a status, a type, a title and a detail, and the
// transient kinds a Retry-After.
func TestFromEveryKind(t *testing.T) {
	for k := fault.Invalid; k <= fault.RequestTimeout; k++ {
		t.Run(k.String(), func(t *testing.T) {
			p, known := problem.From(fmt.Errorf("op: %w", fault.New(k, "", "")))
			if !known {
				t.Fatalf("From(%v) not recognised", k)
			}
			if p.Status != problem.Status(k) || p.Type == problem.Base || p.Title == "" || p.Detail == "" {
				t.Errorf("From(%v) = %+v, want status %d, a type, a title and a detail", k, p, problem.Status(k))
			}
			transient := p.Status == 503 || p.Status == 429
			if transient != (p.RetryAfter > 0) {
				t.Errorf("From(%v).RetryAfter = %v, want one exactly on a 503 or 429", k, p.RetryAfter)
			}
		})
	}
}

func TestFrom(t *testing.T) {
	ve := &models.ValidationError{Fields: []models.FieldError{{Field: "name", Message: "must not be empty"}}}
	invalidName := &fault.Error{Kind: fault.Invalid, Code: "invalid-name", Title: "Invalid name", Message: "invalid name", Field: "name"}
	for _, tc := range []struct {
		name  string
		err   error
		want  problem.Problem
		known bool
	}{
		{"problem error", fmt.Errorf("x: %w", problem.ErrTooLarge), problem.ErrTooLarge.Problem, true},
		{"validation", fmt.Errorf("create: %w", ve), problem.Invalid(ve.Fields...).Problem, true},
		{"max bytes", &http.MaxBytesError{Limit: 10}, problem.ErrTooLarge.Problem, true},
		{"fault with everything", fmt.Errorf("provision: %w", invalidName.With("schema", `schema "x" is reserved`, errors.New("secret cause"))),
			problem.Problem{Type: problem.Base + "invalid-name", Title: "Invalid name", Status: 422, Detail: `schema "x" is reserved.`,
				Errors: []problem.FieldError{{Field: "schema", Message: `schema "x" is reserved`}}}, true},
		{"fault sentence kept", fault.New(fault.Conflict, "tenant-exists", `Conflicts with an existing tenant: "a".`),
			problem.Problem{Type: problem.Base + "tenant-exists", Title: "Conflict", Status: 409, Detail: `Conflicts with an existing tenant: "a".`}, true},
		{"fault without code", fault.New(fault.TooMany, "", ""),
			problem.Problem{Type: problem.Base + "too-many", Title: "Too many requests", Status: 429,
				Detail: "Too many requests; retry after the number of seconds in Retry-After.", RetryAfter: time.Second}, true},
		{"unavailable", fault.Wrap(errors.New("dial tcp: refused"), fault.Unavailable, "database-unavailable", "The database is unavailable."),
			problem.Problem{Type: problem.Base + "database-unavailable", Title: "Service unavailable", Status: 503,
				Detail: "The database is unavailable.", RetryAfter: 5 * time.Second}, true},
		{"contention", fault.New(fault.Contention, "contention", "Retry."),
			problem.Problem{Type: problem.Base + "contention", Title: "Busy", Status: 503, Detail: "Retry.", RetryAfter: time.Second}, true},
		{"retry after of its own", &fault.Error{Kind: fault.Unavailable, Code: "draining", Message: "Draining.", RetryAfter: 2500 * time.Millisecond},
			problem.Problem{Type: problem.Base + "draining", Title: "Service unavailable", Status: 503, Detail: "Draining.", RetryAfter: 2500 * time.Millisecond}, true},
		{"gone", fault.New(fault.Gone, "tenant-gone", "This workspace no longer exists."),
			problem.Problem{Type: problem.Base + "tenant-gone", Title: "Not found", Status: 404, Detail: "This workspace no longer exists."}, true},
		{"bare deadline", fmt.Errorf("query: %w", context.DeadlineExceeded),
			problem.Problem{Type: problem.Base + "timeout", Title: "Request timed out", Status: 503,
				Detail: "The request took too long; retry after the number of seconds in Retry-After.", RetryAfter: 5 * time.Second}, true},
		{"bare cancel", fmt.Errorf("query: %w", context.Canceled),
			problem.Problem{Type: problem.Base + "canceled", Title: "Request canceled", Status: 499, Detail: "The client closed the request."}, true},
		{"internal fault", fault.Wrap(errors.New("disk full"), fault.Internal, "disk", "Disk full."), problem.Internal(), false},
		{"plain", errors.New("pq: relation \"x\" does not exist"), problem.Internal(), false},
		{"nil", nil, problem.Internal(), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, known := problem.From(tc.err)
			if !reflect.DeepEqual(got, tc.want) || known != tc.known {
				t.Errorf("From(%v) =\n  %+v, %v\nwant\n  %+v, %v", tc.err, got, known, tc.want, tc.known)
			}
		})
	}
}

// TestWriteRetryAfter: every 503 and 429 carries Retry-After, from the
// problem or the status's default, and a caller's own header is kept;
// the body is the same JSON as ever, without the wait.
func TestWriteRetryAfter(t *testing.T) {
	for _, tc := range []struct {
		name   string
		p      problem.Problem
		preset string
		want   string
	}{
		{"503 default", problem.Problem{Status: 503}, "", "5"},
		{"429 default", problem.Problem{Status: 429}, "", "1"},
		{"503 own wait", problem.Problem{Status: 503, RetryAfter: time.Second}, "", "1"},
		{"rounded up", problem.Problem{Status: 503, RetryAfter: 1500 * time.Millisecond}, "", "2"},
		{"caller's header kept", problem.Problem{Status: 429, RetryAfter: time.Second}, "30", "30"},
		{"not on a 404", problem.Problem{Status: 404, RetryAfter: time.Second}, "", ""},
		{"not on a 500", problem.Internal(), "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			if tc.preset != "" {
				w.Header().Set("Retry-After", tc.preset)
			}
			tc.p.Type, tc.p.Title = problem.Base+"x", "X"
			if err := problem.Write(w, tc.p, "/api/x"); err != nil {
				t.Fatal(err)
			}
			if got := w.Header().Get("Retry-After"); got != tc.want {
				t.Errorf("Retry-After = %q, want %q", got, tc.want)
			}
			if w.Code != tc.p.Status || w.Header().Get("Content-Type") != "application/problem+json" {
				t.Errorf("status %d, Content-Type %q", w.Code, w.Header().Get("Content-Type"))
			}
			var body map[string]any
			if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
				t.Fatal(err)
			}
			for k := range body {
				switch k {
				case "type", "title", "status", "detail", "instance", "errors":
				default:
					t.Errorf("body has member %q: %s", k, w.Body)
				}
			}
		})
	}
}

func TestWriteJSON(t *testing.T) {
	w := httptest.NewRecorder()
	if err := problem.WriteJSON(w, 201, map[string]string{"a": "<b>"}); err != nil {
		t.Fatal(err)
	}
	if w.Code != 201 || w.Header().Get("Content-Type") != "application/json; charset=utf-8" || w.Body.String() != "{\"a\":\"<b>\"}\n" {
		t.Errorf("got %d %q %q", w.Code, w.Header().Get("Content-Type"), w.Body)
	}
}
