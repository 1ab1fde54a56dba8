package main

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// liveResult compares a read run with one during which tenants were
// created through the admin API.
type liveResult struct {
	normal, during result
	created        []time.Duration // latency of each successful creation, in order
	failed         int
	failSample     string
}

// createdMedianMax is the median and the largest creation latency.
func (l liveResult) createdMedianMax() (med, most time.Duration) {
	if len(l.created) == 0 {
		return 0, 0
	}
	s := slices.Clone(l.created)
	slices.Sort(s)
	return s[len(s)/2], s[len(s)-1]
}

// provisionUnderLoad runs the read mix against t twice, as the rounds do:
// once alone, then once while tenants liveN-0, liveN-1, ... are created one
// a second through POST /admin/tenants, from the end of the warm-up to the
// end of the run. The created tenants' hosts are not in t's host list. It
// removes them afterwards (data dropped) so the catalog holds n tenants
// again.
func (s *sitting) provisionUnderLoad(ctx context.Context, t app, n int) (*liveResult, error) {
	var l liveResult
	var err error
	if l.normal, err = measure(ctx, s.o, s.bins["load"], t, "read", s.pg); err != nil {
		return nil, err
	}
	logf("%d tenants: read without creations: %.0f req/s, p99 %.1f ms", n, l.normal.RPS, l.normal.P99Ms)

	var names []string
	create := func(run context.Context) {
		select {
		case <-time.After(s.o.warmup):
		case <-run.Done():
			return
		}
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for i := 0; ; i++ {
			name := fmt.Sprintf("live%d-%d", n, i)
			t0 := time.Now()
			// ctx, not run: a creation under way when the run ends finishes.
			err := s.api.createTenant(ctx, name, []string{name + ".bench:8082"})
			d := time.Since(t0)
			if err != nil {
				l.failed++
				if l.failSample == "" {
					l.failSample = err.Error()
				}
			} else {
				l.created = append(l.created, d)
			}
			names = append(names, name) // a failed creation may still have committed
			select {
			case <-tick.C:
			case <-run.Done():
				return
			}
		}
	}
	if l.during, err = measure(ctx, s.o, s.bins["load"], t, "read", s.pg, create); err != nil {
		return nil, err
	}
	med, most := l.createdMedianMax()
	logf("%d tenants: read while creating tenants: %.0f req/s, p99 %.1f ms; %d created (median %s, max %s), %d failed %s",
		n, l.during.RPS, l.during.P99Ms, len(l.created), med.Round(time.Millisecond), most.Round(time.Millisecond), l.failed, l.failSample)

	for _, name := range names {
		if err := s.api.removeTenant(ctx, name); err != nil {
			logf("warning: remove %s: %v", name, err)
		}
	}
	return &l, nil
}
