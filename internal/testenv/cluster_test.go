package testenv_test

import (
	"context"
	"database/sql"
	"testing"
	"time"

	"tenantry/internal/testenv"
)

// TestCluster drives a private cluster through every state a fault test
// puts it in, checking from a client what each one looks like.
func TestCluster(t *testing.T) {
	c := testenv.StartCluster(t)
	db, err := sql.Open("pgx", c.DSN())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	db.SetMaxIdleConns(0) // every ping a new connection: what a state does to new clients
	ping := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		return db.PingContext(ctx)
	}
	if err := ping(); err != nil {
		t.Fatalf("started: %v", err)
	}
	if err := c.Pause(); err != nil {
		t.Fatal(err)
	}
	if err := ping(); err == nil {
		t.Error("paused: a ping was answered")
	}
	if err := c.Resume(); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 5*time.Second, func() bool { return ping() == nil }, "answers after Resume")
	if err := c.Restart(); err != nil {
		t.Fatal(err)
	}
	if err := ping(); err != nil {
		t.Errorf("restarted: %v", err)
	}
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	if c.Running() {
		t.Error("Running() after Stop")
	}
	if err := ping(); err == nil {
		t.Error("stopped: a ping was answered")
	}
	// Cleanup stops it again, which must be harmless; and a paused
	// cluster must stop too.
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	if err := c.Pause(); err != nil {
		t.Fatal(err)
	}
	if err := c.Stop(); err != nil {
		t.Fatalf("stop of a paused cluster: %v", err)
	}
}
