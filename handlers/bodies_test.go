package handlers_test

import (
	"bufio"
	"bytes"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"tenantry/config"
	"tenantry/internal/testenv"
)

// This file covers request bodies on bad days, over real listeners: a body
// over server.max_body_bytes is a 413 wherever the limit is crossed, a body
// that arrives too slowly is a 408 (within server.read_timeout, not after
// it), on the JSON API, on the HTML forms and on the admin API.

// rawResponse is an answer read off a raw connection.
type rawResponse struct {
	status  int
	header  http.Header
	body    string
	elapsed time.Duration // from the first byte sent to the whole answer read
}

// sender writes a request body to w until it is done or stop is closed.
type sender func(w io.Writer, stop <-chan struct{})

// exchange sends one request on a connection of its own: head (the request
// line and headers, without the blank line), then the body from send,
// framed as chunks when chunked is set. The answer is read while the body
// is still being sent, as a client must when the server answers early (a
// 413 or 408 comes before the body ends); the sender is stopped once it
// has arrived.
func exchange(t *testing.T, addr, head string, chunked bool, send sender) rawResponse {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// Bounds the test, not the server: every exchange here ends in seconds.
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	if chunked {
		head += "\r\nTransfer-Encoding: chunked"
	}
	start := time.Now()
	if _, err := io.WriteString(conn, head+"\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	stop, sent := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(sent)
		var w io.Writer = conn
		if chunked {
			cw := httputil.NewChunkedWriter(conn)
			defer func() {
				if cw.Close() == nil {
					_, _ = io.WriteString(conn, "\r\n")
				}
			}()
			w = cw
		}
		send(w, stop)
	}()
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("read answer: %v", err)
	}
	b, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		t.Fatalf("read answer body: %v", err)
	}
	elapsed := time.Since(start)
	close(stop)
	_ = conn.Close() // unblocks a sender stuck in Write
	<-sent
	return rawResponse{status: resp.StatusCode, header: resp.Header, body: string(b), elapsed: elapsed}
}

// all sends parts in one go each, stopping early if the server has
// answered or closed the connection.
func all(parts ...string) sender {
	return func(w io.Writer, stop <-chan struct{}) {
		for _, p := range parts {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := io.WriteString(w, p); err != nil {
				return
			}
		}
	}
}

// slowly sends body one byte every interval: a client on a very slow link,
// or one holding a connection open on purpose.
func slowly(body string, interval time.Duration) sender {
	return func(w io.Writer, stop <-chan struct{}) {
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for i := range len(body) {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			if _, err := w.Write([]byte{body[i]}); err != nil {
				return
			}
		}
	}
}

// requestHead is a request line and headers for a body of contentType;
// length < 0 leaves Content-Length out (for a chunked body).
func requestHead(method, path, host, contentType string, length int, hdr ...string) string {
	h := method + " " + path + " HTTP/1.1\r\nHost: " + host + "\r\nContent-Type: " + contentType
	if length >= 0 {
		h += "\r\nContent-Length: " + strconv.Itoa(length)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		h += "\r\n" + hdr[i] + ": " + hdr[i+1]
	}
	return h
}

// pageHeaders are what a browser sends with a form from the page's own
// origin.
func pageHeaders(base string) []string {
	return []string{"Accept", browserAccept, "Origin", base, "Sec-Fetch-Site", "same-origin"}
}

// multipartForm is a multipart body with fields and its Content-Type.
func multipartForm(t *testing.T, fields ...string) (string, string) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for i := 0; i+1 < len(fields); i += 2 {
		if err := mw.WriteField(fields[i], fields[i+1]); err != nil {
			t.Fatal(err)
		}
	}
	if err := mw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.String(), mw.FormDataContentType()
}

// wantRawProblem checks that r is a problem+json answer of status and type
// urn:tenantry:problem:slug.
func wantRawProblem(t *testing.T, r rawResponse, status int, slug string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status = %d, want %d; body %s", r.status, status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("Content-Type = %q, want application/problem+json", ct)
	}
	if want := `"type":"urn:tenantry:problem:` + slug + `"`; !strings.Contains(r.body, want) {
		t.Errorf("body lacks %s: %s", want, r.body)
	}
}

// wantRawPage checks that r is an HTML page of status holding every want.
func wantRawPage(t *testing.T, r rawResponse, status int, want ...string) {
	t.Helper()
	wantPage(t, pageResponse{status: r.status, header: r.header, body: r.body}, status, want...)
}

// apiTotal is how many users the tenant at base holds, as its API says.
func apiTotal(t *testing.T, base string) int {
	t.Helper()
	r := apiDo(t, "GET", base+"/api/users", "", "", nil)
	if r.status != http.StatusOK {
		t.Fatalf("list users: %d %s", r.status, r.body)
	}
	return int(r.json(t)["total"].(float64))
}

const adminToken = "bodies-test-admin-token-0123456789"

// TestBodyTooLarge: a body over the limit is a 413, never a 400, wherever
// the limit is crossed (inside the JSON value, in whitespace after it,
// after a syntax error, inside a form), whether the body is chunked or has
// a Content-Length; as problem+json on the APIs and as a readable page on
// the forms. Nothing is stored, and the other tenant is untouched.
func TestBodyTooLarge(t *testing.T) {
	const limit = 1 << 20 // server.max_body_bytes, the default
	const adminLimit = 64 << 10
	user := `{"name":"Big","email":"big@example.com"}`
	spaces := strings.Repeat(" ", 2<<20)
	for _, driver := range testenv.Drivers {
		t.Run(driver, func(t *testing.T) {
			t.Parallel()
			env := testenv.Start(t, driver, testenv.WithAdmin(adminToken))
			if cfg := env.App.Config.Server.MaxBodyBytes; cfg != limit {
				t.Fatalf("server.max_body_bytes = %d, want the default %d", cfg, limit)
			}
			apiCreate(t, env.URL2, "Other", "other@example.com")
			host1, admin := strings.TrimPrefix(env.URL1, "http://"), strings.TrimPrefix(env.AdminURL, "http://")
			mpBody, mpType := multipartForm(t, "name", strings.Repeat("x", limit), "email", "big@example.com")
			for _, tc := range []struct {
				name      string
				addr      string
				method    string
				path      string
				ctype     string
				body      []string
				chunked   bool
				hdr       []string
				page      bool   // the answer is an HTML page, not problem+json
				wantTitle string // for a page
			}{
				{name: "API, chunked, spaces after the object", addr: host1, method: "POST", path: "/api/users",
					ctype: "application/json", body: []string{user, spaces}, chunked: true},
				{name: "API, Content-Length, spaces after the object", addr: host1, method: "POST", path: "/api/users",
					ctype: "application/json", body: []string{user, spaces}},
				{name: "API, chunked, inside the value", addr: host1, method: "POST", path: "/api/users",
					ctype: "application/json", body: []string{`{"name":"`, strings.Repeat("x", 2<<20), `","email":"a@example.com"}`}, chunked: true},
				{name: "API, chunked, spaces before the object", addr: host1, method: "POST", path: "/api/users",
					ctype: "application/json", body: []string{spaces, user}, chunked: true},
				{name: "API, chunked, after a syntax error", addr: host1, method: "POST", path: "/api/users",
					ctype: "application/json", body: []string{`{"name":}`, spaces}, chunked: true},
				{name: "API, chunked, after a second object", addr: host1, method: "POST", path: "/api/users",
					ctype: "application/json", body: []string{user, `{}`, spaces}, chunked: true},
				{name: "API, chunked, spaces after the object, Idempotency-Key", addr: host1, method: "POST", path: "/api/users",
					ctype: "application/json", body: []string{user, spaces}, chunked: true, hdr: []string{"Idempotency-Key", "big-body-1"}},
				{name: "API PATCH, chunked, spaces after the object", addr: host1, method: "PATCH", path: "/api/users/1",
					ctype: "application/merge-patch+json", body: []string{`{"name":"x"}`, spaces}, chunked: true},
				{name: "form, chunked", addr: host1, method: "POST", path: "/users", ctype: "application/x-www-form-urlencoded",
					body: []string{"name=Big&email=big%40example.com&pad=", strings.Repeat("x", 2<<20)}, chunked: true,
					hdr: pageHeaders(env.URL1), page: true, wantTitle: "Request body too large"},
				{name: "multipart form, chunked", addr: host1, method: "POST", path: "/users", ctype: mpType,
					body: []string{mpBody}, chunked: true, hdr: pageHeaders(env.URL1), page: true, wantTitle: "Request body too large"},
				{name: "multipart form, chunked, after a malformed part", addr: host1, method: "POST", path: "/users",
					ctype: "multipart/form-data; boundary=B", body: []string{"--B\r\nno header end", strings.Repeat("x", 2<<20)},
					chunked: true, hdr: pageHeaders(env.URL1), page: true, wantTitle: "Request body too large"},
				{name: "admin, chunked, spaces after the object", addr: admin, method: "POST", path: "/admin/tenants",
					ctype: "application/json", body: []string{`{"name":"big","hosts":["big.example"]}`, strings.Repeat(" ", 2*adminLimit)},
					chunked: true, hdr: []string{"Authorization", "Bearer " + adminToken}},
				{name: "admin, Content-Length, spaces after the object", addr: admin, method: "POST", path: "/admin/tenants",
					ctype: "application/json", body: []string{`{"name":"big","hosts":["big.example"]}`, strings.Repeat(" ", 2*adminLimit)},
					hdr: []string{"Authorization", "Bearer " + adminToken}},
			} {
				t.Run(tc.name, func(t *testing.T) {
					length := -1
					if !tc.chunked {
						length = len(strings.Join(tc.body, ""))
					}
					r := exchange(t, tc.addr, requestHead(tc.method, tc.path, tc.addr, tc.ctype, length, tc.hdr...), tc.chunked, all(tc.body...))
					if tc.page {
						wantRawPage(t, r, http.StatusRequestEntityTooLarge, "<title>"+tc.wantTitle+" · tenant1</title>")
						return
					}
					wantRawProblem(t, r, http.StatusRequestEntityTooLarge, "body-too-large")
				})
			}
			if n := apiTotal(t, env.URL1); n != 0 {
				t.Errorf("tenant1 holds %d users after refused bodies, want 0", n)
			}
			if n := apiTotal(t, env.URL2); n != 1 {
				t.Errorf("tenant2 holds %d users, want its 1", n)
			}
			if r := apiDo(t, "GET", env.AdminURL+"/admin/tenants/big", "", "", nil, "Authorization", "Bearer "+adminToken); r.status != http.StatusNotFound {
				t.Errorf("GET /admin/tenants/big after its 413s: %d, want 404; %s", r.status, r.body)
			}
			// A body as large as the limit allows, spaces included, is still
			// read and stored.
			pad := strings.Repeat(" ", limit-len(user))
			r := exchange(t, host1, requestHead("POST", "/api/users", host1, "application/json", -1), true, all(user, pad))
			if r.status != http.StatusCreated {
				t.Fatalf("a body of exactly the limit: status %d, want 201; %s", r.status, r.body)
			}
		})
	}
}

// TestBodyTooSlow: a body that arrives one byte every 100 ms, slower than
// server.read_timeout allows, is answered 408 when the read deadline
// passes, and the answer reaches the client: problem+json on the APIs, a
// readable page on the forms, never "malformed JSON" (400) nor a dropped
// connection. Nothing is stored, and the other tenant's requests are
// served meanwhile.
func TestBodyTooSlow(t *testing.T) {
	const (
		readTimeout = time.Second
		interval    = 100 * time.Millisecond
		// slack is how late after the read timeout the answer may come on
		// a busy machine; every body takes longer than that to send, so an
		// answer in time cannot have waited for the body's end.
		slack = 3 * time.Second
		name  = "Slow Sender Who Types One Byte At A Time"
	)
	user := `{"name":"` + name + `","email":"slow@example.com"}`
	form := url.Values{"name": {name}, "email": {"slow@example.com"}}.Encode()
	for _, driver := range testenv.Drivers {
		t.Run(driver, func(t *testing.T) {
			t.Parallel()
			env := testenv.Start(t, driver, testenv.WithAdmin(adminToken), func(c *config.Config) {
				c.Server.ReadTimeout, c.Server.ReadHeaderTimeout = readTimeout, readTimeout
			})
			host1, admin := strings.TrimPrefix(env.URL1, "http://"), strings.TrimPrefix(env.AdminURL, "http://")
			mpBody, mpType := multipartForm(t, "name", name, "email", "slow@example.com")
			type tcase struct {
				name    string
				addr    string
				path    string
				ctype   string
				body    string
				chunked bool
				hdr     []string
				page    bool
			}
			var cases []tcase
			for _, chunked := range []bool{false, true} {
				framing := map[bool]string{false: "Content-Length", true: "chunked"}[chunked]
				cases = append(cases,
					tcase{name: "API, " + framing, addr: host1, path: "/api/users", ctype: "application/json", body: user, chunked: chunked},
					tcase{name: "API with an Idempotency-Key, " + framing, addr: host1, path: "/api/users", ctype: "application/json", body: user,
						chunked: chunked, hdr: []string{"Idempotency-Key", "slow-body-" + framing}},
					tcase{name: "form, " + framing, addr: host1, path: "/users", ctype: "application/x-www-form-urlencoded", body: form,
						chunked: chunked, hdr: pageHeaders(env.URL1), page: true},
					tcase{name: "multipart form, " + framing, addr: host1, path: "/users", ctype: mpType, body: mpBody,
						chunked: chunked, hdr: pageHeaders(env.URL1), page: true},
					tcase{name: "admin, " + framing, addr: admin, path: "/admin/tenants", ctype: "application/json",
						body: `{"name":"slow","hosts":["slow-sender-who-types-one-byte-at-a-time.example"]}`, chunked: chunked, hdr: []string{"Authorization", "Bearer " + adminToken}},
				)
			}
			// The slow requests run side by side, and with a request of the
			// other tenant, which must not wait for them.
			t.Run("slow", func(t *testing.T) {
				for _, tc := range cases {
					t.Run(tc.name, func(t *testing.T) {
						t.Parallel()
						if need := time.Duration(len(tc.body)) * interval; need < readTimeout+slack+time.Second {
							t.Fatalf("the body takes %v to send, too little to outlast the %v read timeout and %v of slack", need, readTimeout, slack)
						}
						length := -1
						if !tc.chunked {
							length = len(tc.body)
						}
						r := exchange(t, tc.addr, requestHead("POST", tc.path, tc.addr, tc.ctype, length, tc.hdr...), tc.chunked, slowly(tc.body, interval))
						if tc.page {
							wantRawPage(t, r, http.StatusRequestTimeout, "<title>Request timeout · tenant1</title>", "arrived too slowly")
						} else {
							wantRawProblem(t, r, http.StatusRequestTimeout, "request-timeout")
						}
						// The answer comes when the read deadline passes, not
						// when the client gives up or the body would have ended.
						// (The deadline runs from the accept, a little before
						// the first byte is sent.)
						if r.elapsed < readTimeout*9/10 || r.elapsed > readTimeout+slack {
							t.Errorf("answered after %v, want soon after the %v read timeout", r.elapsed, readTimeout)
						}
					})
				}
				t.Run("other tenant meanwhile", func(t *testing.T) {
					t.Parallel()
					apiCreate(t, env.URL2, "Quick", "quick@example.com")
				})
			})
			if n := apiTotal(t, env.URL1); n != 0 {
				t.Errorf("tenant1 holds %d users after 408s, want 0", n)
			}
			if n := apiTotal(t, env.URL2); n != 1 {
				t.Errorf("tenant2 holds %d users, want 1", n)
			}
			if r := apiDo(t, "GET", env.AdminURL+"/admin/tenants/slow", "", "", nil, "Authorization", "Bearer "+adminToken); r.status != http.StatusNotFound {
				t.Errorf("GET /admin/tenants/slow after its 408s: %d, want 404; %s", r.status, r.body)
			}
			// The same body sent at once is taken.
			r := exchange(t, host1, requestHead("POST", "/api/users", host1, "application/json", len(user)), false, all(user))
			if r.status != http.StatusCreated {
				t.Fatalf("the same body at once: %d, want 201; %s", r.status, r.body)
			}
		})
	}
}
