package database

import (
	"testing"
	"time"
)

// The rule that keeps quiet tenants at home when many queue, step by step
// on a made-up clock: each step is a quiet tenant (by hash) queuing at an
// offset from the start, and whether quiet tenants may then leave home.
func TestSpreadsOnlyWhileFewTenantsQueue(t *testing.T) {
	type step struct {
		at     time.Duration
		tenant uint64
		want   bool
	}
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"few tenants spread", []step{{0, 1, true}, {time.Second, 2, true}, {2 * time.Second, 1, true}, {3 * time.Second, 2, true}}},
		{"the third distinct tenant stops it at once", []step{{0, 1, true}, {0, 2, true}, {0, 3, false}, {time.Second, 1, false}}},
		{"a pause does not clear it", []step{{0, 1, true}, {0, 2, true}, {0, 3, false}, {time.Hour, 1, false}, {time.Hour + time.Second, 2, false}}},
		{"a window with few tenants clears it", []step{
			{0, 1, true}, {0, 2, true}, {0, 3, false},
			{spreadWindow, 1, false},                   // the crowded window ends; this one starts
			{spreadWindow + time.Second, 2, false},     // still the window after a crowded one
			{2 * spreadWindow, 1, true},                // after a window with 2 tenants
			{2*spreadWindow + time.Second, 4, true},    // a second tenant in this window
			{2*spreadWindow + 2*time.Second, 5, false}, // a third
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := NewRouter(nil, nil, RouterOptions{SpreadTenants: 2})
			start := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
			for i, s := range tc.steps {
				if got := r.spreadsLocked(s.tenant, start.Add(s.at)); got != s.want {
					t.Fatalf("step %d (tenant %d at +%v): spreads = %v, want %v", i, s.tenant, s.at, got, s.want)
				}
			}
		})
	}
}

// Without a limit, quiet tenants always may leave home.
func TestSpreadsWithoutLimit(t *testing.T) {
	r := NewRouter(nil, nil, RouterOptions{})
	for i := range uint64(10000) {
		if !r.spreadsLocked(i, time.Now()) {
			t.Fatalf("tenant %d: no limit, yet spreads = false", i)
		}
	}
}
