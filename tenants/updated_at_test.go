package tenants_test

import (
	"context"
	"testing"
	"time"

	"tenantry/internal/testenv"
	"tenantry/tenants"
)

// TestStatusChangeStampsUpdatedAt: catalog changes take updated_at from the
// pool's clock (UTC, microseconds), like every other row, so what the admin
// API shows equals what is stored. On SQLite, which keeps whatever
// precision it is given, a raw time.Now() would show nanoseconds.
func TestStatusChangeStampsUpdatedAt(t *testing.T) {
	s := newStack(t, "sqlite", 1, "acme")
	ctx := context.Background()
	before, err := s.catalog.Get(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	// The pool's clock counts whole microseconds: wait until it has moved
	// past the creation stamp, or the check below could not tell a stamp
	// from a leftover.
	testenv.Eventually(t, time.Second, func() bool {
		return time.Now().Truncate(time.Microsecond).After(before.UpdatedAt)
	}, "the clock moving past the creation stamp")
	after, err := s.catalog.SetStatus(ctx, "acme", tenants.StatusSuspended)
	if err != nil {
		t.Fatal(err)
	}
	if !after.UpdatedAt.After(before.UpdatedAt) {
		t.Errorf("updated_at %v did not move past %v", after.UpdatedAt, before.UpdatedAt)
	}
	if after.UpdatedAt.Nanosecond()%1000 != 0 {
		t.Errorf("updated_at %v has sub-microsecond digits", after.UpdatedAt)
	}
}
