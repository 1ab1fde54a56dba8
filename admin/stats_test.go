package admin_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"tenantry/admin"
	"tenantry/internal/testenv"
	"tenantry/migrations"
	"tenantry/tenants"
)

// load is the traffic one tenant gets: GETs of its user list (200),
// GETs of a user it does not have (404) and invalid creations (422).
type load struct {
	lists, missing, invalid int
}

func (l load) requests() uint64     { return uint64(l.lists + l.missing + l.invalid) }
func (l load) clientErrors() uint64 { return uint64(l.missing + l.invalid) }

// TestTenantStats runs the service with its admin listener, as app.Serve
// wires it, on each database, sends two tenants different traffic at
// once through the real tenant listeners and reads their stats: each
// shows exactly its own requests, client errors, errors and rows, never
// the other's; an unknown tenant is 404 and the token is required.
func TestTenantStats(t *testing.T) {
	for _, driver := range testenv.Drivers {
		t.Run(driver, func(t *testing.T) {
			t.Parallel()
			env := testenv.Start(t, driver, testenv.WithAdmin(token))
			f := &fixture{env: env, url: env.AdminURL}
			urls := map[string]string{"tenant1": env.URL1, "tenant2": env.URL2}

			// Rows first: tenant1 gets 3 users, tenant2 none.
			for i := range 3 {
				body := fmt.Sprintf(`{"name":"U","email":"stats-%d@example.com"}`, i)
				if code := send(t, http.MethodPost, env.URL1+"/api/users", body); code != http.StatusCreated {
					t.Fatalf("create user: %d", code)
				}
			}
			loads := map[string]load{"tenant1": {lists: 60, missing: 12}, "tenant2": {lists: 25, invalid: 7}}
			var wg sync.WaitGroup
			for name, l := range loads {
				for w := range 4 { // four clients a tenant, at once
					wg.Go(func() {
						for i := w; i < int(l.requests()); i += 4 {
							method, path, body, want := http.MethodGet, "/api/users", "", http.StatusOK
							switch {
							case i < l.missing:
								path, want = "/api/users/999999", http.StatusNotFound
							case i < l.missing+l.invalid:
								method, body, want = http.MethodPost, `{"name":""}`, http.StatusUnprocessableEntity
							}
							if code := send(t, method, urls[name]+path, body); code != want {
								t.Errorf("%s %s %s: %d, want %d", name, method, path, code, want)
							}
						}
					})
				}
			}
			wg.Wait()

			// Each request is counted after its answer is sent: wait
			// until the last ones are in, then hold every figure exactly.
			created := map[string]uint64{"tenant1": 3, "tenant2": 0}
			for name, l := range loads {
				want := l.requests() + created[name]
				var got admin.TenantStats
				testenv.Eventually(t, 10*time.Second, func() bool {
					got = tenantStats(t, f, name)
					return len(got.Requests) == 3 && got.Requests[0].Requests >= want
				}, name, " stats count its requests")
				for _, w := range got.Requests {
					if w.Requests != want || w.ClientErrors != l.clientErrors() || w.Errors != 0 {
						t.Errorf("%s, %d minutes: %d requests, %d client errors, %d errors; want %d, %d, 0",
							name, w.Minutes, w.Requests, w.ClientErrors, w.Errors, want, l.clientErrors())
					}
					if w.P50 == nil || w.P99 == nil || *w.P50 <= 0 || *w.P99 < *w.P50 || w.Seconds <= 0 {
						t.Errorf("%s, %d minutes: p50 %v, p99 %v over %vs; want 0 < p50 ≤ p99 and a span", name, w.Minutes, w.P50, w.P99, w.Seconds)
					}
				}
				checkRows(t, env, name, got.Storage, created[name])
			}

			// A 5xx counts as an error, for its tenant only: a column of
			// tenant1's users table changes name under it (a fault of the
			// service, 500).
			layout := env.App.Catalog.Layout()
			if err := env.App.DB.Exec("ALTER TABLE " + migrations.Quote(layout.Table("tenant1", "users")) + " RENAME COLUMN email TO mail").Error; err != nil {
				t.Fatal(err)
			}
			for range 5 {
				if code := send(t, http.MethodGet, env.URL1+"/api/users", ""); code < 500 {
					t.Fatalf("tenant1 without its users table: %d, want a 5xx", code)
				}
			}
			testenv.Eventually(t, 10*time.Second, func() bool {
				return tenantStats(t, f, "tenant1").Requests[0].Errors == 5
			}, "tenant1's 5 errors counted")
			if w := tenantStats(t, f, "tenant2").Requests[0]; w.Errors != 0 || w.Requests != loads["tenant2"].requests() {
				t.Errorf("tenant2 after tenant1's errors: %d requests, %d errors; want %d and 0", w.Requests, w.Errors, loads["tenant2"].requests())
			}

			checkProblem(t, f.do(t, request{method: "GET", path: "/admin/tenants/nobody/stats"}), 404, "tenant-not-found", "")
			checkProblem(t, f.do(t, request{method: "GET", path: "/admin/tenants/tenant1/stats", auth: "none"}), 401, "unauthorized", "")
		})
	}
}

// send sends one request to a tenant listener (its URL picks the tenant)
// and returns the status.
func send(t *testing.T, method, url, body string) int {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	return resp.StatusCode
}

func tenantStats(t *testing.T, f *fixture, name string) admin.TenantStats {
	t.Helper()
	resp := f.do(t, request{method: "GET", path: "/admin/tenants/" + name + "/stats"})
	if resp.status != http.StatusOK || resp.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("stats of %s: %d (Cache-Control %q): %s", name, resp.status, resp.header.Get("Cache-Control"), resp.body)
	}
	var st admin.TenantStats
	if err := json.Unmarshal(resp.body, &st); err != nil {
		t.Fatalf("stats of %s: %v: %s", name, err, resp.body)
	}
	if st.Name != name || st.Storage == nil {
		t.Fatalf("stats of %s: %s", name, resp.body)
	}
	return st
}

// checkRows holds the stats' row counts to the database's own, and
// users to what the test created for the tenant.
func checkRows(t *testing.T, env *testenv.Env, name string, st *tenants.Storage, users uint64) {
	t.Helper()
	layout := env.App.Catalog.Layout()
	seen := map[string]bool{}
	for _, ts := range st.Tables {
		seen[ts.Table] = true
		var n int64
		if err := env.App.DB.Raw("SELECT count(*) FROM " + migrations.Quote(layout.Table(name, ts.Table))).Scan(&n).Error; err != nil {
			t.Fatal(err)
		}
		if ts.Rows != n {
			t.Errorf("%s.%s: %d rows in the stats, %d in the database", name, ts.Table, ts.Rows, n)
		}
		if ts.Table == "users" && ts.Rows != int64(users) {
			t.Errorf("%s.users: %d rows, want the %d it was given", name, ts.Rows, users)
		}
	}
	if !seen["users"] || !seen["schema_migrations"] {
		t.Errorf("%s: tables %+v, want users and schema_migrations among them", name, st.Tables)
	}
	if pg := layout.Dialect == migrations.Postgres; pg != (st.Bytes != nil) || pg == (st.File != nil) {
		t.Errorf("%s on %s: bytes %v, file %+v", name, layout.Dialect, st.Bytes, st.File)
	}
}
