package handlers_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"tenantry/config"
	"tenantry/internal/testenv"
	"tenantry/logging"
	"tenantry/requestid"
	"tenantry/tenants"
)

// jsonLog is a service log read back line by line: the process's logger
// (package logging around slog's JSON handler, as main builds it with
// log.format json) at debug level, writing to a Buffer.
type jsonLog struct{ buf testenv.Buffer }

func (l *jsonLog) logger() *slog.Logger {
	return slog.New(logging.NewHandler(slog.NewJSONHandler(&l.buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
}

// lines returns the records logged so far whose msg is msg and, unless
// id is "", whose request_id is id. It fails t for a line that is not a
// JSON object or that holds a key twice.
func (l *jsonLog) lines(t *testing.T, msg, id string) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(l.buf.String()))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if dup := duplicateKey(line); dup != "" {
			t.Errorf("key %q twice in %s", dup, line)
		}
		var rec map[string]any
		if err := json.Unmarshal(line, &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if rec["msg"] == msg && (id == "" || rec["request_id"] == id) {
			out = append(out, rec)
		}
	}
	return out
}

// duplicateKey returns a top-level key that line, a JSON object, holds
// more than once, or "".
func duplicateKey(line []byte) string {
	dec := json.NewDecoder(bytes.NewReader(line))
	if _, err := dec.Token(); err != nil { // {
		return ""
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return ""
		}
		key, _ := tok.(string)
		if seen[key] {
			return key
		}
		seen[key] = true
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return ""
		}
	}
	return ""
}

// request is one request of the access-log tables and what its access
// line must say.
type request struct {
	name         string
	method, path string
	body         string
	header       []string // pairs
	status       int
	// keepID says whether the X-Request-ID sent is answered and logged as
	// it is; otherwise a fresh valid id replaces it (or none was sent).
	keepID  bool
	tenant  string
	route   string
	traceID string // "" for no trace_id key at all
	// queries says whether the request runs statements (db_ms and
	// statements above 0) or none (both 0).
	queries bool
}

// send sends rq to base (real HTTP) and returns the response's request
// id and body, after checking its status and that the id was kept or
// replaced as rq says.
func (rq request) send(t *testing.T, base string) (string, string) {
	t.Helper()
	req, err := http.NewRequest(rq.method, base+rq.path, strings.NewReader(rq.body))
	if err != nil {
		t.Fatal(err)
	}
	var sent string
	for i := 0; i+1 < len(rq.header); i += 2 {
		req.Header.Set(rq.header[i], rq.header[i+1])
		if http.CanonicalHeaderKey(rq.header[i]) == "X-Request-Id" {
			sent = rq.header[i+1]
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != rq.status {
		t.Fatalf("%s %s = %d, want %d: %s", rq.method, rq.path, resp.StatusCode, rq.status, body)
	}
	id := resp.Header.Get("X-Request-ID")
	switch {
	case !requestid.Valid(id):
		t.Fatalf("X-Request-ID = %q: not a valid id", id)
	case rq.keepID && id != sent:
		t.Errorf("X-Request-ID = %q, want the one sent, %q", id, sent)
	case !rq.keepID && id == sent:
		t.Errorf("X-Request-ID = %q: the invalid id sent was kept", id)
	}
	return id, string(body)
}

// checkLine waits for the access line of the request id (written once the
// answer has gone out) and checks that it is the only one and says what
// rq says.
func (rq request) checkLine(t *testing.T, log *jsonLog, server, id, host string) {
	t.Helper()
	testenv.Eventually(t, 5*time.Second, func() bool { return len(log.lines(t, "request", id)) > 0 }, "access line of ", id)
	lines := log.lines(t, "request", id)
	if len(lines) != 1 {
		t.Fatalf("%d access lines for %s, want 1: %v", len(lines), id, lines)
	}
	got := lines[0]
	want := map[string]any{"level": "INFO", "server": server, "request_id": id, "tenant": rq.tenant, "host": host,
		"method": rq.method, "route": rq.route, "status": float64(rq.status)}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v (%v)", k, got[k], v, got)
		}
	}
	for _, k := range []string{"bytes", "duration_ms", "db_ms", "statements"} {
		if _, ok := got[k].(float64); !ok {
			t.Errorf("%s = %v, want a number (%v)", k, got[k], got)
		}
	}
	if tr, ok := got["trace_id"]; rq.traceID == "" && ok || rq.traceID != "" && tr != rq.traceID {
		t.Errorf("trace_id = %v (present: %v), want %q", tr, ok, rq.traceID)
	}
	if ran := got["statements"].(float64) > 0 && got["db_ms"].(float64) > 0; ran != rq.queries {
		t.Errorf("statements = %v, db_ms = %v; want both above 0: %v", got["statements"], got["db_ms"], rq.queries)
	}
	if got["statements"].(float64) == 0 && got["db_ms"].(float64) != 0 {
		t.Errorf("db_ms = %v without a statement", got["db_ms"])
	}
}

const traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

// TestAccessLog sends requests to a running service, over real HTTP, on
// each database: every request gets exactly one access line with its
// request id, tenant, route pattern, status and database use; the
// X-Request-ID a client sends is kept when valid and replaced otherwise,
// and whichever it is comes back in the header, in problem bodies and on
// error pages.
func TestAccessLog(t *testing.T) {
	for _, driver := range testenv.Drivers {
		t.Run(driver, func(t *testing.T) {
			t.Parallel()
			var log jsonLog
			env := testenv.StartWithLog(t, driver, log.logger())
			json := []string{"Content-Type", "application/json"}
			for _, rq := range []request{
				{name: "users list, id kept", method: "GET", path: "/api/users", header: []string{"X-Request-ID", "client-id.1"},
					status: 200, keepID: true, tenant: "tenant1", route: "/api/users", queries: true},
				{name: "user created", method: "POST", path: "/api/users", header: json,
					body:   `{"name":"Access Log","email":"` + testenv.Unique("access") + `@example.com"}`,
					status: 201, tenant: "tenant1", route: "/api/users", queries: true},
				{name: "unknown user, pattern not path", method: "GET", path: "/api/users/999999",
					header: []string{"X-Request-ID", "0b6f4c1e-8d3a-4f0e-9a7b-2c5d6e7f8a9b"},
					status: 404, keepID: true, tenant: "tenant1", route: "/api/users/:id", queries: true},
				{name: "invalid input", method: "POST", path: "/api/users", header: json, body: `{"name":""}`,
					status: 422, tenant: "tenant1", route: "/api/users"},
				{name: "healthz: no tenant, no statement", method: "GET", path: "/healthz",
					status: 200, tenant: "", route: "/healthz"},
				{name: "no route", method: "GET", path: "/api/nothing-here",
					status: 404, tenant: "tenant1", route: "unmatched"},
				{name: "id too long", method: "GET", path: "/api/tenant", header: []string{"X-Request-ID", strings.Repeat("a", 65)},
					status: 200, tenant: "tenant1", route: "/api/tenant"},
				{name: "id with a space", method: "GET", path: "/api/tenant", header: []string{"X-Request-ID", "a b"},
					status: 200, tenant: "tenant1", route: "/api/tenant"},
				{name: "id with a quote", method: "GET", path: "/api/tenant", header: []string{"X-Request-ID", `a"level=ERROR`},
					status: 200, tenant: "tenant1", route: "/api/tenant"},
				{name: "traceparent", method: "GET", path: "/api/tenant", header: []string{"traceparent", traceparent},
					status: 200, tenant: "tenant1", route: "/api/tenant", traceID: "4bf92f3577b34da6a3ce929d0e0e4736"},
				{name: "traceparent not valid", method: "GET", path: "/api/tenant", header: []string{"traceparent", "00-" + strings.Repeat("0", 32) + "-00f067aa0ba902b7-01"},
					status: 200, tenant: "tenant1", route: "/api/tenant"},
				{name: "error page", method: "GET", path: "/users/999999/edit", header: []string{"Accept", "text/html", "X-Request-ID", "page-id"},
					status: 404, keepID: true, tenant: "tenant1", route: "/users/:id/edit", queries: true},
			} {
				t.Run(rq.name, func(t *testing.T) {
					id, body := rq.send(t, env.URL1)
					rq.checkLine(t, &log, "tenants", id, env.Addr1)
					checkShown(t, rq.status, body, id)
				})
			}
		})
	}
}

// checkShown fails t unless an error's body shows the request's id: a
// problem's request_id, or the error page's small print.
func checkShown(t *testing.T, status int, body, id string) {
	t.Helper()
	switch {
	case status < 400:
	case strings.HasPrefix(body, "{"):
		var pr struct {
			RequestID string `json:"request_id"`
		}
		if err := json.Unmarshal([]byte(body), &pr); err != nil || pr.RequestID != id {
			t.Errorf("problem request_id = %q (%v), want %q: %s", pr.RequestID, err, id, body)
		}
	default:
		if want := "Request ID: <code>" + id + "</code>"; !strings.Contains(body, want) {
			t.Errorf("error page lacks %q:\n%s", want, body)
		}
	}
}

// TestAdminAccessLog: the admin server writes the same access line, with
// server "admin", and shows the id in its problems.
func TestAdminAccessLog(t *testing.T) {
	var log jsonLog
	const token = "access-log-token"
	env := testenv.StartWithLog(t, "sqlite", log.logger(), testenv.WithAdmin(token))
	host := strings.TrimPrefix(env.AdminURL, "http://")
	auth := []string{"Authorization", "Bearer " + token}
	for _, rq := range []request{
		{name: "tenants list", method: "GET", path: "/admin/tenants", header: append([]string{"X-Request-ID", "op-1"}, auth...),
			status: 200, keepID: true, route: "/admin/tenants", queries: true},
		{name: "one tenant", method: "GET", path: "/admin/tenants/tenant2", header: append([]string{"traceparent", traceparent}, auth...),
			status: 200, route: "/admin/tenants/:name", traceID: "4bf92f3577b34da6a3ce929d0e0e4736", queries: true},
		{name: "no token", method: "GET", path: "/admin/tenants", header: []string{"X-Request-ID", "op-2"},
			status: 401, keepID: true, route: "/admin/tenants"},
		{name: "no route", method: "GET", path: "/admin/nothing", header: auth,
			status: 404, route: "unmatched"},
	} {
		t.Run(rq.name, func(t *testing.T) {
			id, body := rq.send(t, env.AdminURL)
			rq.checkLine(t, &log, "admin", id, host)
			checkShown(t, rq.status, body, id)
		})
	}
}

// TestAccessLinesOff: with log.access false no access line is written.
// The request is served in process, through the service's own router, so
// that when ServeHTTP returns any line it would write has been written.
func TestAccessLinesOff(t *testing.T) {
	for _, tc := range []struct {
		name  string
		lines bool
	}{{"on", true}, {"off", false}} {
		t.Run(tc.name, func(t *testing.T) {
			var log jsonLog
			env := testenv.StartWithLog(t, "sqlite", log.logger(), func(c *config.Config) { c.Log.Access = tc.lines })
			req := httptest.NewRequest(http.MethodGet, "/api/users", nil)
			req.Host = env.Addr1
			req.Header.Set("X-Request-ID", "off-or-on")
			rec := httptest.NewRecorder()
			env.App.Handler.ServeHTTP(rec, req)
			if rec.Code != http.StatusOK || rec.Header().Get("X-Request-ID") != "off-or-on" {
				t.Fatalf("GET /api/users = %d, X-Request-ID %q", rec.Code, rec.Header().Get("X-Request-ID"))
			}
			if got := len(log.lines(t, "request", "off-or-on")); got != map[bool]int{true: 1, false: 0}[tc.lines] {
				t.Errorf("log.access %v: %d access lines", tc.lines, got)
			}
		})
	}
}

// TestSlowStatementLog: with a tiny log.slow_statement every statement of
// a request is logged at WARN with the request's id, and each statement
// run for the tenant (once resolved; the resolver's catalog lookups come
// before) with the tenant too.
func TestSlowStatementLog(t *testing.T) {
	for _, driver := range testenv.Drivers {
		t.Run(driver, func(t *testing.T) {
			t.Parallel()
			var log jsonLog
			env := testenv.StartWithLog(t, driver, log.logger(), func(c *config.Config) { c.Log.SlowStatement = time.Nanosecond })
			rq := request{method: "GET", path: "/api/users", header: []string{"X-Request-ID", "slow-1"}, status: 200, keepID: true}
			rq.send(t, env.URL2)
			users := 0
			for _, l := range log.lines(t, "slow SQL", "slow-1") {
				if l["level"] != "WARN" {
					t.Errorf("slow SQL line at %v: %v", l["level"], l)
				}
				if strings.Contains(l["sql"].(string), "tenant2_users") || strings.Contains(l["sql"].(string), `"tenant2"."users"`) {
					users++
					if l["tenant"] != "tenant2" {
						t.Errorf("slow SQL line of the tenant's table: tenant = %v, want tenant2: %v", l["tenant"], l)
					}
				}
			}
			if users == 0 {
				t.Fatalf("no slow SQL line with request_id slow-1 for the tenant's users:\n%s", log.buf.String())
			}
		})
	}
}

// TestRefusedRequestIsTheTenants: a request refused because its tenant is
// suspended is still that tenant's, in its access line and in its stats
// (an operator looking at a suspended tenant sees its 403s), while no
// handler runs as the tenant.
func TestRefusedRequestIsTheTenants(t *testing.T) {
	var log jsonLog
	env := testenv.StartWithLog(t, "sqlite", log.logger())
	ctx := context.Background()
	if _, err := env.App.Catalog.SetStatus(ctx, "tenant1", tenants.StatusSuspended); err != nil {
		t.Fatal(err)
	}
	rq := request{method: "GET", path: "/api/users", status: http.StatusForbidden, tenant: "tenant1", route: "/api/users"}
	testenv.Eventually(t, 5*time.Second, func() bool {
		resp, err := http.Get(env.URL1 + "/api/tenant")
		if err != nil {
			return false
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusForbidden
	}, "tenant1 suspended")
	id, _ := rq.send(t, env.URL1)
	rq.checkLine(t, &log, "tenants", id, env.Addr1)
	w := env.App.Stats.Tenant("tenant1", time.Time{})[0]
	if w.ClientErrors == 0 {
		t.Errorf("tenant1's 1-minute window = %+v, want its 403s counted", w)
	}
}
