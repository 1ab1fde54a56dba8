package tenants_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"tenantry/app"
	"tenantry/config"
	"tenantry/database"
	"tenantry/internal/testenv"
	"tenantry/tenants"
)

const limitsAdminToken = "limits-admin-token-0123456789"

// answer is one response of the service, read whole.
type answer struct {
	status int
	header http.Header
	body   string
}

// send sends method path to base with its own Host (base's host:port)
// and an Accept header, and reads the answer.
func send(t *testing.T, method, url, accept, body string) answer {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/merge-patch+json")
	}
	if strings.Contains(url, "/admin/") {
		req.Header.Set("Authorization", "Bearer "+limitsAdminToken)
	}
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return answer{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

// checkTooMany fails unless a is a 429 of the given problem type with a
// Retry-After of at least 1 and at most maxRetry seconds, as
// problem+json or, for a page, as an HTML page.
func checkTooMany(t *testing.T, a answer, slug string, maxRetry int, page bool) {
	t.Helper()
	if a.status != http.StatusTooManyRequests {
		t.Fatalf("status %d, want 429: %s", a.status, a.body)
	}
	ra, err := strconv.Atoi(a.header.Get("Retry-After"))
	if err != nil || ra < 1 || ra > maxRetry {
		t.Errorf("Retry-After %q, want 1 to %d seconds", a.header.Get("Retry-After"), maxRetry)
	}
	if page {
		if ct := a.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
			t.Errorf("page: Content-Type %q, want an HTML page", ct)
		}
		return
	}
	var p struct {
		Type   string `json:"type"`
		Status int    `json:"status"`
		Detail string `json:"detail"`
	}
	if err := json.Unmarshal([]byte(a.body), &p); err != nil || a.header.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("not problem+json (%v): %s %s", err, a.header.Get("Content-Type"), a.body)
	}
	if p.Type != "urn:tenantry:problem:"+slug || p.Status != 429 || p.Detail == "" {
		t.Errorf("problem %+v, want type %s, status 429 and a detail", p, slug)
	}
}

// untilStatus sends GET url until it answers want, failing after within;
// it returns the answer.
func untilStatus(t *testing.T, url string, want int, within time.Duration) answer {
	t.Helper()
	var a answer
	testenv.Eventually(t, within, func() bool {
		a = send(t, http.MethodGet, url, "", "")
		return a.status == want
	}, "GET ", url, " answering ", want)
	return a
}

// TestLimitsLive runs the limits on the whole service, on each database:
// a tenant over its rate gets 429 with Retry-After on the API and on its
// pages while the other tenant is served; a change through the admin API,
// or by another process, takes effect within a second; 0 and null go
// back to the default; a tenant at its concurrency limit is refused after
// the wait while the other tenant is served at once.
func TestLimitsLive(t *testing.T) {
	for _, driver := range testenv.Drivers {
		t.Run(driver, func(t *testing.T) {
			t.Parallel()
			env := testenv.Start(t, driver, testenv.WithAdmin(limitsAdminToken), func(c *config.Config) {
				c.Tenancy.MaxConcurrentPerTenant = 2
				c.Tenancy.ConcurrencyWait = 50 * time.Millisecond
				// A pool of two lends nothing to a tenant at its limit
				// (config.LendLimit): its next request must wait.
				c.Database.MaxOpenConns, c.Database.MaxIdleConns = 2, 2
				// A default rate so high it never bites: the tests below
				// see it only when a tenant goes back to the default.
				c.Tenancy.RateLimit, c.Tenancy.RateBurst = 10_000, 10_000
			})
			api1, api2 := env.URL1+"/api/tenant", env.URL2+"/api/tenant"
			admin1 := env.AdminURL + "/admin/tenants/tenant1"

			// Rate, set through the admin API: the live service applies it
			// at once, and the admin API shows it.
			a := send(t, http.MethodPatch, admin1, "", `{"limits":{"rate":0.5,"burst":2}}`)
			if a.status != http.StatusOK || !strings.Contains(a.body, `"limits":{"rate":0.5,"burst":2,"concurrency":null}`) {
				t.Fatalf("PATCH limits = %d %s", a.status, a.body)
			}
			tooMany := untilStatus(t, api1, http.StatusTooManyRequests, time.Second)
			// One token every 2 s: the next is at most 2 s away.
			checkTooMany(t, tooMany, "rate-limited", 2, false)
			checkTooMany(t, send(t, http.MethodGet, env.URL1+"/users", "text/html", ""), "rate-limited", 2, true)
			for i := range 20 {
				if a := send(t, http.MethodGet, api2, "", ""); a.status != http.StatusOK {
					t.Fatalf("tenant2 request %d while tenant1 is limited: %d %s", i+1, a.status, a.body)
				}
			}

			// null goes back to the default (10,000/s): served again.
			a = send(t, http.MethodPatch, admin1, "", `{"limits":{"rate":null,"burst":null}}`)
			if a.status != http.StatusOK || !strings.Contains(a.body, `"limits":{"rate":null,"burst":null,"concurrency":null}`) {
				t.Fatalf("PATCH null limits = %d %s", a.status, a.body)
			}
			untilStatus(t, api1, http.StatusOK, time.Second)
			for i := range 20 {
				if a := send(t, http.MethodGet, api1, "", ""); a.status != http.StatusOK {
					t.Fatalf("tenant1 request %d at the default: %d %s", i+1, a.status, a.body)
				}
			}

			// Another process (as `tenantry tenants limits` is) changes the
			// limit: this one applies it within a second, through the
			// catalog's notification (PostgreSQL) or its refresh (SQLite).
			other, err := app.Open(context.Background(), env.App.Config, testenv.Logger(t))
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = other.Close() }()
			if _, err := other.Catalog.SetLimits(context.Background(), "tenant1", tenants.LimitsChange{Rate: ptr(0.2), Burst: ptr(1)}); err != nil {
				t.Fatal(err)
			}
			took := testenv.Eventually(t, time.Second, func() bool {
				return send(t, http.MethodGet, api1, "", "").status == http.StatusTooManyRequests
			}, "another process's limit applied")
			t.Logf("another process's limit applied after %v", took)
			// 0 is the default too.
			if _, err := other.Catalog.SetLimits(context.Background(), "tenant1", tenants.LimitsChange{Rate: ptr(0.0), Burst: ptr(0)}); err != nil {
				t.Fatal(err)
			}
			untilStatus(t, api1, http.StatusOK, time.Second)

			// Concurrency: with tenant1's two slots held, its next request
			// waits 50 ms and is refused; tenant2's is served at once.
			tn, err := env.App.Resolver.Resolve(context.Background(), strings.TrimPrefix(env.URL1, "http://"))
			if err != nil {
				t.Fatal(err)
			}
			var releases []func()
			for range 2 {
				release, err := env.App.Limits.Hold(context.Background(), tn)
				if err != nil {
					t.Fatal(err)
				}
				releases = append(releases, release)
			}
			checkTooMany(t, send(t, http.MethodGet, api1, "", ""), "concurrency-limited", 1, false)
			checkTooMany(t, send(t, http.MethodGet, env.URL1+"/", "text/html", ""), "concurrency-limited", 1, true)
			start := time.Now()
			if a := send(t, http.MethodGet, env.URL2+"/api/users", "", ""); a.status != http.StatusOK {
				t.Errorf("tenant2 while tenant1 is at its limit: %d %s", a.status, a.body)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("tenant2 was served in %v while tenant1 was at its limit, want at once", d)
			}
			releases[0]()
			if a := send(t, http.MethodGet, api1, "", ""); a.status != http.StatusOK {
				t.Errorf("tenant1 after a slot was freed: %d %s", a.status, a.body)
			}
			releases[1]()
			if r, c := env.App.Limits.Refused(); r == 0 || c < 2 {
				t.Errorf("Refused = %d over the rate, %d over concurrency; want some of each", r, c)
			}
		})
	}
}

// TestConcurrencyLimitBoundsDatabaseWork makes tenant1's requests slow in
// the database itself (a table lock on PostgreSQL) rather than in the
// limiter. Pool 4, limit 2: two of them hold their slots waiting for the
// lock, a third borrows the pool's spare room (config.LendLimit lends up
// to 3 requests in flight), the fourth is refused, and tenant2's request,
// which needs a connection of the same pool, is served at once from the
// quarter kept back. Without the limit tenant1's requests would take
// every connection.
func TestConcurrencyLimitBoundsDatabaseWork(t *testing.T) {
	env := testenv.Start(t, "postgres", func(c *config.Config) {
		c.Database.MaxOpenConns, c.Database.MaxIdleConns = 4, 4
		// One group: the point here is the pool as a whole, not which of
		// its connections a tenant's statements prefer.
		c.Database.PoolGroups = 1
		c.Tenancy.MaxConcurrentPerTenant = 2
		c.Tenancy.ConcurrencyWait = 100 * time.Millisecond
	})
	db, _, err := database.Open(context.Background(), env.App.Config.Database, testenv.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = database.Close(db) }()
	tx := db.Begin()
	if err := tx.Exec(`LOCK TABLE "tenant1"."users" IN ACCESS EXCLUSIVE MODE`).Error; err != nil {
		t.Fatal(err)
	}
	locked := true
	unlock := func() {
		if locked {
			locked = false
			_ = tx.Rollback().Error
		}
	}
	defer unlock()

	var wg sync.WaitGroup
	slow := make([]int, 3)
	for i := range slow {
		wg.Go(func() { slow[i] = send(t, http.MethodGet, env.URL1+"/api/users", "", "").status })
	}
	testenv.Eventually(t, 10*time.Second, func() bool {
		var n int
		err := db.Raw(`SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%tenant1%'`).Scan(&n).Error
		return err == nil && n == 3
	}, "tenant1's three requests waiting for the lock")
	if got := env.App.Limits.Borrowed(); got != 1 {
		t.Errorf("Borrowed() = %d, want 1 (the third request)", got)
	}

	checkTooMany(t, send(t, http.MethodGet, env.URL1+"/api/users", "", ""), "concurrency-limited", 1, false)
	start := time.Now()
	if a := send(t, http.MethodGet, env.URL2+"/api/users", "", ""); a.status != http.StatusOK {
		t.Errorf("tenant2 while tenant1 holds its slots: %d %s", a.status, a.body)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("tenant2 took %v while tenant1 held its slots, want at once", d)
	}
	unlock()
	wg.Wait()
	for i, st := range slow {
		if st != http.StatusOK {
			t.Errorf("tenant1's slow request %d ended %d, want 200 once the lock was gone", i+1, st)
		}
	}
	if a := send(t, http.MethodGet, env.URL1+"/api/users", "", ""); a.status != http.StatusOK {
		t.Errorf("tenant1 afterwards: %d", a.status)
	}
}
