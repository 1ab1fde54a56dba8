package problem_test

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"

	"tenantry/problem"
)

func TestDecodeJSON(t *testing.T) {
	type body struct {
		Name *string  `json:"name"`
		Jobs int      `json:"jobs"`
		Tags []string `json:"tags"`
	}
	type fe = problem.FieldError
	for _, tc := range []struct {
		name, ctype, body string
		limit             int64
		status            int
		fields            []fe // every field error, in order, for a 422
	}{
		{"ok", "application/json", `{"name":"a","jobs":2}`, 0, 0, nil},
		{"ok with charset", "application/json; charset=utf-8", `{}`, 0, 0, nil},
		{"no content type", "", `{}`, 0, 415, nil},
		{"other media type", "text/plain", `{}`, 0, 415, nil},
		{"empty", "application/json", ``, 0, 400, nil},
		{"syntax error", "application/json", `{"name":}`, 0, 400, nil},
		{"syntax error after a wrong type", "application/json", `{"jobs":"x","name":}`, 0, 400, nil},
		{"truncated", "application/json", `{"name":"a",`, 0, 400, nil},
		{"array", "application/json", `[1]`, 0, 400, nil},
		{"string", "application/json", `"a"`, 0, 400, nil},
		{"null", "application/json", `null`, 0, 400, nil},
		{"trailing data", "application/json", `{} {}`, 0, 400, nil},
		{"wrong type string", "application/json", `{"name":1}`, 0, 422, []fe{{Field: "name", Message: "must be a string"}}},
		{"wrong type number", "application/json", `{"jobs":"x"}`, 0, 422, []fe{{Field: "jobs", Message: "must be a whole number"}}},
		{"wrong type in an array", "application/json", `{"tags":["a",1]}`, 0, 422, []fe{{Field: "tags", Message: "must be a string"}}},
		{"every wrong type", "application/json", `{"name":1,"jobs":true,"tags":"x"}`, 0, 422, []fe{
			{Field: "name", Message: "must be a string"}, {Field: "jobs", Message: "must be a whole number"}, {Field: "tags", Message: "must be an array"}}},
		{"wrong types around a good field", "application/json", `{"jobs":"x","name":"ok","tags":{}}`, 0, 422, []fe{
			{Field: "jobs", Message: "must be a whole number"}, {Field: "tags", Message: "must be an array"}}},
		{"unknown field", "application/json", `{"nope":1}`, 0, 422, []fe{{Field: "nope", Message: "is not a known field"}}},
		{"unknown and wrong type", "application/json", `{"nope":1,"name":2,"also":3}`, 0, 422, []fe{
			{Field: "nope", Message: "is not a known field"}, {Field: "name", Message: "must be a string"}, {Field: "also", Message: "is not a known field"}}},
		{"unknown field without a name", "application/json", `{"":1,"name":"a"}`, 0, 422, []fe{{Field: `""`, Message: "is not a known field"}}},
		{"duplicate wrong field once", "application/json", `{"name":1,"NAME":2}`, 0, 422, []fe{{Field: "name", Message: "must be a string"}}},
		{"too large", "application/json", `{"name":"` + strings.Repeat("x", 100) + `"}`, 50, 413, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/", strings.NewReader(tc.body))
			if tc.ctype != "" {
				r.Header.Set("Content-Type", tc.ctype)
			}
			if tc.limit > 0 {
				r.Body = http.MaxBytesReader(httptest.NewRecorder(), r.Body, tc.limit)
			}
			var b body
			err := problem.DecodeJSON(r, &b, "application/json")
			if tc.status == 0 {
				if err != nil {
					t.Fatalf("err = %v, want nil", err)
				}
				return
			}
			var pe *problem.Error
			if !errors.As(err, &pe) {
				t.Fatalf("err = %v, want *problem.Error", err)
			}
			if pe.Problem.Status != tc.status {
				t.Errorf("status = %d, want %d (%s)", pe.Problem.Status, tc.status, pe.Problem.Detail)
			}
			if !slices.Equal(pe.Problem.Errors, tc.fields) {
				t.Errorf("errors = %v, want %v", pe.Problem.Errors, tc.fields)
			}
		})
	}
}

// TestDecodeJSONKeepsGoodFields: the fields of the right type are decoded
// even when others are refused, so a caller can validate them too.
func TestDecodeJSONKeepsGoodFields(t *testing.T) {
	r := httptest.NewRequest("POST", "/", strings.NewReader(`{"jobs":"x","name":"Ada"}`))
	r.Header.Set("Content-Type", "application/json")
	var b struct {
		Name *string `json:"name"`
		Jobs int     `json:"jobs"`
	}
	if err := problem.DecodeJSON(r, &b, "application/json"); err == nil {
		t.Fatal("err = nil, want a 422")
	}
	if b.Name == nil || *b.Name != "Ada" {
		t.Errorf("name = %v, want Ada", b.Name)
	}
}

func TestWrite(t *testing.T) {
	w := httptest.NewRecorder()
	if err := problem.Write(w, problem.New(503, "x", "X", "later").Problem, "/p"); err != nil {
		t.Fatal(err)
	}
	if w.Code != 503 || w.Header().Get("Content-Type") != "application/problem+json" || w.Header().Get("Retry-After") == "" {
		t.Errorf("got %d %v", w.Code, w.Header())
	}
	if got := w.Body.String(); !strings.Contains(got, `"instance":"/p"`) || !strings.Contains(got, `"type":"urn:tenantry:problem:x"`) {
		t.Errorf("body %s", got)
	}
}

// stalled is a body that sends data and then hits the read deadline, as a
// request body does on a connection whose client stopped sending.
type stalled struct{ data *strings.Reader }

func (s stalled) Read(p []byte) (int, error) {
	if s.data.Len() == 0 {
		return 0, &net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}
	}
	return s.data.Read(p)
}

// TestDecodeJSONLimits: the size and time limits are answered as 413 and
// 408 wherever in the body they are met, never as malformed JSON (400),
// and a body within them is judged on its content as before.
func TestDecodeJSONLimits(t *testing.T) {
	const limit = 64
	pad := strings.Repeat(" ", 2*limit)
	for _, tc := range []struct {
		name    string
		body    string
		stall   bool // the body stops at the read deadline instead of ending
		status  int
		problem string // the problem type's slug
	}{
		{"over the limit inside the value", `{"name":"` + strings.Repeat("x", 2*limit) + `"}`, false, 413, "body-too-large"},
		{"over the limit in whitespace after the value", `{"name":"a"}` + pad, false, 413, "body-too-large"},
		{"over the limit in whitespace before the value", pad + `{}`, false, 413, "body-too-large"},
		{"over the limit after a syntax error", `{"name":}` + pad, false, 413, "body-too-large"},
		{"over the limit after trailing data", `{} {}` + pad, false, 413, "body-too-large"},
		{"over the limit after a second value", `{}"` + pad + `"`, false, 413, "body-too-large"},
		{"whitespace up to the limit", `{"name":"a"}` + strings.Repeat(" ", limit-len(`{"name":"a"}`)), false, 0, ""},
		{"within the limit, trailing data", `{} 1`, false, 400, "malformed-json"},
		{"within the limit, syntax error", `{"name":}`, false, 400, "malformed-json"},
		{"stalls inside the value", `{"name":"ab`, true, 408, "request-timeout"},
		{"stalls before the value", ``, true, 408, "request-timeout"},
		{"stalls in whitespace after the value", `{"name":"a"}  `, true, 408, "request-timeout"},
		{"stalls after a syntax error", `{"name":}`, true, 408, "request-timeout"},
		{"stalls after trailing data", `{} x`, true, 408, "request-timeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var body io.Reader = strings.NewReader(tc.body)
			if tc.stall {
				body = stalled{strings.NewReader(tc.body)}
			}
			r := httptest.NewRequest("POST", "/", nil)
			r.Header.Set("Content-Type", "application/json")
			r.Body = http.MaxBytesReader(httptest.NewRecorder(), io.NopCloser(body), limit)
			var b struct {
				Name *string `json:"name"`
			}
			err := problem.DecodeJSON(r, &b, "application/json")
			if tc.status == 0 {
				if err != nil {
					t.Fatalf("err = %v, want nil", err)
				}
				return
			}
			var pe *problem.Error
			if !errors.As(err, &pe) {
				t.Fatalf("err = %v, want *problem.Error", err)
			}
			if pe.Problem.Status != tc.status || pe.Problem.Type != problem.Base+tc.problem {
				t.Errorf("got %d %s (%s), want %d %s", pe.Problem.Status, pe.Problem.Type, pe.Problem.Detail, tc.status, problem.Base+tc.problem)
			}
		})
	}
}

// timeoutError is a net.Error that says it is a timeout without being
// os.ErrDeadlineExceeded, as some readers' errors are.
type timeoutError struct{}

func (timeoutError) Error() string   { return "timed out" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }

func TestBodyError(t *testing.T) {
	limited := func(rest string) io.Reader {
		return http.MaxBytesReader(httptest.NewRecorder(), io.NopCloser(strings.NewReader(rest)), 4)
	}
	for _, tc := range []struct {
		name string
		rest io.Reader // what is left of the body
		err  error
		want *problem.Error
	}{
		{"too large", strings.NewReader(""), fmt.Errorf("read form: %w", &http.MaxBytesError{Limit: 4}), problem.ErrTooLarge},
		{"deadline", strings.NewReader(""), &net.OpError{Op: "read", Err: os.ErrDeadlineExceeded}, problem.ErrBodyTimeout},
		{"wrapped deadline", strings.NewReader(""), fmt.Errorf("multipart: NextPart: %w", os.ErrDeadlineExceeded), problem.ErrBodyTimeout},
		{"net.Error timeout", strings.NewReader(""), timeoutError{}, problem.ErrBodyTimeout},
		{"syntax error, rest within the limit", limited("abc"), errors.New("bad"), nil},
		{"syntax error, rest over the limit", limited("abcdef"), errors.New("bad"), problem.ErrTooLarge},
		{"syntax error, rest stalls", stalled{strings.NewReader("ab")}, errors.New("bad"), problem.ErrBodyTimeout},
		{"end of input", strings.NewReader(""), io.ErrUnexpectedEOF, nil},
		{"connection reset", strings.NewReader(""), syscall.ECONNRESET, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := problem.BodyError(tc.rest, tc.err); got != tc.want {
				t.Errorf("BodyError = %v, want %v", got, tc.want)
			}
		})
	}
}
