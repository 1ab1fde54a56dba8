package tenants_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
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
// the test ends; each of set changes it before it runs.
func startListener(t *testing.T, dsn string, r *tenants.Resolver, set ...func(*tenants.Listener)) {
	t.Helper()
	l, err := tenants.NewListener(dsn, r, testenv.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	l.ReconnectDelay = 100 * time.Millisecond
	for _, f := range set {
		f(l)
	}
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
	var pid int
	testenv.Eventually(t, 5*time.Second, func() bool {
		var pids []int
		err := db.Raw(`SELECT pid FROM pg_stat_activity
			WHERE datname = current_database() AND application_name = ? AND query ILIKE 'listen%' AND pid <> ?`,
			tenants.ListenerApplicationName, except).Scan(&pids).Error
		if err != nil {
			t.Fatal(err)
		}
		if len(pids) == 1 {
			pid = pids[0]
			return true
		}
		return false
	}, "a listener connection")
	return pid
}

// waitFor polls r for host until ok accepts the answer and returns how
// long that took; it fails the test past limit.
func waitFor(t *testing.T, r *tenants.Resolver, host string, limit time.Duration, ok func(*tenants.Tenant, error) bool) time.Duration {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	start := time.Now()
	var tn *tenants.Tenant
	var err error
	if !testenv.Poll(ctx, func() bool {
		tn, err = r.Resolve(context.Background(), host)
		return ok(tn, err)
	}) {
		t.Fatalf("%s: not as expected after %v (last: %v, %v)", host, limit, tn, err)
	}
	return time.Since(start)
}

// listCounter is a catalog whose full reads (List: what every refresh
// runs) are counted and timed, so that a test can see when a listener has
// gone quiet and whether a reload began after a given moment.
type listCounter struct {
	*tenants.Catalog
	mu      sync.Mutex
	started int
	running int
	lastEnd time.Time
}

func (c *listCounter) List(ctx context.Context) ([]tenants.Tenant, error) {
	c.mu.Lock()
	c.started++
	c.running++
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.running--
		c.lastEnd = time.Now()
		c.mu.Unlock()
	}()
	return c.Catalog.List(ctx)
}

// lists is how many reads have started.
func (c *listCounter) lists() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.started
}

// quietFor reports whether no read is running and none ended within gap.
func (c *listCounter) quietFor(gap time.Duration) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.running == 0 && time.Since(c.lastEnd) >= gap
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
	lc := &listCounter{Catalog: here.catalog}
	r := tenants.NewResolver(lc, time.Minute)
	startListener(t, dbc.DSN, r)
	pid := listenerPID(t, here.db, 0)
	waitFor(t, r, "acme.test", time.Second, unknown)
	if _, err := loud.catalog.Create(ctx, tenants.Spec{Name: "acme", Hosts: []string{"acme.test"}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, r, "acme.test", 2*time.Second, hasStatus(tenants.StatusActive))
	// Let the reloads already asked for (on connecting, on the create)
	// finish, so that nothing but the reconnect can reload the catalog.
	// The listener keeps at most one reload queued and starts it at most
	// minGap (100ms) after the previous one ended, so no read running and
	// none ended for three times that means none is left to come.
	testenv.Eventually(t, 5*time.Second, func() bool { return lc.quietFor(300 * time.Millisecond) },
		"the listener's reloads finishing")
	quiet := lc.lists()

	if _, err := silent.catalog.SetStatus(ctx, "acme", tenants.StatusSuspended); err != nil {
		t.Fatal(err)
	}
	if tn, err := r.Resolve(ctx, "acme.test"); err != nil || tn.Status != tenants.StatusActive {
		t.Fatalf("before the reconnect: %v, %v; want the stale active tenant (the test would prove nothing)", tn, err)
	}
	// Checked just before the kill, not after a pause: no reload began
	// since the listener went quiet, so the one that follows the kill is
	// the reconnect's.
	if n := lc.lists(); n != quiet {
		t.Fatalf("%d catalog reloads before the reconnect, want 0 (the test would prove nothing)", n-quiet)
	}

	var killed bool
	if err := here.db.Raw("SELECT pg_terminate_backend(?)", pid).Scan(&killed).Error; err != nil || !killed {
		t.Fatalf("terminate listener backend %d: %v, %v", pid, killed, err)
	}
	took := waitFor(t, r, "acme.test", 5*time.Second, hasStatus(tenants.StatusSuspended))
	t.Logf("reloaded %v after its connection was killed", took)
	if lc.lists() == quiet {
		t.Errorf("the suspended tenant was seen without a catalog reload")
	}
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
