package tenants_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"tenantry/admin"
	"tenantry/app"
	"tenantry/internal/testenv"
	"tenantry/migrations"
	"tenantry/problem"
	"tenantry/tenants"
)

// removal is a served app whose tenant "acme" has one user, with a second
// catalog over the same pool that removes tenants under policy, logging
// to log, and an admin API over that catalog.
type removal struct {
	app     *app.App
	catalog *tenants.Catalog
	log     *testenv.Buffer
	srv     *httptest.Server // the tenant API, acme on its host
	admin   *httptest.Server
	blocker *sql.DB // a session of its own, outside the app's pool
}

const removalTestToken = "removal-test-token-0123456789"

func newRemoval(t *testing.T, strategy tenants.Strategy, policy tenants.RemovalPolicy) *removal {
	t.Helper()
	ctx := context.Background()
	dbc := testenv.Postgres(t)
	cfg := testenv.Config(dbc)
	cfg.Tenancy.Strategy = string(strategy)
	a, err := app.Open(ctx, cfg, testenv.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })
	r := &removal{app: a, log: &testenv.Buffer{}}
	r.srv = httptest.NewServer(a.Handler)
	t.Cleanup(r.srv.Close)
	log := slog.New(slog.NewTextHandler(r.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	r.catalog = tenants.NewCatalog(a.DB, a.Catalog.Layout(), log, tenants.WithRemovalPolicy(policy))
	// As app.Open wires its own catalog: a change drops the cache.
	r.catalog.OnChange(func(context.Context) { a.Resolver.Invalidate() })
	srv, err := admin.NewServer(admin.Deps{Log: testenv.Logger(t), Catalog: r.catalog, Token: removalTestToken})
	if err != nil {
		t.Fatal(err)
	}
	r.admin = httptest.NewServer(srv)
	t.Cleanup(r.admin.Close)
	if r.blocker, err = sql.Open("pgx", dbc.DSN); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.blocker.Close() })

	host := strings.TrimPrefix(r.srv.URL, "http://")
	if _, err := r.catalog.Create(ctx, tenants.Spec{Name: "acme", Hosts: []string{host}}); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(r.srv.URL+"/api/users", "application/json", strings.NewReader(`{"name":"Ada","email":"ada@example.com"}`))
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("create user: %d", resp.StatusCode)
	}
	return r
}

// table is acme's qualified logical table.
func (r *removal) table(name string) string {
	return migrations.Quote(r.app.Catalog.Layout().Table("acme", name))
}

// hold begins a transaction on a session of its own that runs stmts and
// keeps their locks until the returned function ends it.
func (r *removal) hold(t *testing.T, stmts ...string) (*sql.Tx, func()) {
	t.Helper()
	tx, err := r.blocker.BeginTx(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range stmts {
		if _, err := tx.Exec(s); err != nil {
			_ = tx.Rollback()
			t.Fatalf("%s: %v", s, err)
		}
	}
	return tx, func() { _ = tx.Commit() }
}

// answer is a GET of path: its status, problem type and Retry-After.
func (r *removal) answer(t *testing.T, path string) (int, string, string) {
	t.Helper()
	resp, err := http.Get(r.srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var p struct{ Type string }
	_ = json.NewDecoder(resp.Body).Decode(&p)
	return resp.StatusCode, p.Type, resp.Header.Get("Retry-After")
}

// retries is how many disposal attempts the log shows were retried.
func (r *removal) retries() int {
	return strings.Count(r.log.String(), "tenant removal could not take its locks; retrying")
}

// removeAsync starts Remove and returns where its outcome arrives.
func (r *removal) removeAsync(dropData bool) <-chan error {
	done := make(chan error, 1)
	go func() {
		_, err := r.catalog.Remove(context.Background(), "acme", dropData)
		done <- err
	}()
	return done
}

// checkBeingRemoved fails t unless acme answers 503 tenant-removing with
// Retry-After.
func (r *removal) checkBeingRemoved(t *testing.T) {
	t.Helper()
	st, typ, retry := r.answer(t, "/api/users")
	if st != http.StatusServiceUnavailable || typ != problem.Base+"tenant-removing" || retry == "" {
		t.Errorf("being removed: %d %s Retry-After %q, want 503 tenant-removing with Retry-After", st, typ, retry)
	}
}

// TestRemoveRetriesPastLocks: another session keeps a lock on the
// tenant's table. The removal refuses the tenant's requests at once (503)
// and keeps retrying its disposal; once the lock is released it completes,
// and the tenant is gone (404).
func TestRemoveRetriesPastLocks(t *testing.T) {
	for _, strategy := range []tenants.Strategy{tenants.StrategySchema, tenants.StrategyPrefix} {
		t.Run(string(strategy), func(t *testing.T) {
			t.Parallel()
			r := newRemoval(t, strategy, tenants.RemovalPolicy{
				DrainTimeout: 50 * time.Millisecond, LockTimeout: 50 * time.Millisecond, Attempts: 1000})
			_, release := r.hold(t, "SELECT count(*) FROM "+r.table("users"))
			done := r.removeAsync(true)
			testenv.Eventually(t, 20*time.Second, func() bool { return r.retries() >= 3 }, "three retried attempts")
			select {
			case err := <-done:
				t.Fatalf("Remove returned %v while the table was locked", err)
			default:
			}
			r.checkBeingRemoved(t)

			release()
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("Remove after the lock was released: %v", err)
				}
			case <-time.After(20 * time.Second):
				t.Fatal("Remove did not finish after the lock was released")
			}
			if st, typ, _ := r.answer(t, "/api/users"); st != http.StatusNotFound || typ != problem.Base+"unknown-host" {
				t.Errorf("removed: %d %s, want 404 unknown-host", st, typ)
			}
			ok, err := migrations.HasTable(context.Background(), r.app.DB, r.app.Catalog.Layout().TenantTarget("acme"), "users")
			if err != nil || ok {
				t.Errorf("users table still there after removal (%v, %v)", ok, err)
			}
		})
	}
}

// TestRemoveRetriesDeadlock forces a deadlock between the removal and a
// transaction that locks the tenant's tables in the opposite order. The
// removal is the one PostgreSQL aborts (40P01): it retries and completes
// once the other transaction commits.
func TestRemoveRetriesDeadlock(t *testing.T) {
	t.Parallel()
	// A lock timeout well above deadlock_timeout (1 s), so that the
	// removal's wait ends in deadlock detection, not in its timeout.
	r := newRemoval(t, tenants.StrategySchema, tenants.RemovalPolicy{
		DrainTimeout: 50 * time.Millisecond, LockTimeout: 10 * time.Second, Attempts: 5})
	// The other transaction never runs the check itself, so the removal,
	// which waits first, is the one aborted.
	tx, release := r.hold(t, "SET LOCAL deadlock_timeout = '60s'", "LOCK TABLE "+r.table("users")+" IN ROW EXCLUSIVE MODE")
	done := r.removeAsync(false)
	// The removal holds idempotency_keys (first in name order) and waits
	// for users.
	testenv.Eventually(t, 20*time.Second, func() bool {
		var waiting int
		err := r.blocker.QueryRow(`SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
			JOIN pg_namespace n ON n.oid = c.relnamespace
			WHERE n.nspname = 'acme' AND c.relname = 'users' AND NOT l.granted`).Scan(&waiting)
		return err == nil && waiting > 0
	}, "the removal waiting for the users table")
	locked := make(chan error, 1)
	go func() {
		_, err := tx.Exec("LOCK TABLE " + r.table("idempotency_keys") + " IN ROW EXCLUSIVE MODE")
		locked <- err
	}()
	select {
	case err := <-locked:
		if err != nil {
			t.Fatalf("the other transaction was aborted, not the removal: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the deadlock was not resolved")
	}
	// The removal logs its retry just after PostgreSQL aborted it, which
	// is what let the other transaction through.
	testenv.Eventually(t, 10*time.Second, func() bool { return r.retries() >= 1 }, "the removal retrying")
	if got := r.log.String(); !strings.Contains(got, "deadlock detected") {
		t.Fatalf("the removal retried, but not after a deadlock; its log:\n%s", got)
	}
	r.checkBeingRemoved(t)
	release()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Remove after the deadlock: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Remove did not finish after the other transaction committed")
	}
	// Archived whole: the user is in the archived schema.
	if got := archivedUsers(t, &fleet{db: r.app.DB, layout: r.app.Catalog.Layout()}); got != 1 {
		t.Errorf("archived users %d, want 1", got)
	}
}

// TestRemoveBlocked: a removal whose locks stay taken past its attempts
// removes nothing and says so through the admin API (503 with
// Retry-After); the tenant stays out of service with its data and hosts
// intact; sending the removal again once the lock is gone completes it.
func TestRemoveBlocked(t *testing.T) {
	for _, strategy := range []tenants.Strategy{tenants.StrategySchema, tenants.StrategyPrefix} {
		t.Run(string(strategy), func(t *testing.T) {
			t.Parallel()
			r := newRemoval(t, strategy, tenants.RemovalPolicy{
				DrainTimeout: 50 * time.Millisecond, LockTimeout: 50 * time.Millisecond, Attempts: 3})
			_, release := r.hold(t, "SELECT count(*) FROM "+r.table("users"))

			st, typ, retry, _ := adminDelete(t, r.admin.URL, "acme", true)
			if st != http.StatusServiceUnavailable || typ != problem.Base+"tenant-removal-blocked" || retry == "" {
				t.Fatalf("blocked removal: %d %s Retry-After %q, want 503 tenant-removal-blocked with Retry-After", st, typ, retry)
			}
			if n := r.retries(); n != 2 {
				t.Errorf("%d retries, want 2 (3 attempts)", n)
			}
			_, err := r.catalog.Remove(context.Background(), "acme", true)
			if !errors.Is(err, tenants.ErrRemovalBlocked) {
				t.Errorf("Remove: %v, want ErrRemovalBlocked", err)
			}
			tn, err := r.catalog.Get(context.Background(), "acme")
			if err != nil || !tn.Removing || len(tn.Hosts) != 1 {
				t.Fatalf("after a blocked removal: %+v, %v; want acme kept, being removed, with its host", tn, err)
			}
			var users int
			if err := r.blocker.QueryRow("SELECT count(*) FROM " + r.table("users")).Scan(&users); err != nil || users != 1 {
				t.Errorf("users after a blocked removal: %d, %v; want 1", users, err)
			}
			r.checkBeingRemoved(t)

			release()
			if st, _, _, body := adminDelete(t, r.admin.URL, "acme", true); st != http.StatusOK {
				t.Fatalf("removal sent again: %d %s, want 200", st, body)
			}
			if st, _, _ := r.answer(t, "/api/users"); st != http.StatusNotFound {
				t.Errorf("removed: %d, want 404", st)
			}
		})
	}
}

// adminDelete sends DELETE /admin/tenants/{name} to the admin API at base.
func adminDelete(t *testing.T, base, name string, drop bool) (status int, typ, retry, body string) {
	t.Helper()
	url := base + "/admin/tenants/" + name
	if drop {
		url += "?drop_data=true"
	}
	req, err := http.NewRequest(http.MethodDelete, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+removalTestToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var p struct{ Type string }
	_ = json.Unmarshal(b, &p)
	return resp.StatusCode, p.Type, resp.Header.Get("Retry-After"), string(b)
}
