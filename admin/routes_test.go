package admin

import (
	"io"
	"log/slog"
	"testing"
)

// TestRoutesLeavesOutOnlyPprof holds Routes, which the contract tests
// compare with openapi-admin.yaml, to its promise: every route the engine
// serves is in it except the profiling routes, so the exclusion cannot
// hide an API route.
func TestRoutesLeavesOutOnlyPprof(t *testing.T) {
	s, err := NewServer(Deps{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Token: "t", OpenAPI: []byte("openapi: 3.1.0\n")})
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]bool{}
	for _, r := range s.Routes() {
		if isPprofRoute(r) {
			t.Errorf("Routes lists %s %s, a profiling route", r.Method, r.Path)
		}
		listed[r.Method+" "+r.Path] = true
	}
	var pprof []string
	for _, r := range s.engine.Routes() {
		if !listed[r.Method+" "+r.Path] {
			if !isPprofRoute(r) {
				t.Errorf("Routes leaves out %s %s, which is not a profiling route", r.Method, r.Path)
			}
			pprof = append(pprof, r.Method+" "+r.Path)
		}
	}
	// Index, cmdline, profile, symbol (GET and POST), trace and the six
	// named profiles.
	if want := 6 + len(pprofProfiles); len(pprof) != want {
		t.Errorf("profiling routes = %v, want %d of them", pprof, want)
	}
}
