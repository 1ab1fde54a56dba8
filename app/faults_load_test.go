package app_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"tenantry/config"
	"tenantry/internal/testenv"
)

// The fault tests under load (issue 9, item 8): the whole service on a
// private PostgreSQL cluster, a load of keyed writes and reads on two
// tenants, one fault injected under it. After the fault each test checks
// the three promises of docs/RELIABILITY.md:
//
//   - nothing acknowledged is lost: every 201 the clients saw is a row in
//     its tenant's schema, counted with SQL straight on the cluster, and
//     no such row is in the other tenant's schema;
//   - only documented answers: 2xx, 503 with Retry-After and
//     problem+json, 409 for a key whose first request is still in flight;
//     never a 500, never a request that outlives its client timeout;
//   - recovery: within 5s of the fault ending, both tenants answer again.

// recoveryLimit is how soon after a fault ends requests must succeed.
const recoveryLimit = 5 * time.Second

// loadTimeout is every load request's client timeout: far above
// request_timeout, so that reaching it means a request hung.
const loadTimeout = 10 * time.Second

// faultsPostgres starts a private cluster and the service on it (in this
// process) with request_timeout rt.
func faultsPostgres(t *testing.T, rt time.Duration) (*testenv.Cluster, [2]string) {
	t.Helper()
	cluster := testenv.StartCluster(t)
	env := testenv.Start(t, "postgres", testenv.WithDatabase(cluster.Database()),
		func(c *config.Config) { c.Server.RequestTimeout = rt })
	return cluster, [2]string{env.URL1, env.URL2}
}

// load is the shared load driver: writers POST users with unique emails,
// each with its own Idempotency-Key that a writer keeps using until the
// write is acknowledged, and readers list users, on both tenants.
type load struct {
	urls   [2]string
	client *http.Client
	stop   chan struct{}
	wg     sync.WaitGroup

	mu       sync.Mutex
	acked    [2]map[string]uint64 // per tenant: email → id acknowledged with 201
	statuses map[string]int       // "POST 201", "GET 503", "error"… → count
	bad      []string             // answers no document allows
	slowest  time.Duration
	// refusedOK, once set, lets a connection be refused (the process
	// under test is shutting down and has closed its listeners).
	refusedOK bool
}

// startLoad runs writers and readers against urls until stop.
func startLoad(t *testing.T, urls [2]string, writers, readers int) *load {
	t.Helper()
	l := &load{
		urls:     urls,
		client:   &http.Client{Timeout: loadTimeout},
		stop:     make(chan struct{}),
		acked:    [2]map[string]uint64{{}, {}},
		statuses: map[string]int{},
	}
	run := testenv.Unique("run")
	for w := range writers {
		l.wg.Add(1)
		go func() { defer l.wg.Done(); l.write(w%2, fmt.Sprintf("%s-w%d", run, w)) }()
	}
	for r := range readers {
		l.wg.Add(1)
		go func() { defer l.wg.Done(); l.read(r % 2) }()
	}
	t.Cleanup(l.halt)
	return l
}

// halt stops the load and waits for every request in flight to end.
func (l *load) halt() {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	l.wg.Wait()
}

func (l *load) stopped() bool {
	select {
	case <-l.stop:
		return true
	default:
		return false
	}
}

// pause waits d between retries, or less when the load stops. It paces
// a client; it synchronises nothing.
func (l *load) pause(d time.Duration) {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-l.stop:
	case <-timer.C:
	}
}

func (l *load) write(tenant int, prefix string) {
	for i := 0; !l.stopped(); i++ {
		email := fmt.Sprintf("%s-%d@example.com", prefix, i)
		body := fmt.Sprintf(`{"name":"Load","email":%q}`, email)
		key := randomKey()
		// The same key until acknowledged: a retry must never make a
		// second user, and an earlier attempt that did commit must
		// answer the retry.
		for !l.stopped() {
			req, _ := http.NewRequest(http.MethodPost, l.urls[tenant]+"/api/users", strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Idempotency-Key", key)
			status, id := l.do(req)
			if status == http.StatusCreated {
				l.mu.Lock()
				l.acked[tenant][email] = id
				l.mu.Unlock()
				break
			}
			l.pause(20 * time.Millisecond)
		}
	}
}

func (l *load) read(tenant int) {
	for !l.stopped() {
		req, _ := http.NewRequest(http.MethodGet, l.urls[tenant]+"/api/users?limit=5", nil)
		if status, _ := l.do(req); status != http.StatusOK {
			l.pause(20 * time.Millisecond)
		}
	}
}

// do sends req, records its answer and judges it. It returns the status
// (0 when none came) and, for a 201, the id of the user made.
func (l *load) do(req *http.Request) (int, uint64) {
	start := time.Now()
	resp, err := l.client.Do(req)
	took := time.Since(start)
	what := req.Method + " " + req.URL.Path
	l.mu.Lock()
	defer l.mu.Unlock()
	l.slowest = max(l.slowest, took)
	if err != nil {
		switch {
		case l.refusedOK && errors.Is(err, syscall.ECONNREFUSED):
			l.statuses["refused"]++
		default:
			l.statuses["error"]++
			l.bad = append(l.bad, fmt.Sprintf("%s: no answer after %v: %v", what, took.Round(time.Millisecond), err))
		}
		return 0, 0
	}
	b, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	l.statuses[fmt.Sprintf("%s %d", req.Method, resp.StatusCode)]++
	ct := resp.Header.Get("Content-Type")
	switch {
	case req.Method == http.MethodPost && resp.StatusCode == http.StatusCreated,
		req.Method == http.MethodGet && resp.StatusCode == http.StatusOK:
		var u struct {
			ID uint64 `json:"id"`
		}
		if req.Method == http.MethodPost {
			if err := json.Unmarshal(b, &u); err != nil || u.ID == 0 {
				l.bad = append(l.bad, fmt.Sprintf("%s: 201 without an id: %s", what, b))
			}
		}
		return resp.StatusCode, u.ID
	case resp.StatusCode == http.StatusServiceUnavailable:
		if resp.Header.Get("Retry-After") == "" || ct != "application/problem+json" {
			l.bad = append(l.bad, fmt.Sprintf("%s: 503 with Retry-After %q and Content-Type %q: %s",
				what, resp.Header.Get("Retry-After"), ct, b))
		}
	case req.Method == http.MethodPost && resp.StatusCode == http.StatusConflict &&
		strings.Contains(string(b), "idempotency-key-in-flight"):
		// Documented: the retry overtook the end of its first attempt.
	default:
		l.bad = append(l.bad, fmt.Sprintf("%s: undocumented answer %d: %s", what, resp.StatusCode, b))
	}
	return resp.StatusCode, 0
}

func randomKey() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// waitAcked waits until the load has n more acknowledged writes than it
// had when called, within 15s.
func (l *load) waitAcked(t *testing.T, n int, what string) {
	t.Helper()
	base := l.ackedCount()
	testenv.Eventually(t, 15*time.Second, func() bool { return l.ackedCount() >= base+n }, what)
}

func (l *load) ackedCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.acked[0]) + len(l.acked[1])
}

// waitRecovered polls both tenants until each answers a read and a keyed
// write with 2xx, and fails t unless that happens within recoveryLimit.
func waitRecovered(t *testing.T, urls [2]string) time.Duration {
	t.Helper()
	client := &http.Client{Timeout: time.Second}
	ok := func(req *http.Request) bool {
		resp, err := client.Do(req)
		if err != nil {
			return false
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		return resp.StatusCode/100 == 2
	}
	keys := [2]string{randomKey(), randomKey()}
	emails := [2]string{testenv.Unique("recovered") + "@example.com", testenv.Unique("recovered") + "@example.com"}
	return testenv.Eventually(t, recoveryLimit, func() bool {
		for i, u := range urls {
			get, _ := http.NewRequest(http.MethodGet, u+"/api/users?limit=1", nil)
			post, _ := http.NewRequest(http.MethodPost, u+"/api/users",
				strings.NewReader(fmt.Sprintf(`{"name":"R","email":%q}`, emails[i])))
			post.Header.Set("Content-Type", "application/json")
			post.Header.Set("Idempotency-Key", keys[i])
			if !ok(get) || !ok(post) {
				return false
			}
		}
		return true
	}, "both tenants reading and writing again")
}

// check halts the load and checks its answers and, with SQL on the
// cluster, that every acknowledged write is in its own tenant's schema
// exactly once and not in the other's.
func (l *load) check(t *testing.T, cluster *testenv.Cluster) {
	t.Helper()
	l.halt()
	l.mu.Lock()
	defer l.mu.Unlock()
	keys := make([]string, 0, len(l.statuses))
	for k := range l.statuses {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var summary []string
	for _, k := range keys {
		summary = append(summary, fmt.Sprintf("%s ×%d", k, l.statuses[k]))
	}
	t.Logf("answers: %s; acknowledged writes %d+%d; slowest %v",
		strings.Join(summary, ", "), len(l.acked[0]), len(l.acked[1]), l.slowest.Round(time.Millisecond))
	for i, b := range l.bad {
		if i == 10 {
			t.Errorf("… and %d more undocumented answers", len(l.bad)-10)
			break
		}
		t.Error(b)
	}
	if len(l.acked[0]) == 0 || len(l.acked[1]) == 0 {
		t.Errorf("acknowledged writes %d and %d: the load never wrote to both tenants", len(l.acked[0]), len(l.acked[1]))
	}

	db, err := sql.Open("pgx", cluster.DSN())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	schemas := [2]string{"tenant1", "tenant2"}
	var stored [2]map[string][]uint64
	for i, s := range schemas {
		stored[i] = map[string][]uint64{}
		rows, err := db.QueryContext(ctx, "SELECT email, id FROM "+s+".users")
		if err != nil {
			t.Fatalf("count users of %s: %v", s, err)
		}
		for rows.Next() {
			var email string
			var id uint64
			if err := rows.Scan(&email, &id); err != nil {
				t.Fatal(err)
			}
			stored[i][email] = append(stored[i][email], id)
		}
		if err := rows.Close(); err != nil {
			t.Fatal(err)
		}
	}
	lost := 0
	for i := range schemas {
		for email, id := range l.acked[i] {
			switch ids := stored[i][email]; {
			case len(ids) == 0:
				lost++
				t.Errorf("acknowledged write %s (id %d) is not in %s", email, id, schemas[i])
			case len(ids) > 1 || ids[0] != id:
				t.Errorf("%s in %s: ids %v, want exactly the acknowledged %d", email, schemas[i], ids, id)
			}
			if ids := stored[1-i][email]; len(ids) > 0 {
				t.Errorf("%s, written to %s, is in %s too: %v", email, schemas[i], schemas[1-i], ids)
			}
		}
	}
	if lost > 0 {
		t.Errorf("%d acknowledged writes lost", lost)
	}
}

// TestFaultRestartUnderLoad: PostgreSQL restarted (fast shutdown, every
// session terminated) under keyed writes and reads on two tenants.
func TestFaultRestartUnderLoad(t *testing.T) {
	cluster, urls := faultsPostgres(t, 2*time.Second)
	l := startLoad(t, urls, 6, 2)
	l.waitAcked(t, 40, "writes under way")
	if err := cluster.Restart(); err != nil {
		t.Fatal(err)
	}
	t.Logf("recovered %v after the restart", waitRecovered(t, urls))
	l.waitAcked(t, 40, "the load writing again")
	l.check(t, cluster)
}

// TestFaultTerminateBackends: every backend of tenantry's database is
// killed with pg_terminate_backend from another superuser session, three
// times, under load.
func TestFaultTerminateBackends(t *testing.T) {
	cluster, urls := faultsPostgres(t, 2*time.Second)
	l := startLoad(t, urls, 6, 2)
	l.waitAcked(t, 40, "writes under way")
	admin, err := sql.Open("pgx", cluster.DSN())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	killed := 0
	for round := range 3 {
		var n int
		err := admin.QueryRow(`SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
			WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'`).Scan(&n)
		if err != nil {
			t.Fatalf("terminate backends: %v", err)
		}
		killed += n
		if round < 2 {
			l.waitAcked(t, 10, "writes between terminations")
		}
	}
	if killed == 0 {
		t.Fatal("no backend was terminated: the fault was not injected")
	}
	t.Logf("%d backends terminated; recovered %v after the last", killed, waitRecovered(t, urls))
	l.waitAcked(t, 40, "the load writing again")
	l.check(t, cluster)
}

// TestFaultStallUnderLoad: the postmaster and every backend SIGSTOPped
// for longer than request_timeout under load. Requests answer 503 once
// request_timeout has passed, none hangs, and after SIGCONT the service
// recovers; a write whose COMMIT was held by the stall is either
// acknowledged on a retry with its key or not at all, never twice.
func TestFaultStallUnderLoad(t *testing.T) {
	const rt = 2 * time.Second
	cluster, urls := faultsPostgres(t, rt)
	l := startLoad(t, urls, 6, 2)
	l.waitAcked(t, 40, "writes under way")
	if err := cluster.Pause(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cluster.Resume() })
	// Hold the stall past request_timeout: until every tenant has
	// answered a fresh request 503, which takes request_timeout.
	stalled := time.Now()
	for _, u := range urls {
		resp, err := (&http.Client{Timeout: loadTimeout}).Get(u + "/api/users?limit=1")
		if err != nil {
			t.Fatalf("GET during the stall: %v", err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable {
			t.Errorf("GET during the stall: %d, want 503", resp.StatusCode)
		}
	}
	held := time.Since(stalled)
	if err := cluster.Resume(); err != nil {
		t.Fatal(err)
	}
	t.Logf("stalled %v; recovered %v after SIGCONT", held.Round(time.Millisecond), waitRecovered(t, urls))
	l.waitAcked(t, 40, "the load writing again")
	l.check(t, cluster)
	if limit := rt + 2*time.Second; l.slowest > limit {
		t.Errorf("slowest request %v during a stall, want at most request_timeout+2s = %v", l.slowest, limit)
	}
}

// TestFaultSIGTERMUnderLoad: the tenantry binary gets SIGTERM under load.
// Requests in flight complete (only new connections are refused once the
// listeners close), every acknowledged write is in the database, and the
// process exits 0 within server.shutdown_timeout.
func TestFaultSIGTERMUnderLoad(t *testing.T) {
	const shutdownTimeout = 5 * time.Second
	bin := testenv.Binary(t)
	cluster := testenv.StartCluster(t)
	a1, a2 := testenv.FreeAddr(t), testenv.FreeAddr(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.yaml")
	yaml := fmt.Sprintf("server:\n  request_timeout: 2s\n  shutdown_timeout: %s\nadmin:\n  listen: \"\"\n"+
		"tenants:\n  - {name: tenant1, schema: tenant1, hosts: [\"%s\"]}\n  - {name: tenant2, schema: tenant2, hosts: [\"%s\"]}\n",
		shutdownTimeout, a1, a2)
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	log := &testenv.Buffer{}
	cmd := exec.Command(bin, "serve", "--config", cfg, "--listen", a1+","+a2,
		"--db-driver", "postgres", "--db-dsn", cluster.DSN())
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		if t.Failed() {
			t.Logf("tenantry log:\n%s", log.String())
		}
	})
	urls := [2]string{"http://" + a1, "http://" + a2}
	testenv.Eventually(t, 30*time.Second, func() bool {
		code, _ := testenv.TenantStatus(a1, a1, time.Second)
		code2, _ := testenv.TenantStatus(a2, a2, time.Second)
		return code == http.StatusOK && code2 == http.StatusOK
	}, "tenantry serving both tenants")

	l := startLoad(t, urls, 6, 2)
	l.waitAcked(t, 40, "writes under way")
	l.mu.Lock()
	l.refusedOK = true
	l.mu.Unlock()
	signalled := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		took := time.Since(signalled)
		if err != nil {
			t.Errorf("exit after SIGTERM: %v, want 0", err)
		}
		if took > shutdownTimeout {
			t.Errorf("exited %v after SIGTERM, want within shutdown_timeout %v", took, shutdownTimeout)
		}
		t.Logf("exited %v after SIGTERM", took.Round(time.Millisecond))
	case <-time.After(shutdownTimeout + 5*time.Second):
		t.Fatalf("still running %v after SIGTERM", shutdownTimeout+5*time.Second)
	}
	l.check(t, cluster)
}
