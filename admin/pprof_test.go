package admin_test

import (
	"bytes"
	"compress/gzip"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"tenantry/admin"
	"tenantry/internal/testenv"
)

// TestPprof checks the profiling routes on a real admin listener: nothing
// without the token, real profiles with it, and nothing on a tenant
// listener, token or not.
func TestPprof(t *testing.T) {
	f := start(t, "sqlite")
	paths := []string{
		"/debug/pprof/", "/debug/pprof/cmdline", "/debug/pprof/profile?seconds=1", "/debug/pprof/symbol",
		"/debug/pprof/trace?seconds=0.1", "/debug/pprof/allocs", "/debug/pprof/block", "/debug/pprof/goroutine",
		"/debug/pprof/heap?debug=1", "/debug/pprof/mutex", "/debug/pprof/threadcreate",
	}

	t.Run("without the token", func(t *testing.T) {
		for _, p := range paths {
			for _, auth := range []string{"none", "Bearer wrong-token"} {
				checkProblem(t, f.do(t, request{method: http.MethodGet, path: p, auth: auth}), http.StatusUnauthorized, "unauthorized", "")
			}
		}
		checkProblem(t, f.do(t, request{method: http.MethodPost, path: "/debug/pprof/symbol", body: "0x1", contentType: "text/plain", auth: "none"}),
			http.StatusUnauthorized, "unauthorized", "")
	})

	t.Run("with the token", func(t *testing.T) {
		for _, tc := range []struct {
			path        string
			contentType string
			contains    string // in the body; "" for a binary profile
		}{
			{"/debug/pprof/", "text/html; charset=utf-8", "threadcreate"},
			{"/debug/pprof/heap?debug=1", "text/plain; charset=utf-8", "heap profile"},
			{"/debug/pprof/goroutine?debug=1", "text/plain; charset=utf-8", "goroutine profile"},
			{"/debug/pprof/allocs?debug=1", "text/plain; charset=utf-8", "heap profile"},
			{"/debug/pprof/threadcreate?debug=1", "text/plain; charset=utf-8", "threadcreate profile"},
			{"/debug/pprof/block?debug=1", "text/plain; charset=utf-8", "--- contention"},
			{"/debug/pprof/mutex?debug=1", "text/plain; charset=utf-8", "--- mutex"},
			{"/debug/pprof/cmdline", "text/plain; charset=utf-8", os.Args[0]},
			{"/debug/pprof/symbol", "text/plain; charset=utf-8", "num_symbols"},
			{"/debug/pprof/heap", "application/octet-stream", ""},
			{"/debug/pprof/profile?seconds=1", "application/octet-stream", ""},
			{"/debug/pprof/trace?seconds=0.1", "application/octet-stream", ""},
		} {
			resp := f.do(t, request{method: http.MethodGet, path: tc.path})
			if resp.status != http.StatusOK || resp.header.Get("Content-Type") != tc.contentType {
				t.Errorf("GET %s = %d, %q; want 200, %q: %.200s", tc.path, resp.status, resp.header.Get("Content-Type"), tc.contentType, resp.body)
				continue
			}
			switch {
			case tc.contains != "":
				if !strings.Contains(string(resp.body), tc.contains) {
					t.Errorf("GET %s: body does not contain %q: %.300s", tc.path, tc.contains, resp.body)
				}
			case strings.HasPrefix(tc.path, "/debug/pprof/trace"):
				if len(resp.body) == 0 {
					t.Errorf("GET %s: empty trace", tc.path)
				}
			default:
				checkGzipProfile(t, tc.path, resp.body)
			}
		}
		resp := f.do(t, request{method: http.MethodPost, path: "/debug/pprof/symbol", body: "0x1", contentType: "text/plain"})
		if resp.status != http.StatusOK || !strings.Contains(string(resp.body), "num_symbols") {
			t.Errorf("POST /debug/pprof/symbol = %d: %s; want 200 and num_symbols", resp.status, resp.body)
		}
		// Only the listed profiles: an unknown name is the API's 404.
		checkProblem(t, f.do(t, request{method: http.MethodGet, path: "/debug/pprof/nothing"}), http.StatusNotFound, "not-found", "")
	})

	t.Run("not on a tenant listener", func(t *testing.T) {
		for _, p := range []string{"/debug/pprof/", "/debug/pprof/heap?debug=1", "/debug/pprof/cmdline"} {
			for _, auth := range []string{"", "Bearer " + token} {
				req, err := http.NewRequest(http.MethodGet, f.env.URL1+p, nil)
				if err != nil {
					t.Fatal(err)
				}
				if auth != "" {
					req.Header.Set("Authorization", auth)
				}
				resp, err := client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				_ = resp.Body.Close()
				if resp.StatusCode != http.StatusNotFound || bytes.Contains(body, []byte("profile")) {
					t.Errorf("tenant listener GET %s (auth %q) = %d: %.200s; want 404", p, auth, resp.StatusCode, body)
				}
			}
		}
	})
}

// TestPprofOutlastsWriteTimeout serves the admin API as app.Serve does, from
// an http.Server with a WriteTimeout, and takes a CPU profile longer than
// that timeout: pprof pushes the write deadline back through Gin's writer,
// so the profile arrives whole rather than cut at the timeout.
func TestPprofOutlastsWriteTimeout(t *testing.T) {
	srv, err := admin.NewServer(admin.Deps{Log: testenv.Logger(t), Token: token})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: time.Second, WriteTimeout: 300 * time.Millisecond}
	go func() { _ = hs.Serve(ln) }()
	t.Cleanup(func() { _ = hs.Close() })

	f := &fixture{url: "http://" + ln.Addr().String()}
	resp := f.do(t, request{method: http.MethodGet, path: "/debug/pprof/profile?seconds=1"})
	if resp.status != http.StatusOK {
		t.Fatalf("status = %d, want 200: %s", resp.status, resp.body)
	}
	checkGzipProfile(t, "/debug/pprof/profile?seconds=1", resp.body)
}

// checkGzipProfile fails t unless body is a whole, non-empty gzip stream,
// as pprof's protobuf profiles are.
func checkGzipProfile(t *testing.T, path string, body []byte) {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(body))
	if err != nil {
		t.Errorf("GET %s: not gzip (%d bytes): %v", path, len(body), err)
		return
	}
	raw, err := io.ReadAll(zr)
	if err != nil || len(raw) == 0 {
		t.Errorf("GET %s: gzip stream of %d bytes cut or empty: %d bytes, %v", path, len(body), len(raw), err)
	}
}
