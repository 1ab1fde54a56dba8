package database

import (
	"testing"
	"time"
)

func TestShareSplitsEveryConnection(t *testing.T) {
	for _, tc := range []struct{ total, n int }{{16, 16}, {16, 5}, {32, 32}, {3, 2}, {0, 4}, {7, 1}} {
		sum := 0
		for i := range tc.n {
			s := share(tc.total, tc.n, i)
			if d := s - tc.total/tc.n; d < 0 || d > 1 {
				t.Errorf("share(%d, %d, %d) = %d: not within one of the others", tc.total, tc.n, i, s)
			}
			sum += s
		}
		if sum != tc.total {
			t.Errorf("shares of %d over %d groups add up to %d", tc.total, tc.n, sum)
		}
	}
}

func TestStaggeredLifetimes(t *testing.T) {
	life := 30 * time.Minute
	seen := map[time.Duration]bool{}
	for i := range 16 {
		got := staggered(life, 16, i)
		if got < life || got >= life*3/2 {
			t.Errorf("group %d: lifetime %s outside [%s, %s)", i, got, life, life*3/2)
		}
		if seen[got] {
			t.Errorf("group %d: lifetime %s shared with another group", i, got)
		}
		seen[got] = true
	}
	for _, tc := range []struct {
		life time.Duration
		n    int
	}{{0, 16}, {life, 1}} {
		if got := staggered(tc.life, tc.n, 0); got != tc.life {
			t.Errorf("staggered(%s, %d, 0) = %s, want it unchanged", tc.life, tc.n, got)
		}
	}
}
