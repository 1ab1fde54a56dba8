package tenants_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"gorm.io/gorm"

	"tenantry/config"
	"tenantry/database"
	"tenantry/internal/testenv"
	"tenantry/tenants"
)

// openProcess is one simulated tenantry process on a shared database: its
// own pool, scope and catalog, as app.Open builds them.
func openProcess(t *testing.T, dbc config.Database) *stack {
	t.Helper()
	return openStack(t, dbc, string(tenants.StrategySchema))
}

// startListener runs a listener that keeps r in step and stops it when
// the test ends.
func startListener(t *testing.T, dsn string, r *tenants.Resolver) {
	t.Helper()
	l, err := tenants.NewListener(dsn, r, testenv.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	l.ReconnectDelay = 100 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("listener Run = %v, want nil after cancel", err)
		}
	})
}

// listenerPID waits until the listener's connection is LISTENing and
// returns its backend pid, skipping except.
func listenerPID(t *testing.T, db *gorm.DB, except int) int {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		var pids []int
		err := db.Raw(`SELECT pid FROM pg_stat_activity
			WHERE datname = current_database() AND application_name = ? AND query ILIKE 'listen%' AND pid <> ?`,
			tenants.ListenerApplicationName, except).Scan(&pids).Error
		if err != nil {
			t.Fatal(err)
		}
		if len(pids) == 1 {
			return pids[0]
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no listener connection within 5s")
	return 0
}

// waitFor polls r for host until ok accepts the answer and returns how
// long that took; it fails the test past limit.
func waitFor(t *testing.T, r *tenants.Resolver, host string, limit time.Duration, ok func(*tenants.Tenant, error) bool) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		tn, err := r.Resolve(context.Background(), host)
		if ok(tn, err) {
			return time.Since(start)
		}
		if time.Since(start) > limit {
			t.Fatalf("%s: not as expected after %v (last: %v, %v)", host, limit, tn, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func hasStatus(st tenants.Status) func(*tenants.Tenant, error) bool {
	return func(tn *tenants.Tenant, err error) bool { return err == nil && tn.Status == st }
}

func unknown(_ *tenants.Tenant, err error) bool { return errors.Is(err, tenants.ErrUnknownHost) }

// TestListenerPropagatesChanges changes the catalog through one process
// and watches another's resolver, which runs no periodic refresh and
// remembers unknown hosts for a minute: only the notification can make it
// see each change, and it must within a second.
func TestListenerPropagatesChanges(t *testing.T) {
	dbc := testenv.Postgres(t)
	here, there := openProcess(t, dbc), openProcess(t, dbc)
	notifier := tenants.NewNotifier(there.db, "there", testenv.Logger(t))
	there.catalog.OnChange(func(ctx context.Context) { _ = notifier.Notify(ctx) })

	r := tenants.NewResolver(here.catalog, time.Minute)
	startListener(t, dbc.DSN, r)
	listenerPID(t, here.db, 0)
	ctx := context.Background()

	for _, tc := range []struct {
		name   string
		host   string
		before func(*tenants.Tenant, error) bool
		change func() error
		after  func(*tenants.Tenant, error) bool
	}{
		{"add tenant", "beta.test", unknown, func() error {
			_, err := there.catalog.Create(ctx, tenants.Spec{Name: "beta", Hosts: []string{"beta.test"}})
			return err
		}, hasStatus(tenants.StatusActive)},
		{"suspend", "beta.test", hasStatus(tenants.StatusActive), func() error {
			_, err := there.catalog.SetStatus(ctx, "beta", tenants.StatusSuspended)
			return err
		}, hasStatus(tenants.StatusSuspended)},
		{"resume", "beta.test", hasStatus(tenants.StatusSuspended), func() error {
			_, err := there.catalog.SetStatus(ctx, "beta", tenants.StatusActive)
			return err
		}, hasStatus(tenants.StatusActive)},
		{"add host", "beta2.test", unknown, func() error {
			_, err := there.catalog.AddHost(ctx, "beta", "beta2.test")
			return err
		}, hasStatus(tenants.StatusActive)},
		{"remove host", "beta2.test", hasStatus(tenants.StatusActive), func() error {
			return there.catalog.RemoveHost(ctx, "beta", "beta2.test")
		}, unknown},
		{"remove tenant", "beta.test", hasStatus(tenants.StatusActive), func() error {
			_, err := there.catalog.Remove(ctx, "beta", false)
			return err
		}, unknown},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Warm this process's cache (positive or negative) first, so
			// that a stale answer would be served if nothing arrived.
			waitFor(t, r, tc.host, 2*time.Second, tc.before)
			if err := tc.change(); err != nil {
				t.Fatal(err)
			}
			took := waitFor(t, r, tc.host, 3*time.Second, tc.after)
			t.Logf("%s: seen by the other process after %v", tc.name, took)
			if took > time.Second {
				t.Errorf("%s took %v to propagate, want under 1s", tc.name, took)
			}
		})
	}
}

// TestListenerReconnects drops the listener's connection after a change
// whose notification never came (made through a catalog that announces
// nothing) and checks that the listener reconnects and reloads the whole
// catalog, then hears notifications again.
func TestListenerReconnects(t *testing.T) {
	dbc := testenv.Postgres(t)
	here, silent, loud := openProcess(t, dbc), openProcess(t, dbc), openProcess(t, dbc)
	notifier := tenants.NewNotifier(loud.db, "loud", testenv.Logger(t))
	loud.catalog.OnChange(func(ctx context.Context) { _ = notifier.Notify(ctx) })
	ctx := context.Background()
	r := tenants.NewResolver(here.catalog, time.Minute)
	startListener(t, dbc.DSN, r)
	pid := listenerPID(t, here.db, 0)
	waitFor(t, r, "acme.test", time.Second, unknown)
	if _, err := loud.catalog.Create(ctx, tenants.Spec{Name: "acme", Hosts: []string{"acme.test"}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, r, "acme.test", 2*time.Second, hasStatus(tenants.StatusActive))
	// Let the reloads already asked for (on connecting, on the create)
	// finish, so that nothing but the reconnect can reload the catalog.
	time.Sleep(500 * time.Millisecond)

	if _, err := silent.catalog.SetStatus(ctx, "acme", tenants.StatusSuspended); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if tn, err := r.Resolve(ctx, "acme.test"); err != nil || tn.Status != tenants.StatusActive {
		t.Fatalf("before the reconnect: %v, %v; want the stale active tenant (the test would prove nothing)", tn, err)
	}

	var killed bool
	if err := here.db.Raw("SELECT pg_terminate_backend(?)", pid).Scan(&killed).Error; err != nil || !killed {
		t.Fatalf("terminate listener backend %d: %v, %v", pid, killed, err)
	}
	took := waitFor(t, r, "acme.test", 5*time.Second, hasStatus(tenants.StatusSuspended))
	t.Logf("reloaded %v after its connection was killed", took)
	if again := listenerPID(t, here.db, pid); again == pid {
		t.Fatalf("listener pid %d after reconnect, want a new connection", again)
	}

	if _, err := loud.catalog.SetStatus(ctx, "acme", tenants.StatusActive); err != nil {
		t.Fatal(err)
	}
	if took := waitFor(t, r, "acme.test", 3*time.Second, hasStatus(tenants.StatusActive)); took > time.Second {
		t.Errorf("after reconnecting, a change took %v to propagate, want under 1s", took)
	}
}

func TestNotifyFailureIsReported(t *testing.T) {
	p := openProcess(t, testenv.Postgres(t))
	n := tenants.NewNotifier(p.db, "test", testenv.Logger(t))
	if err := n.Notify(context.Background()); err != nil {
		t.Fatalf("Notify on an open pool = %v", err)
	}
	if err := database.Close(p.db); err != nil {
		t.Fatal(err)
	}
	err := n.Notify(context.Background())
	if err == nil {
		t.Fatal("Notify on a closed pool = nil, want an error")
	}
	if want := fmt.Sprintf("notify %s", tenants.NotifyChannel); !strings.Contains(err.Error(), want) {
		t.Errorf("err = %v, want it to mention %q", err, want)
	}
}
