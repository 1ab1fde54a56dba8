package tenants_test

import (
	"context"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"tenantry/fault"
	"tenantry/internal/testenv"
	"tenantry/tenants"
)

// stalledLookup is a catalog that never answers: its queries ignore their
// context too, as a connection to a frozen database host does until the
// network gives up.
type stalledLookup struct {
	release chan struct{}
	calls   atomic.Int64 // lookups still blocked
}

func (l *stalledLookup) ByHost(context.Context, string) (*tenants.Tenant, error) {
	l.calls.Add(1)
	defer l.calls.Add(-1)
	<-l.release
	return nil, tenants.ErrUnknownHost
}

func (l *stalledLookup) List(context.Context) ([]tenants.Tenant, error) {
	<-l.release
	return nil, nil
}

// TestLookupTimeout: a request whose host the cache does not know waits
// for a stalled catalog no longer than its own deadline
// (tenants.LookupTimeout without one), and then fails as a timeout (a
// 503), never with a tenant, through the middleware every tenant request
// passes. Before, the shared lookup dropped the deadline and a stalled
// catalog held every such request for as long as the stall lasted.
func TestLookupTimeout(t *testing.T) {
	lookup := &stalledLookup{release: make(chan struct{})}
	t.Cleanup(func() {
		close(lookup.release)
		testenv.Eventually(t, 5*time.Second, func() bool { return lookup.calls.Load() == 0 }, "stalled lookups released")
	})
	mw, err := tenants.NewMiddleware(tenants.NewResolver(lookup, time.Second), nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		deadline time.Duration // the request's own; 0 for none
		want     time.Duration
	}{
		{"request deadline", 300 * time.Millisecond, 300 * time.Millisecond},
		{"no deadline", 0, tenants.LookupTimeout},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "http://shop.example/api/users", nil)
			if tc.deadline > 0 {
				ctx, cancel := context.WithTimeout(r.Context(), tc.deadline)
				defer cancel()
				r = r.WithContext(ctx)
			}
			start := time.Now()
			got, err := mw.Tenant(r)
			took := time.Since(start)
			if got != nil || err == nil {
				t.Fatalf("Tenant = %v, %v; want no tenant and an error", got, err)
			}
			if k := fault.KindOf(err); k != fault.Timeout {
				t.Errorf("kind = %v (%v), want timeout: a 503, not an unknown host", k, err)
			}
			if took < tc.want-100*time.Millisecond || took > tc.want+time.Second {
				t.Errorf("answered after %v, want about %v", took, tc.want)
			}
		})
	}
}
