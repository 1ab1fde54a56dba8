package handlers_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gorm.io/gorm"

	"tenantry/app"
	"tenantry/config"
	"tenantry/database"
	"tenantry/handlers"
	"tenantry/internal/testenv"
	"tenantry/migrations"
	"tenantry/tenants"
	"tenantry/web"
)

// These tests send keyed requests through the real router to real
// databases and count what was stored straight from the database.

// keyedRows counts rows of a tenant's table, bypassing the scope.
func keyedRows(t *testing.T, db *gorm.DB, layout tenants.Layout, schema, table string) int64 {
	t.Helper()
	var n int64
	q := "SELECT count(*) FROM " + migrations.Quote(layout.Table(schema, table))
	if err := db.Raw(q).Scan(&n).Error; err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

// envRows counts rows of a tenant's table in a testenv service.
func envRows(t *testing.T, env *testenv.Env, schema, table string) int64 {
	t.Helper()
	return keyedRows(t, env.App.DB, env.App.Catalog.Layout(), schema, table)
}

// keyed sends a JSON request with an Idempotency-Key (none when key is "").
func keyed(t *testing.T, method, u, key, body string) apiResponse {
	t.Helper()
	var hdr []string
	if key != "" {
		hdr = []string{"Idempotency-Key", key}
	}
	var r io.Reader
	ctype := ""
	if body != "" {
		r, ctype = strings.NewReader(body), "application/json"
	}
	return apiDo(t, method, u, "", ctype, r, hdr...)
}

// wantReplay checks that got is first again, marked as a replay.
func wantReplay(t *testing.T, got, first apiResponse) {
	t.Helper()
	if got.status != first.status || string(got.body) != string(first.body) ||
		got.header.Get("Location") != first.header.Get("Location") ||
		got.header.Get("Content-Type") != first.header.Get("Content-Type") {
		t.Errorf("retry: %d %q Location %q; want the first answer %d %q Location %q",
			got.status, got.body, got.header.Get("Location"), first.status, first.body, first.header.Get("Location"))
	}
	if got.header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("retry lacks Idempotent-Replayed: true (headers %v)", got.header)
	}
	if first.header.Get("Idempotent-Replayed") != "" {
		t.Errorf("the first answer is marked as a replay")
	}
}

func wantProblemType(t *testing.T, r apiResponse, status int, slug string) {
	t.Helper()
	if p := wantProblem(t, r, status); p["type"] != "urn:tenantry:problem:"+slug {
		t.Errorf("problem type %v, want %s; body %s", p["type"], slug, r.body)
	}
}

// TestIdempotencyKeyAPI: a keyed POST, PUT, PATCH or DELETE retried with
// the same key and body gets the first answer again (2xx and 4xx alike)
// and changes nothing more; the same key with another request is a 422;
// a malformed key is a 400; keys are per tenant; without a key nothing
// changes.
func TestIdempotencyKeyAPI(t *testing.T) {
	for _, driver := range testenv.Drivers {
		t.Run(driver, func(t *testing.T) {
			t.Parallel()
			env := testenv.Start(t, driver)
			users := env.URL1 + "/api/users"
			ada := `{"name":"Ada","email":"ada@example.com"}`

			// Created once, answered twice alike.
			first := keyed(t, "POST", users, "create-ada", ada)
			if first.status != http.StatusCreated || !strings.HasPrefix(first.header.Get("Location"), "/api/users/") {
				t.Fatalf("first POST: %d %s", first.status, first.body)
			}
			wantReplay(t, keyed(t, "POST", users, "create-ada", ada), first)
			if n := envRows(t, env, "tenant1", "users"); n != 1 {
				t.Errorf("tenant1 holds %d users after a retried POST, want 1", n)
			}
			self := env.URL1 + first.header.Get("Location")

			// The same key with another body, method or path is refused.
			wantProblemType(t, keyed(t, "POST", users, "create-ada", `{"name":"Eve","email":"eve@example.com"}`), 422, "idempotency-key-reused")
			wantProblemType(t, keyed(t, "PUT", self, "create-ada", ada), 422, "idempotency-key-reused")
			if n := envRows(t, env, "tenant1", "users"); n != 1 {
				t.Errorf("tenant1 holds %d users after reused keys, want 1", n)
			}

			// Client errors are stored and replayed: a 422 ...
			invalid := keyed(t, "POST", users, "invalid", `{"name":"","email":"x"}`)
			wantProblemType(t, invalid, 422, "validation")
			wantReplay(t, keyed(t, "POST", users, "invalid", `{"name":"","email":"x"}`), invalid)
			// ... a 409, replayed even once the email is free again ...
			taken := keyed(t, "POST", users, "taken", ada)
			wantProblemType(t, taken, 409, "email-taken")
			// ... and the other methods' answers.
			patch := keyed(t, "PATCH", self, "rename", `{"name":"Ada King"}`)
			if patch.status != 200 {
				t.Fatalf("PATCH: %d %s", patch.status, patch.body)
			}
			wantReplay(t, keyed(t, "PATCH", self, "rename", `{"name":"Ada King"}`), patch)
			put := keyed(t, "PUT", self, "replace", `{"name":"Ada L","email":"ada.l@example.com"}`)
			if put.status != 200 {
				t.Fatalf("PUT: %d %s", put.status, put.body)
			}
			wantReplay(t, keyed(t, "PUT", self, "replace", `{"name":"Ada L","email":"ada.l@example.com"}`), put)
			wantReplay(t, keyed(t, "POST", users, "taken", ada), taken)

			del := keyed(t, "DELETE", self, "delete-ada", "")
			if del.status != http.StatusNoContent {
				t.Fatalf("DELETE: %d %s", del.status, del.body)
			}
			wantReplay(t, keyed(t, "DELETE", self, "delete-ada", ""), del)
			if r := keyed(t, "DELETE", self, "", ""); r.status != http.StatusNotFound {
				t.Errorf("unkeyed DELETE after the keyed one: %d, want 404", r.status)
			}

			// Malformed keys: too long, not ASCII, a control character, two
			// values.
			for _, key := range []string{strings.Repeat("k", 256), "clé", "a\tb"} {
				wantProblemType(t, keyed(t, "POST", users, key, ada), 400, "invalid-idempotency-key")
			}
			req, _ := http.NewRequest("POST", users, strings.NewReader(`{"name":"Two","email":"two@example.com"}`))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Add("Idempotency-Key", "a")
			req.Header.Add("Idempotency-Key", "b")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			wantProblemType(t, apiResponse{status: resp.StatusCode, header: resp.Header, body: b}, 400, "invalid-idempotency-key")

			// Keys are per tenant: tenant2's create-ada is its own.
			other := keyed(t, "POST", env.URL2+"/api/users", "create-ada", `{"name":"Grace","email":"grace@example.com"}`)
			if other.status != http.StatusCreated || other.header.Get("Idempotent-Replayed") != "" {
				t.Fatalf("tenant2, same key: %d %s (replayed %q); want its own 201", other.status, other.body, other.header.Get("Idempotent-Replayed"))
			}
			wantReplay(t, keyed(t, "POST", env.URL2+"/api/users", "create-ada", `{"name":"Grace","email":"grace@example.com"}`), other)
			if a, b := envRows(t, env, "tenant1", "idempotency_keys"), envRows(t, env, "tenant2", "idempotency_keys"); a != 6 || b != 1 {
				t.Errorf("stored keys: tenant1 %d, tenant2 %d; want 6 and 1", a, b)
			}
			if n := envRows(t, env, "tenant2", "users"); n != 1 {
				t.Errorf("tenant2 holds %d users, want 1", n)
			}

			// Without a key, a retry is a second request, and nothing is stored.
			bob := `{"name":"Bob","email":"bob@example.com"}`
			if r := keyed(t, "POST", users, "", bob); r.status != http.StatusCreated || r.header.Get("Idempotent-Replayed") != "" {
				t.Fatalf("unkeyed POST: %d %s", r.status, r.body)
			}
			wantProblemType(t, keyed(t, "POST", users, "", bob), 409, "email-taken")
			if n := envRows(t, env, "tenant1", "idempotency_keys"); n != 6 {
				t.Errorf("unkeyed requests stored keys: %d, want still 6", n)
			}
		})
	}
}

// holdInFlight starts a keyed request on a raw connection and stops
// before its body: once the server answers "100 Continue", the handler
// is reading the body, so the key is in flight. finish sends the body
// and returns the answer.
func holdInFlight(t *testing.T, addr, method, path, key, body string) (finish func() *http.Response) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	fmt.Fprintf(conn, "%s %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nIdempotency-Key: %s\r\n"+
		"Content-Length: %d\r\nExpect: 100-continue\r\n\r\n", method, path, addr, key, len(body))
	br := bufio.NewReader(conn)
	line, err := br.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "HTTP/1.1 100 ") {
		t.Fatalf("want 100 Continue, got %q, %v", line, err)
	}
	if blank, err := br.ReadString('\n'); err != nil || blank != "\r\n" {
		t.Fatalf("after 100 Continue: %q, %v", blank, err)
	}
	return func() *http.Response {
		t.Helper()
		if _, err := io.WriteString(conn, body); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
}

// TestIdempotencyKeyInFlight: while a keyed request runs, the same key is
// answered 409 with Retry-After at once; once it is done, the key replays
// its answer.
func TestIdempotencyKeyInFlight(t *testing.T) {
	for _, driver := range testenv.Drivers {
		t.Run(driver, func(t *testing.T) {
			t.Parallel()
			env := testenv.Start(t, driver)
			for _, tc := range []struct{ method, path, body string }{
				{"POST", "/api/users", `{"name":"Ada","email":"ada@example.com"}`},
				// A body, so that the server asks for it (100 Continue).
				{"DELETE", "/api/users/1", "x"},
			} {
				key := "in-flight-" + tc.method
				finish := holdInFlight(t, env.Addr1, tc.method, tc.path, key, tc.body)
				busy := keyed(t, tc.method, env.URL1+tc.path, key, tc.body)
				wantProblemType(t, busy, 409, "idempotency-key-in-flight")
				if ra := busy.header.Get("Retry-After"); ra != "1" {
					t.Errorf("%s in flight: Retry-After %q, want 1", tc.method, ra)
				}
				resp := finish()
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				first := apiResponse{status: resp.StatusCode, header: resp.Header, body: body}
				if first.status >= 300 {
					t.Fatalf("%s held in flight: %d %s", tc.method, first.status, first.body)
				}
				wantReplay(t, keyed(t, tc.method, env.URL1+tc.path, key, tc.body), first)
			}
			if n := envRows(t, env, "tenant1", "users"); n != 0 {
				t.Errorf("tenant1 holds %d users after a create and a delete, want 0", n)
			}
		})
	}
}

// TestIdempotencyKeyConcurrent: many copies of one keyed request sent at
// once, to one process and to two processes on the same database, make
// exactly one change; every copy gets the first answer or a 409.
func TestIdempotencyKeyConcurrent(t *testing.T) {
	for _, driver := range testenv.Drivers {
		t.Run(driver, func(t *testing.T) {
			t.Parallel()
			env := testenv.Start(t, driver)
			bases := []string{env.URL1}
			if driver == "postgres" {
				// A second process on the same database: only the
				// database's primary key keeps the two apart.
				cfg := env.App.Config
				a, err := app.Open(context.Background(), cfg, testenv.Logger(t))
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = a.Close() })
				srv := httptest.NewServer(a.Handler)
				t.Cleanup(srv.Close)
				// Its tenant1 answers on env.Addr1's hosts; send them.
				bases = append(bases, srv.URL)
			}
			const n = 16
			body := `{"name":"Ada","email":"ada@example.com"}`
			answers := make([]apiResponse, n)
			var wg sync.WaitGroup
			start := make(chan struct{})
			for i := range n {
				wg.Go(func() {
					<-start
					req, _ := http.NewRequest("POST", bases[i%len(bases)]+"/api/users", strings.NewReader(body))
					req.Host = env.Addr1
					req.Header.Set("Content-Type", "application/json")
					req.Header.Set("Idempotency-Key", "same")
					resp, err := http.DefaultClient.Do(req)
					if err != nil {
						t.Error(err)
						return
					}
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					answers[i] = apiResponse{status: resp.StatusCode, header: resp.Header, body: b}
				})
			}
			close(start)
			wg.Wait()
			var created, replayed, busy int
			var createdBody string
			for _, a := range answers {
				switch {
				case a.status == http.StatusCreated && a.header.Get("Idempotent-Replayed") == "":
					created++
					createdBody = string(a.body)
				case a.status == http.StatusCreated:
					replayed++
				case a.status == http.StatusConflict && strings.Contains(string(a.body), "idempotency-key-in-flight"):
					busy++
				default:
					t.Errorf("answer %d %s, want 201 or 409 in flight", a.status, a.body)
				}
			}
			for _, a := range answers {
				if a.status == http.StatusCreated && string(a.body) != createdBody {
					t.Errorf("a replay differs from the first answer: %s vs %s", a.body, createdBody)
				}
			}
			t.Logf("%d created, %d replayed, %d in flight", created, replayed, busy)
			if created != 1 {
				t.Errorf("%d requests created the user, want exactly 1", created)
			}
			if u, k := envRows(t, env, "tenant1", "users"), envRows(t, env, "tenant1", "idempotency_keys"); u != 1 || k != 1 {
				t.Errorf("tenant1 holds %d users and %d keys, want 1 and 1", u, k)
			}
		})
	}
}

// cutOnce wraps h so that the first answer to a request carrying key is
// never delivered: when the handler writes it (after the commit), the
// connection is closed instead, as when a network fails between the
// server's COMMIT and the client reading the answer.
func cutOnce(h http.Handler, key string) http.Handler {
	var done atomic.Bool
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Idempotency-Key") == key && done.CompareAndSwap(false, true) {
			w = &cutWriter{ResponseWriter: w}
		}
		h.ServeHTTP(w, r)
	})
}

type cutWriter struct {
	http.ResponseWriter
	cut bool
}

func (w *cutWriter) WriteHeader(int) {
	if w.cut {
		return
	}
	w.cut = true
	if conn, _, err := http.NewResponseController(w.ResponseWriter).Hijack(); err == nil {
		_ = conn.Close()
	}
}

func (w *cutWriter) Write([]byte) (int, error) {
	w.WriteHeader(0)
	return 0, http.ErrHijacked
}

// untilNotBusy sends a request again, as a client following Retry-After
// would, while it is answered 409 because its key is in flight; it gives
// up after 10 seconds.
func untilNotBusy(t *testing.T, send func() (apiResponse, error)) (apiResponse, error) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r, err := send()
		if err != nil || r.status != http.StatusConflict || !strings.Contains(string(r.body), "idempotency-key-in-flight") ||
			time.Now().After(deadline) {
			return r, err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestIdempotencyKeyCutAtCommit: the first request commits but its
// answer never reaches the client; the client's retry gets the stored
// 201 and no second user. Without a key the same retry is a 409, which
// is issue 9's complaint.
func TestIdempotencyKeyCutAtCommit(t *testing.T) {
	for _, driver := range testenv.Drivers {
		t.Run(driver, func(t *testing.T) {
			t.Parallel()
			env := testenv.Start(t, driver)
			srv := httptest.NewServer(cutOnce(env.App.Handler, "cut"))
			t.Cleanup(srv.Close)
			body := `{"name":"Ada","email":"ada@example.com"}`
			post := func(key string) (apiResponse, error) {
				req, _ := http.NewRequest("POST", srv.URL+"/api/users", strings.NewReader(body))
				req.Host = env.Addr1
				req.Header.Set("Content-Type", "application/json")
				if key != "" {
					req.Header.Set("Idempotency-Key", key)
				}
				// A fresh connection each time, so the cut one is not reused.
				client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
				resp, err := client.Do(req)
				if err != nil {
					return apiResponse{}, err
				}
				defer resp.Body.Close()
				b, err := io.ReadAll(resp.Body)
				return apiResponse{status: resp.StatusCode, header: resp.Header, body: b}, err
			}
			if r, err := post("cut"); err == nil {
				t.Fatalf("the cut request got an answer: %d %s", r.status, r.body)
			}
			if u, k := envRows(t, env, "tenant1", "users"), envRows(t, env, "tenant1", "idempotency_keys"); u != 1 || k != 1 {
				t.Fatalf("after the cut: %d users, %d keys; want the committed 1 and 1", u, k)
			}
			// The first may not have let go of its key yet: a client
			// follows Retry-After.
			retry, err := untilNotBusy(t, func() (apiResponse, error) { return post("cut") })
			if err != nil {
				t.Fatal(err)
			}
			if retry.status != http.StatusCreated || retry.header.Get("Idempotent-Replayed") != "true" {
				t.Fatalf("retry: %d %s (replayed %q), want the stored 201", retry.status, retry.body, retry.header.Get("Idempotent-Replayed"))
			}
			got := apiDo(t, "GET", env.URL1+retry.header.Get("Location"), "", "", nil)
			if got.status != 200 || string(got.body) != string(retry.body) {
				t.Errorf("GET %s = %d %s; want the user the retry returned, %s", retry.header.Get("Location"), got.status, got.body, retry.body)
			}
			if n := envRows(t, env, "tenant1", "users"); n != 1 {
				t.Errorf("%d users after the retry, want 1", n)
			}
			unkeyed, err := post("")
			if err != nil || unkeyed.status != http.StatusConflict {
				t.Errorf("an unkeyed retry: %d %s %v; want the 409 a key avoids", unkeyed.status, unkeyed.body, err)
			}
		})
	}
}

// TestIdempotencyKeyCommitFails: when the COMMIT itself fails (here a
// deferred check that fails only at COMMIT), the change and the answer
// are both rolled back, the client gets a 503 with Retry-After, and its
// retry with the same key runs again.
//
// PostgreSQL only: the one way to make SQLite's COMMIT fail from SQL, a
// deferred foreign key, leaves SQLite's transaction open after the failed
// COMMIT (its documented behaviour), and database/sql then hands that
// connection on as it is. tenantry's tables have no deferred constraint,
// so that state cannot arise outside this test.
func TestIdempotencyKeyCommitFails(t *testing.T) {
	env := testenv.Start(t, "postgres")
	users := migrations.Quote(env.App.Catalog.Layout().Table("tenant1", "users"))
	exec := func(q string) {
		t.Helper()
		if err := env.App.DB.Exec(q).Error; err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	exec(`CREATE FUNCTION tenant1.fail_at_commit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'fails at commit'; END $$`)
	exec(`CREATE CONSTRAINT TRIGGER fail_at_commit AFTER INSERT ON ` + users +
		` DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION tenant1.fail_at_commit()`)

	body := `{"name":"Ada","email":"ada@example.com"}`
	failed := keyed(t, "POST", env.URL1+"/api/users", "commit", body)
	wantProblem(t, failed, http.StatusServiceUnavailable)
	if failed.header.Get("Retry-After") == "" {
		t.Errorf("503 without Retry-After")
	}
	if u, k := envRows(t, env, "tenant1", "users"), envRows(t, env, "tenant1", "idempotency_keys"); u != 0 || k != 0 {
		t.Errorf("after the failed commit: %d users, %d keys; want none", u, k)
	}

	exec(`DROP TRIGGER fail_at_commit ON ` + users)
	retry := keyed(t, "POST", env.URL1+"/api/users", "commit", body)
	if retry.status != http.StatusCreated || retry.header.Get("Idempotent-Replayed") != "" {
		t.Fatalf("retry: %d %s (replayed %q); want a fresh 201", retry.status, retry.body, retry.header.Get("Idempotent-Replayed"))
	}
	if n := envRows(t, env, "tenant1", "users"); n != 1 {
		t.Errorf("%d users after the retry, want 1", n)
	}
}

// TestIdempotencyKeyClientGone: a client sends a keyed request and
// closes the connection without reading the answer; whether the server
// committed or rolled back, the retry gets a 201 and the user exists once.
func TestIdempotencyKeyClientGone(t *testing.T) {
	for _, driver := range testenv.Drivers {
		t.Run(driver, func(t *testing.T) {
			t.Parallel()
			env := testenv.Start(t, driver)
			body := `{"name":"Ada","email":"ada@example.com"}`
			conn, err := net.Dial("tcp", env.Addr1)
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(conn, "POST /api/users HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nIdempotency-Key: gone\r\n"+
				"Content-Length: %d\r\n\r\n%s", env.Addr1, len(body), body)
			conn.Close()

			// The retry may meet the first still in flight; it is told to
			// come back, and does, until it has its answer.
			retry, _ := untilNotBusy(t, func() (apiResponse, error) {
				return keyed(t, "POST", env.URL1+"/api/users", "gone", body), nil
			})
			if retry.status != http.StatusCreated {
				t.Fatalf("retry: %d %s, want 201", retry.status, retry.body)
			}
			if n := envRows(t, env, "tenant1", "users"); n != 1 {
				t.Errorf("%d users, want 1", n)
			}
		})
	}
}

// stack is the tenant service built by hand, as app.Open builds it, so
// that a test can set the clock of safe retries.
type stack struct {
	db     *gorm.DB
	layout tenants.Layout
	url    string // of the listener; tenant acme answers on host acme.test
}

func newStack(t *testing.T, driver string, now func() time.Time) *stack {
	t.Helper()
	ctx := context.Background()
	log := testenv.Logger(t)
	db, dialect, err := database.Open(ctx, testenv.Database(t, driver), log, database.RouteBy(tenants.RouteKey))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = database.Close(db) })
	layout, err := tenants.NewLayout(tenants.Strategy(config.DefaultStrategy(driver)), dialect)
	if err != nil {
		t.Fatal(err)
	}
	scope, err := tenants.NewScope(db, layout)
	if err != nil {
		t.Fatal(err)
	}
	catalog := tenants.NewCatalog(db, layout, log)
	if err := catalog.Bootstrap(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := catalog.Create(ctx, tenants.Spec{Name: "acme", Hosts: []string{"acme.test"}}); err != nil {
		t.Fatal(err)
	}
	mw, err := tenants.NewMiddleware(tenants.NewResolver(catalog, time.Second), nil, catalog.Migrations().Latest())
	if err != nil {
		t.Fatal(err)
	}
	pages, err := web.New()
	if err != nil {
		t.Fatal(err)
	}
	h := handlers.New(handlers.Deps{Log: log, Scope: scope, Tenants: mw, MaxBody: 1 << 20, Pages: pages,
		SessionKey: []byte("k"), Idempotency: &handlers.Idempotency{Now: now}})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &stack{db: db, layout: layout, url: srv.URL}
}

// manualClock is a clock a test moves by hand.
type manualClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *manualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *manualClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// TestIdempotencyKeyExpiry: an answer is replayed for 24 hours; after
// that the key is free again, and its record is swept.
func TestIdempotencyKeyExpiry(t *testing.T) {
	for _, driver := range testenv.Drivers {
		t.Run(driver, func(t *testing.T) {
			t.Parallel()
			clock := &manualClock{now: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
			s := newStack(t, driver, clock.Now)
			post := func(key, body string) apiResponse {
				t.Helper()
				return apiDo(t, "POST", s.url+"/api/users", "acme.test", "application/json", strings.NewReader(body), "Idempotency-Key", key)
			}
			ada := `{"name":"Ada","email":"ada@example.com"}`
			first := post("day", ada)
			if first.status != http.StatusCreated {
				t.Fatalf("first: %d %s", first.status, first.body)
			}
			// Another key's answer, to be swept by a later request.
			if r := post("other", `{"name":"Bob","email":"bob@example.com"}`); r.status != http.StatusCreated {
				t.Fatalf("other: %d %s", r.status, r.body)
			}

			clock.advance(24*time.Hour - time.Second)
			wantReplay(t, post("day", ada), first)

			clock.advance(time.Second)
			grace := `{"name":"Grace","email":"grace@example.com"}`
			again := post("day", grace)
			if again.status != http.StatusCreated || again.header.Get("Idempotent-Replayed") != "" {
				t.Fatalf("after 24 h, the key with another body: %d %s; want a new 201", again.status, again.body)
			}
			if u, k := keyedRows(t, s.db, s.layout, "acme", "users"), keyedRows(t, s.db, s.layout, "acme", "idempotency_keys"); u != 3 || k != 1 {
				t.Errorf("%d users and %d keys; want 3 users and only the renewed key (the expired ones swept)", u, k)
			}
			wantReplay(t, post("day", grace), again)
		})
	}
}

var tokenRe = regexp.MustCompile(`name="idempotency_key" value="([^"]+)"`)

// formToken reads the one-time token of the form on a page.
func formTokenOf(t *testing.T, r pageResponse) string {
	t.Helper()
	m := tokenRe.FindStringSubmatch(r.body)
	if m == nil {
		t.Fatalf("no form token on the page:\n%s", r.body)
	}
	return m[1]
}

// TestFormDoubleSubmit: every form carries a one-time token; the same
// form posted twice, one after the other or at once, is answered once:
// both posts get the first answer (the same redirect and flash), and one
// user is added, changed or deleted. A form shown again with mistakes
// has a new token; a form without one still works.
func TestFormDoubleSubmit(t *testing.T) {
	eachDriver(t, func(t *testing.T, env *testenv.Env, pc *pageClient) {
		base := env.URL1
		users := pc.get(base + "/users")
		token := formTokenOf(t, users)
		if again := formTokenOf(t, pc.get(base+"/users")); again == token {
			t.Errorf("two renderings of the form share the token %s", token)
		}
		form := url.Values{"name": {"Ada"}, "email": {"ada@example.com"}, "idempotency_key": {token}}

		// Twice in a row: the second gets the first redirect and flash.
		first := pc.post(base, "/users", form)
		_, id := wantAdded(t, first)
		second := pc.post(base, "/users", form)
		wantAdded(t, second)
		if second.header.Get("Location") != first.header.Get("Location") || second.header.Get("Set-Cookie") != first.header.Get("Set-Cookie") ||
			second.header.Get("Idempotent-Replayed") != "true" {
			t.Errorf("second post: Location %q, Set-Cookie %q; want the first's %q, %q, replayed",
				second.header.Get("Location"), second.header.Get("Set-Cookie"), first.header.Get("Location"), first.header.Get("Set-Cookie"))
		}
		wantPage(t, pc.get(base+second.header.Get("Location")), 200, "User Ada added")
		if n := envRows(t, env, "tenant1", "users"); n != 1 {
			t.Errorf("%d users after a double submit, want 1", n)
		}

		// At once: one user, both posts redirected alike.
		token = formTokenOf(t, pc.get(base+"/users"))
		form = url.Values{"name": {"Bob"}, "email": {"bob@example.com"}, "idempotency_key": {token}}
		answers := make([]pageResponse, 4)
		var wg sync.WaitGroup
		for i := range answers {
			wg.Go(func() { answers[i] = pc.post(base, "/users", form) })
		}
		wg.Wait()
		for _, a := range answers {
			if a.status != http.StatusSeeOther || a.header.Get("Location") != answers[0].header.Get("Location") {
				t.Errorf("concurrent post: %d to %q, want all 303 to %q", a.status, a.header.Get("Location"), answers[0].header.Get("Location"))
			}
		}
		if n := envRows(t, env, "tenant1", "users"); n != 2 {
			t.Errorf("%d users after a concurrent double submit, want 2", n)
		}

		// A form with mistakes comes back with a new token; sending it
		// again shows the same page, and the corrected form works.
		token = formTokenOf(t, pc.get(base+"/users"))
		bad := url.Values{"name": {"Eve"}, "email": {"ada@example.com"}, "idempotency_key": {token}}
		taken := pc.post(base, "/users", bad)
		wantPage(t, taken, http.StatusConflict, "is already used in this workspace")
		next := formTokenOf(t, taken)
		if next == token {
			t.Errorf("the form shown again reuses the token %s", token)
		}
		if again := pc.post(base, "/users", bad); again.status != http.StatusConflict || again.body != taken.body {
			t.Errorf("the same mistaken form again: %d; want the first page again", again.status)
		}
		wantAdded(t, pc.post(base, "/users", url.Values{"name": {"Eve"}, "email": {"eve@example.com"}, "idempotency_key": {next}}))
		// The old token with other values: refused, nothing added.
		wantPage(t, pc.post(base, "/users", url.Values{"name": {"Mallory"}, "email": {"m@example.com"}, "idempotency_key": {token}}),
			http.StatusUnprocessableEntity, "This form was already sent with other values")

		// Edit and delete forms.
		edit := pc.get(base + "/users/" + id + "/edit")
		ef := url.Values{"name": {"Ada King"}, "email": {"ada@example.com"}, "idempotency_key": {formTokenOf(t, edit)}}
		wantSeeOther(t, pc.post(base, "/users/"+id, ef), "/users")
		wantSeeOther(t, pc.post(base, "/users/"+id, ef), "/users")
		del := pc.get(base + "/users/" + id + "/delete")
		df := url.Values{"idempotency_key": {formTokenOf(t, del)}}
		d1 := pc.post(base, "/users/"+id+"/delete", df)
		wantSeeOther(t, d1, "/users")
		d2 := pc.post(base, "/users/"+id+"/delete", df)
		wantSeeOther(t, d2, "/users")
		if d2.header.Get("Set-Cookie") != d1.header.Get("Set-Cookie") {
			t.Errorf("second delete: flash %q, want the first's %q", d2.header.Get("Set-Cookie"), d1.header.Get("Set-Cookie"))
		}

		// Programs may post without a token.
		wantAdded(t, pc.post(base, "/users", url.Values{"name": {"Zed"}, "email": {"zed@example.com"}}))
		if n := envRows(t, env, "tenant1", "users"); n != 3 {
			t.Errorf("%d users at the end, want 3 (Bob, Eve, Zed)", n)
		}
	})
}
