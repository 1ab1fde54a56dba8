package problem_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
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
