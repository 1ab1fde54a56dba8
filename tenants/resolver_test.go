package tenants_test

import (
	"context"
	"errors"
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

func TestResolverCache(t *testing.T) {
	s := newStack(t, "postgres", 8, "acme")
	cc := &countingCatalog{Catalog: s.catalog}
	r := tenants.NewResolver(cc, 200*time.Millisecond)
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
		time.Sleep(250 * time.Millisecond) // past the negative TTL
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

// slowListCatalog is the real catalog whose List, once armed, reads the
// catalog and then waits for release before answering: a refresh that is
// overtaken by a change made while it was in flight.
type slowListCatalog struct {
	*tenants.Catalog
	armed   chan struct{} // receives once the armed List has read
	release chan struct{}
	arm     atomic.Bool
}

func (c *slowListCatalog) List(ctx context.Context) ([]tenants.Tenant, error) {
	ts, err := c.Catalog.List(ctx)
	if c.arm.CompareAndSwap(true, false) {
		c.armed <- struct{}{}
		<-c.release
	}
	return ts, err
}

// TestResolverNeverInstallsAStaleSnapshot is the race CI once caught: a
// periodic or notified refresh reads the catalog, a change (here: suspend)
// commits and clears the cache, and then the refresh installs what it had
// read — serving the suspended tenant as active until the next refresh.
func TestResolverNeverInstallsAStaleSnapshot(t *testing.T) {
	s := newStack(t, "postgres", 8, "acme")
	ctx := context.Background()

	cases := []struct {
		name   string
		change func(t *testing.T, r *tenants.Resolver)
	}{
		{"an invalidation after the read wins", func(t *testing.T, r *tenants.Resolver) {
			r.Invalidate()
		}},
		{"a refresh started after the read wins", func(t *testing.T, r *tenants.Resolver) {
			if err := r.Refresh(ctx); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := s.catalog.SetStatus(ctx, "acme", tenants.StatusActive); err != nil {
				t.Fatal(err)
			}
			sc := &slowListCatalog{Catalog: s.catalog, armed: make(chan struct{}), release: make(chan struct{})}
			r := tenants.NewResolver(sc, time.Minute)
			sc.arm.Store(true)
			stale := make(chan error)
			go func() { stale <- r.Refresh(ctx) }()
			<-sc.armed // the refresh has read acme as active

			if _, err := s.catalog.SetStatus(ctx, "acme", tenants.StatusSuspended); err != nil {
				t.Fatal(err)
			}
			tc.change(t, r)
			close(sc.release)
			if err := <-stale; err != nil {
				t.Fatal(err)
			}

			tn, err := r.Resolve(ctx, "acme.test")
			if err != nil {
				t.Fatal(err)
			}
			if tn.Status != tenants.StatusSuspended {
				t.Errorf("after the overtaken refresh finished: status %q, want %q", tn.Status, tenants.StatusSuspended)
			}
		})
	}
}
