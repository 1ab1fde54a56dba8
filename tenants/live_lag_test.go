package tenants_test

import (
	"context"
	"testing"
	"time"

	"tenantry/internal/testenv"
	"tenantry/tenants"
)

// TestListenerReportsLag: a change announced by another process is
// reported, once its reload here is done, with the time since its
// announcement; a notification that carries no time (from a process older
// than the time field) still reloads the catalog but reports no lag.
func TestListenerReportsLag(t *testing.T) {
	dbc := testenv.Postgres(t)
	here, there := openProcess(t, dbc), openProcess(t, dbc)
	notifier := tenants.NewNotifier(there.db, "there", testenv.Logger(t))
	there.catalog.OnChange(func(ctx context.Context) { _ = notifier.Notify(ctx) })

	r := tenants.NewResolver(here.catalog, time.Minute)
	lags := make(chan time.Duration, 16)
	startListener(t, dbc.DSN, r, func(l *tenants.Listener) { l.ReportLag = func(d time.Duration) { lags <- d } })
	listenerPID(t, here.db, 0)
	// The reload that follows connecting answers no announcement.
	testenv.Eventually(t, 5*time.Second, func() bool { return r.Stats().Reloads >= 1 }, "the first reload")

	reloads := r.Stats().Reloads
	if err := there.db.Exec("SELECT pg_notify(?, ?)", tenants.NotifyChannel, "an-older-process").Error; err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 5*time.Second, func() bool { return r.Stats().Reloads > reloads }, "a reload after an untimed notification")
	select {
	case d := <-lags:
		t.Fatalf("lag %v reported for a notification without a time, or for connecting", d)
	default:
	}

	if _, err := there.catalog.Create(context.Background(), tenants.Spec{Name: "lagged", Hosts: []string{"lagged.test"}}); err != nil {
		t.Fatal(err)
	}
	select {
	case d := <-lags:
		if d < 0 {
			t.Errorf("lag %v, want at least 0", d)
		}
		if _, err := r.Resolve(context.Background(), "lagged.test"); err != nil {
			t.Errorf("after the reload that reported its lag, the new tenant resolves with %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no lag reported within 10s of an announced change")
	}
}
