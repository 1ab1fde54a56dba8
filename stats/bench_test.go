package stats

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkObserve measures the cost Observe adds to every request: one
// tenant from one goroutine, 10,000 tenants from every core (no lock is
// shared between tenants), and one tenant from every core (its own mutex
// is the only contention).
func BenchmarkObserve(b *testing.B) {
	names := make([]string, 10000)
	for i := range names {
		names[i] = fmt.Sprintf("tenant-%05d", i)
	}
	durations := []time.Duration{300 * time.Microsecond, 2 * time.Millisecond, 45 * time.Millisecond, 1200 * time.Millisecond}
	b.Run("one-tenant", func(b *testing.B) {
		s := New()
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			s.Observe(served(names[0], 200, durations[i%len(durations)]))
			i++
		}
	})
	b.Run("10000-tenants-parallel", func(b *testing.B) {
		s := New()
		for _, n := range names {
			s.Observe(served(n, 200, time.Millisecond))
		}
		var next atomic.Int64
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			i := int(next.Add(7919))
			for pb.Next() {
				s.Observe(served(names[i%len(names)], 200, durations[i%len(durations)]))
				i++
			}
		})
	})
	b.Run("one-tenant-parallel", func(b *testing.B) {
		s := New()
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				s.Observe(served(names[0], 200, durations[i%len(durations)]))
				i++
			}
		})
	})
}

// BenchmarkTenant measures one admin stats request's in-memory part.
func BenchmarkTenant(b *testing.B) {
	s := New()
	for i := range 100000 {
		s.Observe(served("acme", 200, time.Duration(i)*time.Microsecond))
	}
	b.ReportAllocs()
	for b.Loop() {
		_ = s.Tenant("acme", time.Time{})
	}
}
