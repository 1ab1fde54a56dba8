package app_test

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	_ "github.com/glebarez/go-sqlite" // the "sqlite" driver, for another process's connection

	"tenantry/config"
	"tenantry/internal/testenv"
)

// faultEnv runs the whole service on a private PostgreSQL cluster (never
// the shared server: these tests stop and freeze it), with the admin API,
// logging into a buffer the test reads. requestTimeout is
// server.request_timeout.
func faultEnv(t *testing.T, requestTimeout time.Duration) (*testenv.Env, *testenv.Cluster, *testenv.Buffer) {
	t.Helper()
	cluster := testenv.StartCluster(t)
	buf := &testenv.Buffer{}
	log := slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("service log:\n%s", buf.String())
		}
	})
	env := testenv.StartWithLog(t, "postgres", log, testenv.WithDatabase(cluster.Database()), testenv.WithAdmin(faultToken),
		func(c *config.Config) { c.Server.RequestTimeout = requestTimeout })
	return env, cluster, buf
}

const faultToken = "fault-test-token"

// call is one request of the fault tests and what a bad day must answer.
type call struct {
	name   string
	method string
	url    string
	body   string
	html   bool // a page, asked for by a browser
	admin  bool
}

func (c call) do(t *testing.T, timeout time.Duration) (*http.Response, string, time.Duration) {
	t.Helper()
	req, err := http.NewRequest(c.method, c.url, strings.NewReader(c.body))
	if err != nil {
		t.Fatal(err)
	}
	if c.body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.html {
		req.Header.Set("Accept", "text/html")
	}
	if c.admin {
		req.Header.Set("Authorization", "Bearer "+faultToken)
	}
	start := time.Now()
	resp, err := (&http.Client{Timeout: timeout}).Do(req)
	if err != nil {
		t.Fatalf("%s: no answer within %v: %v", c.name, timeout, err)
	}
	b, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	return resp, string(b), time.Since(start)
}

// calls are a request of every sort: the tenant API reading and writing,
// a page, the admin API and the readiness check.
func calls(env *testenv.Env) []call {
	return []call{
		{name: "list users", method: "GET", url: env.URL1 + "/api/users"},
		{name: "show user", method: "GET", url: env.URL1 + "/api/users/1"},
		{name: "create user", method: "POST", url: env.URL1 + "/api/users", body: `{"name":"Bo","email":"bo@example.com"}`},
		{name: "patch user", method: "PATCH", url: env.URL1 + "/api/users/1", body: `{"name":"Al"}`},
		{name: "delete user", method: "DELETE", url: env.URL2 + "/api/users/1"},
		{name: "users page", method: "GET", url: env.URL1 + "/users", html: true},
		{name: "admin list tenants", method: "GET", url: env.AdminURL + "/admin/tenants", admin: true},
		{name: "admin show tenant", method: "GET", url: env.AdminURL + "/admin/tenants/tenant1", admin: true},
		{name: "readyz", method: "GET", url: env.URL1 + "/readyz"},
	}
}

// want503 checks a bad day's answer: 503 with Retry-After, as
// problem+json for programs and as an HTML page for browsers.
func want503(t *testing.T, c call, resp *http.Response, body string) {
	t.Helper()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("%s: status %d, want 503: %s", c.name, resp.StatusCode, body)
	}
	if resp.Header.Get("Retry-After") == "" {
		t.Errorf("%s: no Retry-After", c.name)
	}
	ct := resp.Header.Get("Content-Type")
	switch {
	case c.html && !strings.HasPrefix(ct, "text/html"):
		t.Errorf("%s: Content-Type %q, want an HTML page", c.name, ct)
	case !c.html && ct != "application/problem+json":
		t.Errorf("%s: Content-Type %q, want application/problem+json", c.name, ct)
	}
	for _, leak := range []string{"SQLSTATE", "dial tcp", "connection refused", "127.0.0.1:"} {
		if strings.Contains(body, leak) {
			t.Errorf("%s: the answer shows %q: %s", c.name, leak, body)
		}
	}
}

// createUser makes user 1 of tenant1 and checks the service is healthy.
func createUser(t *testing.T, env *testenv.Env) {
	t.Helper()
	resp, err := http.Post(env.URL1+"/api/users", "application/json", strings.NewReader(`{"name":"Ada","email":"ada@example.com"}`))
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST /api/users = %d before the fault, want 201", resp.StatusCode)
	}
}

// waitOK polls GET /api/users until it answers 200, within within.
func waitOK(t *testing.T, env *testenv.Env, within time.Duration) time.Duration {
	t.Helper()
	return testenv.Eventually(t, within, func() bool {
		resp, err := (&http.Client{Timeout: time.Second}).Get(env.URL1 + "/api/users")
		if err != nil {
			return false
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, "GET /api/users answers 200 again")
}

// TestDatabaseDown: with PostgreSQL stopped, every API call, page, admin
// call and readiness check answers 503 with Retry-After within 2s; the log
// has one line for the outage, not one per request; once the database is
// back, requests succeed again within 5s.
func TestDatabaseDown(t *testing.T) {
	env, cluster, log := faultEnv(t, 10*time.Second)
	createUser(t, env)
	mark := len(log.String())

	if err := cluster.Stop(); err != nil {
		t.Fatal(err)
	}
	const rounds = 5
	for range rounds {
		for _, c := range calls(env) {
			resp, body, took := c.do(t, 5*time.Second)
			want503(t, c, resp, body)
			if took > 2*time.Second {
				t.Errorf("%s: answered after %v, want within 2s", c.name, took)
			}
		}
	}
	during := log.String()[mark:]
	if testing.Verbose() {
		t.Logf("log during the outage:\n%s", during)
	}
	if n := strings.Count(during, `msg="database unavailable"`); n != 1 {
		t.Errorf("%d \"database unavailable\" lines for %d failed requests, want 1", n, rounds*len(calls(env)))
	}
	for _, perRequest := range []string{`msg="request failed"`, `msg="admin request failed"`, `msg="SQL failed"`, `msg="not ready"`} {
		if strings.Contains(during, perRequest) {
			t.Errorf("a %s line during the outage: every request would log one", perRequest)
		}
	}
	if n := strings.Count(during, "level=ERROR"); n > 1 {
		t.Errorf("%d ERROR lines during the outage, want only the one that announces it:\n%s", n, during)
	}

	if err := cluster.Start(); err != nil {
		t.Fatal(err)
	}
	took := waitOK(t, env, 5*time.Second)
	t.Logf("answering again %v after the database came back", took)
	testenv.Eventually(t, 5*time.Second, func() bool {
		return strings.Contains(log.String()[mark:], `msg="database available again"`)
	}, "the log says the database is back")
	// What was acknowledged before the outage is still there.
	resp, body, _ := call{name: "show user", method: "GET", url: env.URL1 + "/api/users/1"}.do(t, 5*time.Second)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "ada@example.com") {
		t.Errorf("user 1 after the outage: %d %s", resp.StatusCode, body)
	}
}

// TestDatabaseStalled: with PostgreSQL frozen (SIGSTOP of the postmaster
// and every backend: connections stay open, nothing answers), requests
// answer 503 once server.request_timeout has passed instead of hanging
// for the whole stall, /readyz within 2s, and the service recovers within
// 5s of the database resuming.
func TestDatabaseStalled(t *testing.T) {
	const requestTimeout = 1500 * time.Millisecond
	env, cluster, _ := faultEnv(t, requestTimeout)
	createUser(t, env)

	if err := cluster.Pause(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cluster.Resume() })
	for _, c := range calls(env) {
		resp, body, took := c.do(t, 10*time.Second)
		want503(t, c, resp, body)
		limit := requestTimeout + time.Second
		if c.name == "readyz" {
			limit = 2 * time.Second
		}
		if took > limit {
			t.Errorf("%s: answered after %v, want within %v", c.name, took, limit)
		}
	}

	if err := cluster.Resume(); err != nil {
		t.Fatal(err)
	}
	took := waitOK(t, env, 5*time.Second)
	t.Logf("answering again %v after the database resumed", took)
}

// TestDatabaseRestartedUnderWrites: PostgreSQL restarted while clients
// write. Every request is answered 201 or 503 (with Retry-After), never
// 500; every acknowledged user is still there afterwards; writes succeed
// again within 5s of the restart.
func TestDatabaseRestartedUnderWrites(t *testing.T) {
	env, cluster, _ := faultEnv(t, 5*time.Second)
	type result struct {
		status     int
		retryAfter bool
		email      string
	}
	stop := make(chan struct{})
	results := make(chan result, 100000)
	const writers = 4
	done := make(chan struct{}, writers)
	for w := range writers {
		go func() {
			defer func() { done <- struct{}{} }()
			client := &http.Client{Timeout: 10 * time.Second}
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				email := fmt.Sprintf("w%d-%d@example.com", w, i)
				resp, err := client.Post(env.URL1+"/api/users", "application/json",
					strings.NewReader(fmt.Sprintf(`{"name":"W","email":%q}`, email)))
				if err != nil {
					results <- result{status: -1, email: email}
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
				results <- result{status: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After") != "", email: email}
			}
		}()
	}
	// Let writes flow, restart under them, and keep writing after.
	testenv.Eventually(t, 10*time.Second, func() bool { return len(results) >= 50 }, "writes under way")
	if err := cluster.Restart(); err != nil {
		t.Fatal(err)
	}
	restarted := time.Now()
	waitOK(t, env, 5*time.Second)
	testenv.Eventually(t, 10*time.Second, func() bool { return len(results) >= 200 }, "writes after the restart")
	close(stop)
	for range writers {
		<-done
	}
	close(results)

	acked := map[string]bool{}
	counts := map[int]int{}
	for r := range results {
		counts[r.status]++
		switch r.status {
		case http.StatusCreated:
			acked[r.email] = true
		case http.StatusServiceUnavailable:
			if !r.retryAfter {
				t.Errorf("503 without Retry-After for %s", r.email)
			}
		default:
			t.Errorf("write of %s answered %d, want 201 or 503", r.email, r.status)
		}
	}
	t.Logf("answers: %v; service writing again %v after the restart began", counts, time.Since(restarted))
	if counts[http.StatusCreated] == 0 {
		t.Fatal("no write succeeded")
	}

	// Every acknowledged write survived, counted from the API's listing.
	stored := map[string]bool{}
	for offset := 0; ; offset += 500 {
		var page struct {
			Users []struct{ Email string } `json:"users"`
		}
		getJSON(t, fmt.Sprintf("%s/api/users?limit=500&offset=%d", env.URL1, offset), &page)
		for _, u := range page.Users {
			stored[u.Email] = true
		}
		if len(page.Users) < 500 {
			break
		}
	}
	for email := range acked {
		if !stored[email] {
			t.Errorf("acknowledged write %s is lost", email)
		}
	}
}

// TestSQLiteLockedByAnotherWriter: another process holds SQLite's write
// lock. A write waits database.lock_timeout (SQLite's busy_timeout) and
// then answers 503 with Retry-After, not 500 after the request's whole
// deadline; reads behind it wait at most that long for the one
// connection, and never answer 500; once the lock is released writes
// succeed again.
func TestSQLiteLockedByAnotherWriter(t *testing.T) {
	const lockTimeout = time.Second
	buf := &testenv.Buffer{}
	log := slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	env := testenv.StartWithLog(t, "sqlite", log, func(c *config.Config) {
		c.Server.RequestTimeout = 5 * time.Second
		c.Database.LockTimeout = lockTimeout
	})
	createUser(t, env)

	// Another process's connection takes the write lock and keeps it.
	other, err := sql.Open("sqlite", env.App.Config.Database.DSN)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = other.Close() })
	conn, err := other.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(context.Background(), "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	released := false
	release := func() {
		if !released {
			_, _ = conn.ExecContext(context.Background(), "ROLLBACK")
			_ = conn.Close()
			released = true
		}
	}
	t.Cleanup(release)

	post := call{name: "create user", method: "POST", url: env.URL1 + "/api/users", body: `{"name":"Bo","email":"bo@example.com"}`}
	list := call{name: "list users", method: "GET", url: env.URL1 + "/api/users"}
	type answer struct {
		c    call
		resp *http.Response
		body string
		took time.Duration
	}
	answers := make(chan answer, 8)
	for _, c := range []call{post, list, list, post, list} {
		go func() {
			resp, body, took := c.do(t, 10*time.Second)
			answers <- answer{c, resp, body, took}
		}()
	}
	for range 5 {
		a := <-answers
		switch {
		case a.c.method == "POST":
			want503(t, a.c, a.resp, a.body)
		case a.resp.StatusCode != http.StatusOK && a.resp.StatusCode != http.StatusServiceUnavailable:
			t.Errorf("%s behind a locked writer: %d, want 200 or 503: %s", a.c.name, a.resp.StatusCode, a.body)
		}
		// Two writes queue for the one connection, each waiting out
		// lock_timeout: the second answers within two of them.
		if a.took > 2*lockTimeout+time.Second {
			t.Errorf("%s answered after %v, want within %v", a.c.name, a.took, 2*lockTimeout+time.Second)
		}
	}
	// The wait is announced once, as the database's state, not per request.
	if n := strings.Count(buf.String(), "level=ERROR"); n > 1 {
		t.Errorf("%d ERROR lines while locked, want at most the one announcing it:\n%s", n, buf.String())
	}

	release()
	resp, body, _ := post.do(t, 5*time.Second)
	if resp.StatusCode != http.StatusCreated {
		t.Errorf("POST after the lock was released: %d %s, want 201", resp.StatusCode, body)
	}
}
