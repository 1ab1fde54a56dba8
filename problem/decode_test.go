package problem_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"tenantry/problem"
)

func TestDecodeJSON(t *testing.T) {
	type body struct {
		Name *string `json:"name"`
		Jobs int     `json:"jobs"`
	}
	for _, tc := range []struct {
		name, ctype, body string
		limit             int64
		status            int
		field, message    string
	}{
		{"ok", "application/json", `{"name":"a","jobs":2}`, 0, 0, "", ""},
		{"ok with charset", "application/json; charset=utf-8", `{}`, 0, 0, "", ""},
		{"no content type", "", `{}`, 0, 415, "", ""},
		{"other media type", "text/plain", `{}`, 0, 415, "", ""},
		{"empty", "application/json", ``, 0, 400, "", ""},
		{"syntax error", "application/json", `{"name":}`, 0, 400, "", ""},
		{"truncated", "application/json", `{"name":"a",`, 0, 400, "", ""},
		{"array", "application/json", `[1]`, 0, 400, "", ""},
		{"trailing data", "application/json", `{} {}`, 0, 400, "", ""},
		{"wrong type string", "application/json", `{"name":1}`, 0, 422, "name", "must be a string"},
		{"wrong type number", "application/json", `{"jobs":"x"}`, 0, 422, "jobs", "must be a whole number"},
		{"unknown field", "application/json", `{"nope":1}`, 0, 422, "nope", "is not a known field"},
		{"too large", "application/json", `{"name":"` + strings.Repeat("x", 100) + `"}`, 50, 413, "", ""},
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
			if tc.field != "" && (len(pe.Problem.Errors) != 1 || pe.Problem.Errors[0].Field != tc.field || pe.Problem.Errors[0].Message != tc.message) {
				t.Errorf("errors = %v, want %s %q", pe.Problem.Errors, tc.field, tc.message)
			}
		})
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
