package metrics

import (
	"cmp"
	"context"
	"slices"
	"sync/atomic"
	"time"
)

// shardCount spreads the tenant map, copied on every tenant's first
// request, over enough pieces that a copy stays small at 10,000 tenants
// (about 160 entries).
const shardCount = 64

// maxTenants bounds how many tenants are followed for ranking; a tenant
// first seen beyond it counts as Other until ranking forgets idle ones.
// Tenant names come from the catalog, so it is only a backstop.
const maxTenants = 200_000

// forgetAfter is how many rankings in a row at a score of 0 (no request
// for at least that long) make the metrics forget a tenant: its series go,
// even with room to spare, and so does its state, so that removed tenants
// do not pile up.
const forgetAfter = 15

// tenantState is what the metrics know of one tenant: its requests since
// the last ranking, and its series while it is in the top set.
type tenantState struct {
	name   string
	hits   atomic.Uint64
	series atomic.Pointer[series]
	// score is the tenant's recent traffic, each ranking halving it and
	// adding the hits since the last: about twice its requests per
	// ranking interval when steady, and a burst fades within a few
	// intervals. idle counts rankings in a row with a score of 0. Only
	// rank reads or writes them, under rankMu.
	score uint64
	idle  int
}

// tenant returns the series name's requests count in, and counts the
// request towards its rank.
func (m *Metrics) tenant(name string) *series {
	st, _ := m.shards[shardOf(name)].get(name)
	if st == nil {
		if st = m.add(name); st == nil {
			return m.other
		}
	}
	st.hits.Add(1)
	if s := st.series.Load(); s != nil {
		return s
	}
	return m.other
}

// add makes the state of a tenant seen for the first time. While the top
// set has room the tenant joins it at once, so that a deployment with no
// more tenants than metrics.tenant_series never folds any, and a new
// tenant need not wait for a ranking to be seen.
func (m *Metrics) add(name string) *tenantState {
	m.rankMu.Lock()
	defer m.rankMu.Unlock()
	shard := &m.shards[shardOf(name)]
	if st, ok := shard.get(name); ok {
		return st
	}
	if m.states >= maxTenants {
		return nil
	}
	st := &tenantState{name: name}
	if len(m.top) < m.limit && name != Other {
		m.admit(st)
	}
	shard.put(name, st)
	m.states++
	return st
}

// admit gives st series of its own; evict deletes them, and st counts as
// Other from then on. Both run under rankMu.
func (m *Metrics) admit(st *tenantState) {
	st.series.Store(m.newSeries(st.name, true))
	m.top[st] = true
	m.tracked.Store(int64(len(m.top)))
}

func (m *Metrics) evict(st *tenantState) {
	if s := st.series.Swap(nil); s != nil {
		s.delete(m)
	}
	delete(m.top, st)
	m.tracked.Store(int64(len(m.top)))
}

// Run re-ranks the tenants every Options.RankEvery until ctx ends.
func (m *Metrics) Run(ctx context.Context) {
	tick := time.NewTicker(m.every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			m.rank()
		}
	}
}

// rank brings every tenant's score up to date and makes the top set the
// TenantSeries highest scores: tenants that leave it have their series
// deleted, tenants that join it get series from now on (their earlier
// requests stay in Other). A tenant in the set wins a tie, so equal
// traffic does not make series come and go. A tenant with no request for
// forgetAfter rankings is forgotten.
func (m *Metrics) rank() {
	m.rankMu.Lock()
	defer m.rankMu.Unlock()
	var candidates []*tenantState
	for i := range m.shards {
		var forgotten []string
		for name, st := range m.shards[i].all() {
			st.score = st.score/2 + st.hits.Swap(0)
			if st.score > 0 {
				st.idle = 0
			} else {
				st.idle++
			}
			if st.idle >= forgetAfter {
				if m.top[st] {
					m.evict(st)
				}
				forgotten = append(forgotten, name)
				continue
			}
			// Someone idle keeps a place only while nobody busier wants it.
			if name != Other && (st.score > 0 || m.top[st]) {
				candidates = append(candidates, st)
			}
		}
		if len(forgotten) > 0 {
			m.shards[i].remove(forgotten)
			m.states -= len(forgotten)
		}
	}
	slices.SortFunc(candidates, func(a, b *tenantState) int {
		if c := cmp.Compare(b.score, a.score); c != 0 {
			return c
		}
		if m.top[a] != m.top[b] {
			if m.top[a] {
				return -1
			}
			return 1
		}
		return cmp.Compare(a.name, b.name)
	})
	keep := make(map[*tenantState]bool, m.limit)
	for _, st := range candidates[:min(m.limit, len(candidates))] {
		keep[st] = true
	}
	for st := range m.top {
		if !keep[st] {
			m.evict(st)
		}
	}
	for st := range keep {
		if !m.top[st] {
			m.admit(st)
		}
	}
}

// shardOf hashes name (FNV-1a, inlined so that it allocates nothing) to
// its shard.
func shardOf(name string) int {
	h := uint32(2166136261)
	for i := 0; i < len(name); i++ {
		h ^= uint32(name[i])
		h *= 16777619
	}
	return int(h % shardCount)
}
