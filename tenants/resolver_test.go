package tenants_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"tenantry/tenants"
)

// countingCatalog is the real catalog with its host look-ups counted.
type countingCatalog struct {
	*tenants.Catalog
	byHost atomic.Int64
}

func (c *countingCatalog) ByHost(ctx context.Context, host string) (*tenants.Tenant, error) {
	c.byHost.Add(1)
	return c.Catalog.ByHost(ctx, host)
}

// manualClock is a clock that moves only when the test says so.
type manualClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *manualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *manualClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func TestResolverCache(t *testing.T) {
	s := newStack(t, "postgres", 8, "acme")
	cc := &countingCatalog{Catalog: s.catalog}
	const negativeTTL = 5 * time.Second
	clock := &manualClock{now: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
	r := tenants.NewResolver(cc, negativeTTL, tenants.WithClock(clock.Now))
	ctx := context.Background()

	t.Run("steady state costs no query", func(t *testing.T) {
		before := cc.byHost.Load()
		for range 1000 {
			tn, err := r.Resolve(ctx, "acme.test")
			if err != nil || tn.Name != "acme" {
				t.Fatalf("Resolve = %v, %v", tn, err)
			}
		}
		if got := cc.byHost.Load() - before; got != 1 {
			t.Errorf("1000 resolves made %d queries, want 1", got)
		}
	})

	t.Run("concurrent misses share one query", func(t *testing.T) {
		r.Invalidate()
		before := cc.byHost.Load()
		var wg sync.WaitGroup
		start := make(chan struct{})
		for range 64 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				if _, err := r.Resolve(ctx, "acme.test"); err != nil {
					t.Error(err)
				}
			}()
		}
		close(start)
		wg.Wait()
		if got := cc.byHost.Load() - before; got != 1 {
			t.Errorf("64 concurrent misses made %d queries, want 1", got)
		}
	})

	t.Run("unknown hosts are cached negatively", func(t *testing.T) {
		before := cc.byHost.Load()
		for range 500 {
			if _, err := r.Resolve(ctx, "nobody.test"); !errors.Is(err, tenants.ErrUnknownHost) {
				t.Fatalf("err = %v, want ErrUnknownHost", err)
			}
		}
		if got := cc.byHost.Load() - before; got != 1 {
			t.Errorf("500 unknown-host resolves made %d queries, want 1", got)
		}
		clock.Advance(negativeTTL - time.Nanosecond) // the last instant it is remembered
		if _, err := r.Resolve(ctx, "nobody.test"); !errors.Is(err, tenants.ErrUnknownHost) {
			t.Fatalf("err = %v", err)
		}
		if got := cc.byHost.Load() - before; got != 1 {
			t.Errorf("just before the TTL: %d queries, want 1", got)
		}
		clock.Advance(time.Nanosecond) // the TTL has passed
		if _, err := r.Resolve(ctx, "nobody.test"); !errors.Is(err, tenants.ErrUnknownHost) {
			t.Fatalf("err = %v", err)
		}
		if got := cc.byHost.Load() - before; got != 2 {
			t.Errorf("after the TTL: %d queries, want 2", got)
		}
	})

	t.Run("a host added later is found once the negative entry is invalidated", func(t *testing.T) {
		if _, err := r.Resolve(ctx, "new.test"); !errors.Is(err, tenants.ErrUnknownHost) {
			t.Fatalf("err = %v", err)
		}
		if _, err := s.catalog.AddHost(ctx, "acme", "new.test"); err != nil {
			t.Fatal(err)
		}
		r.Invalidate()
		tn, err := r.Resolve(ctx, "new.test")
		if err != nil || tn.Name != "acme" {
			t.Errorf("Resolve(new.test) = %v, %v", tn, err)
		}
	})

	t.Run("after a refresh, made-up hosts cost no query", func(t *testing.T) {
		if err := r.Refresh(ctx); err != nil {
			t.Fatal(err)
		}
		before := cc.byHost.Load()
		for i := range 1000 {
			if _, err := r.Resolve(ctx, fmt.Sprintf("made-up-%d.test", i)); !errors.Is(err, tenants.ErrUnknownHost) {
				t.Fatalf("err = %v, want ErrUnknownHost", err)
			}
		}
		if got := cc.byHost.Load() - before; got != 0 {
			t.Errorf("1000 different unknown hosts after a refresh made %d queries, want 0", got)
		}

		// A change drops the snapshot: a host it added must be found,
		// so hosts are asked for one by one until the next refresh.
		if _, err := s.catalog.AddHost(ctx, "acme", "later.test"); err != nil {
			t.Fatal(err)
		}
		r.Invalidate()
		if tn, err := r.Resolve(ctx, "later.test"); err != nil || tn.Name != "acme" {
			t.Fatalf("after Invalidate: Resolve(later.test) = %v, %v", tn, err)
		}
		before = cc.byHost.Load()
		for i := range 10 {
			_, _ = r.Resolve(ctx, fmt.Sprintf("other-%d.test", i))
		}
		if got := cc.byHost.Load() - before; got != 10 {
			t.Errorf("between a change and the next refresh: %d queries for 10 unknown hosts, want 10", got)
		}
	})

	t.Run("refresh loads every host with one list", func(t *testing.T) {
		if err := r.Refresh(ctx); err != nil {
			t.Fatal(err)
		}
		before := cc.byHost.Load()
		for _, h := range []string{"acme.test", "new.test"} {
			if _, err := r.Resolve(ctx, h); err != nil {
				t.Fatal(err)
			}
		}
		if got := cc.byHost.Load() - before; got != 0 {
			t.Errorf("after Refresh: %d host queries, want 0", got)
		}
	})
}

// slowCatalog is the real catalog whose List or ByHost, once armed, reads
// the catalog and then waits for release before answering: a read that is
// overtaken by a change made while it was in flight.
type slowCatalog struct {
	*tenants.Catalog
	armed   chan struct{} // receives once the armed read has read
	release chan struct{}
	arm     atomic.Bool
}

func newSlowCatalog(c *tenants.Catalog) *slowCatalog {
	return &slowCatalog{Catalog: c, armed: make(chan struct{}), release: make(chan struct{})}
}

func (c *slowCatalog) hold() {
	if c.arm.CompareAndSwap(true, false) {
		c.armed <- struct{}{}
		<-c.release
	}
}

func (c *slowCatalog) List(ctx context.Context) ([]tenants.Tenant, error) {
	ts, err := c.Catalog.List(ctx)
	c.hold()
	return ts, err
}

func (c *slowCatalog) ByHost(ctx context.Context, host string) (*tenants.Tenant, error) {
	t, err := c.Catalog.ByHost(ctx, host)
	c.hold()
	return t, err
}

// TestResolverNeverServesAnAnswerOlderThanAChange is the race CI once
// caught, and its siblings: a read of the catalog is in flight, a change
// (here: suspend) commits and clears the cache, and then the read's answer
// is installed or handed to a request that came after the change —
// serving the suspended tenant as active.
func TestResolverNeverServesAnAnswerOlderThanAChange(t *testing.T) {
	s := newStack(t, "postgres", 8, "acme")
	ctx := context.Background()

	cases := []struct {
		name string
		// inFlight starts the read that the change overtakes.
		inFlight func(r *tenants.Resolver) error
		change   func(r *tenants.Resolver) error
	}{
		{"a refresh, then an invalidation",
			func(r *tenants.Resolver) error { return r.Refresh(ctx) },
			func(r *tenants.Resolver) error { r.Invalidate(); return nil }},
		{"a refresh, then a later refresh",
			func(r *tenants.Resolver) error { return r.Refresh(ctx) },
			func(r *tenants.Resolver) error { return r.Refresh(ctx) }},
		{"a host lookup, then an invalidation",
			func(r *tenants.Resolver) error { _, err := r.Resolve(ctx, "acme.test"); return err },
			func(r *tenants.Resolver) error { r.Invalidate(); return nil }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := s.catalog.SetStatus(ctx, "acme", tenants.StatusActive); err != nil {
				t.Fatal(err)
			}
			sc := newSlowCatalog(s.catalog)
			r := tenants.NewResolver(sc, time.Minute)
			sc.arm.Store(true)
			stale := make(chan error)
			go func() { stale <- tc.inFlight(r) }()
			<-sc.armed // the read has seen acme as active

			if _, err := s.catalog.SetStatus(ctx, "acme", tenants.StatusSuspended); err != nil {
				t.Fatal(err)
			}
			if err := tc.change(r); err != nil {
				t.Fatal(err)
			}
			// A request after the change, while the old read is still out.
			after := make(chan *tenants.Tenant, 1)
			go func() {
				tn, err := r.Resolve(ctx, "acme.test")
				if err != nil {
					t.Error(err)
				}
				after <- tn
			}()
			var tn *tenants.Tenant
			select {
			case tn = <-after:
			case <-time.After(10 * time.Second):
				// It joined the old read instead of asking anew: let the
				// old read finish to see what it was handed.
				close(sc.release)
				tn = <-after
				t.Errorf("a request after the change waited for a read begun before it")
			}
			if tn != nil && tn.Status != tenants.StatusSuspended {
				t.Errorf("request after the change: status %q, want %q", tn.Status, tenants.StatusSuspended)
			}
			select {
			case <-sc.release:
			default:
				close(sc.release)
			}
			if err := <-stale; err != nil {
				t.Fatal(err)
			}
			if tn, err := r.Resolve(ctx, "acme.test"); err != nil || tn.Status != tenants.StatusSuspended {
				t.Errorf("once the old read finished: %v, %v; want status %q", tn, err, tenants.StatusSuspended)
			}
		})
	}
}
