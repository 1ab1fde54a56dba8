package tenants_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"tenantry/tenants"
)

// failingLookup is a catalog that cannot be read.
type failingLookup struct{}

var errCatalogDown = errors.New("catalog down")

func (failingLookup) ByHost(context.Context, string) (*tenants.Tenant, error) {
	return nil, errCatalogDown
}
func (failingLookup) List(context.Context) ([]tenants.Tenant, error) { return nil, errCatalogDown }

// TestResolverStats follows the counters a scrape reads, step by step
// against a real catalog: how each lookup was answered, full reloads,
// and the tenants by status as of the last reload.
func TestResolverStats(t *testing.T) {
	s := newStack(t, "sqlite", 4, "alpha", "beta", "gamma")
	ctx := context.Background()
	r := tenants.NewResolver(s.catalog, time.Minute)
	if st := r.Stats(); st.Tenants != nil || !st.LastReload.IsZero() {
		t.Fatalf("before any reload: %+v, want no tenant counts and no reload time", st)
	}
	resolve := func(host string) func() error {
		return func() error { _, err := r.Resolve(ctx, host); return err }
	}
	for _, tc := range []struct {
		name string
		do   func() error
		want tenants.ResolverStats
	}{
		{"first lookup asks the catalog", resolve("alpha.test"), tenants.ResolverStats{Misses: 1}},
		{"then it is cached", resolve("alpha.test"), tenants.ResolverStats{Hits: 1, Misses: 1}},
		{"an unknown host asks once", resolve("nobody.test"), tenants.ResolverStats{Hits: 1, Misses: 2}},
		{"and is remembered", resolve("nobody.test"), tenants.ResolverStats{Hits: 1, NegativeHits: 1, Misses: 2}},
		{"a reload", func() error { return r.Refresh(ctx) },
			tenants.ResolverStats{Hits: 1, NegativeHits: 1, Misses: 2, Reloads: 1,
				Tenants: map[tenants.Status]int{tenants.StatusActive: 3}}},
		{"after it every host is known", resolve("beta.test"),
			tenants.ResolverStats{Hits: 2, NegativeHits: 1, Misses: 2, Reloads: 1,
				Tenants: map[tenants.Status]int{tenants.StatusActive: 3}}},
		{"a suspension shows at the next reload", func() error {
			if _, err := s.catalog.SetStatus(ctx, "gamma", tenants.StatusSuspended); err != nil {
				return err
			}
			return r.Refresh(ctx)
		}, tenants.ResolverStats{Hits: 2, NegativeHits: 1, Misses: 2, Reloads: 2,
			Tenants: map[tenants.Status]int{tenants.StatusActive: 2, tenants.StatusSuspended: 1}}},
	} {
		if err := tc.do(); err != nil && !errors.Is(err, tenants.ErrUnknownHost) {
			t.Fatalf("%s: %v", tc.name, err)
		}
		got := r.Stats()
		if got.LastReload.IsZero() != (tc.want.Reloads == 0) {
			t.Errorf("%s: LastReload = %v with %d reloads", tc.name, got.LastReload, got.Reloads)
		}
		got.LastReload = time.Time{}
		if !equalStats(got, tc.want) {
			t.Errorf("%s: stats %+v, want %+v", tc.name, got, tc.want)
		}
	}

	failing := tenants.NewResolver(failingLookup{}, time.Minute)
	if err := failing.Refresh(ctx); !errors.Is(err, errCatalogDown) {
		t.Fatalf("Refresh = %v, want the catalog's error", err)
	}
	if st := failing.Stats(); st.ReloadFailures != 1 || st.Reloads != 0 || !st.LastReload.IsZero() {
		t.Errorf("after a failed reload: %+v, want 1 failure and no reload", st)
	}
}

func equalStats(a, b tenants.ResolverStats) bool {
	if a.Hits != b.Hits || a.NegativeHits != b.NegativeHits || a.Misses != b.Misses ||
		a.Reloads != b.Reloads || a.ReloadFailures != b.ReloadFailures || a.Removing != b.Removing ||
		len(a.Tenants) != len(b.Tenants) {
		return false
	}
	for s, n := range b.Tenants {
		if a.Tenants[s] != n {
			return false
		}
	}
	return true
}
