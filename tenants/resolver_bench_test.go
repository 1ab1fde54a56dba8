package tenants_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"tenantry/tenants"
)

// memLookup is a catalog held in memory. The resolver's cache hit path,
// which is what these tests measure, never reaches its Lookup: a real
// catalog would only make the set-up slow and the figures no different.
type memLookup struct{ tenants []tenants.Tenant }

// newMemLookup returns n active tenants at version 1, tenant i answering
// on t%05d.example.com and on t%05d.example.com:8443.
func newMemLookup(n int) *memLookup {
	l := &memLookup{tenants: make([]tenants.Tenant, n)}
	for i := range l.tenants {
		name := fmt.Sprintf("t%05d", i)
		l.tenants[i] = tenants.Tenant{
			ID: uint64(i + 1), Name: name, Schema: name, Status: tenants.StatusActive, SchemaVersion: 1,
			Hosts: []tenants.TenantHost{{Host: name + ".example.com"}, {Host: name + ".example.com:8443"}},
		}
	}
	return l
}

func (l *memLookup) ByHost(_ context.Context, host string) (*tenants.Tenant, error) {
	for i := range l.tenants {
		for _, h := range l.tenants[i].Hosts {
			if h.Host == host {
				t := l.tenants[i]
				return &t, nil
			}
		}
	}
	return nil, tenants.ErrUnknownHost
}

func (l *memLookup) List(context.Context) ([]tenants.Tenant, error) {
	return append([]tenants.Tenant(nil), l.tenants...), nil
}

// loadedResolver returns a resolver over n tenants whose cache a Refresh
// has filled, as a running process's is, and the tenants' first hosts.
func loadedResolver(tb testing.TB, n int) (*tenants.Resolver, []string) {
	tb.Helper()
	l := newMemLookup(n)
	r := tenants.NewResolver(l, 0)
	if err := r.Refresh(context.Background()); err != nil {
		tb.Fatal(err)
	}
	hosts := make([]string, n)
	for i := range l.tenants {
		hosts[i] = l.tenants[i].Hosts[0].Host
	}
	return r, hosts
}

// BenchmarkResolve measures what every tenant request pays to find its
// tenant once the cache is loaded, with 10,000 tenants in it. The target
// is under 200 ns and no allocation per hit (TestResolveHitAllocatesNothing
// holds the allocations to it).
//
//	go test -run '^$' -bench Resolve -benchtime 1s ./tenants/
func BenchmarkResolve(b *testing.B) {
	const n = 10_000
	r, hosts := loadedResolver(b, n)
	ctx := context.Background()

	b.Run("hit", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if _, err := r.Resolve(ctx, hosts[i%n]); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})

	b.Run("hit parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				if _, err := r.Resolve(ctx, hosts[i%n]); err != nil {
					b.Error(err)
					return
				}
				i++
			}
		})
	})

	// The middleware's path: the Host header normalised, then resolved
	// and the tenant checked, as Middleware.Handler does before it puts
	// the tenant in the request's context.
	m, err := tenants.NewMiddleware(r, nil, 1)
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct{ name, host string }{
		{"middleware", "t00042.example.com"},
		{"middleware with port", "t00042.example.com:8443"},
		{"middleware mixed case", "T00042.Example.COM:8443"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			req := httptest.NewRequest(http.MethodGet, "/api/tenant", nil)
			req.Host = bc.host
			b.ReportAllocs()
			for b.Loop() {
				if _, err := m.Tenant(req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestResolveHitAllocatesNothing keeps the per-request cost of finding a
// tenant from growing unnoticed: a cache hit, and the middleware's path
// for a Host header already in canonical form (with or without a port),
// allocate nothing.
func TestResolveHitAllocatesNothing(t *testing.T) {
	r, hosts := loadedResolver(t, 1000)
	ctx := context.Background()
	if allocs := testing.AllocsPerRun(1000, func() {
		if _, err := r.Resolve(ctx, hosts[42]); err != nil {
			t.Fatal(err)
		}
	}); allocs != 0 {
		t.Errorf("Resolve hit: %v allocations, want 0", allocs)
	}

	m, err := tenants.NewMiddleware(r, nil, 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, host := range []string{"t00042.example.com", "t00042.example.com:8443", "t00042.example.com:80"} {
		req := httptest.NewRequest(http.MethodGet, "/api/tenant", nil)
		req.Host = host
		if allocs := testing.AllocsPerRun(1000, func() {
			if _, err := m.Tenant(req); err != nil {
				t.Fatal(err)
			}
		}); allocs != 0 {
			t.Errorf("Middleware.Tenant, Host %q: %v allocations, want 0", host, allocs)
		}
	}
}
