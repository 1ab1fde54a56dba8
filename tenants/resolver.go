package tenants

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"
)

// Lookup finds the tenant answering on a normalized host; *Catalog is one.
type Lookup interface {
	ByHost(ctx context.Context, host string) (*Tenant, error)
	List(ctx context.Context) ([]Tenant, error)
}

// Resolver maps normalized hosts to tenants through an in-memory cache. A
// steady-state request costs no catalog query. Once a Refresh has loaded
// the whole catalog, an unknown host costs none either; between a change
// (Invalidate) and the next Refresh, hosts are looked up one by one:
// concurrent misses for one host share one query, and unknown hosts are
// remembered for a short time, so a flood of made-up hosts cannot become
// a flood of queries.
type Resolver struct {
	lookup      Lookup
	negativeTTL time.Duration
	now         func() time.Time
	group       singleflight.Group

	mu      sync.RWMutex
	known   map[string]*Tenant
	unknown map[string]time.Time // host → when to forget it
	// epoch counts every Invalidate and every Refresh that has started;
	// floor is the epoch the cache's contents are known to be at least as
	// fresh as. An answer read under an older epoch than floor may predate
	// a committed change, so it is never installed: without this, a
	// refresh that read the catalog just before a suspend could put the
	// tenant back as active after the suspend had cleared the cache.
	epoch uint64
	floor uint64
	// complete says that known holds every host of the catalog: a Refresh
	// installed it and nothing has been invalidated since. A host missing
	// from a complete snapshot is unknown without asking the catalog, so
	// a flood of made-up hosts, each different, costs no query at all.
	complete bool
	// lastReload and tenants describe the last Refresh installed: when,
	// and its tenants by status (Stats).
	lastReload time.Time
	tenants    tenantCounts

	// Counters for Stats, kept outside mu: a cache hit takes only the
	// read lock, and must not write under it.
	hits, negativeHits, misses atomic.Uint64
	reloads, reloadFailures    atomic.Uint64
}

// tenantCounts counts a catalog's tenants by status.
type tenantCounts struct {
	byStatus map[Status]int
	removing int
}

// ResolverOption changes a resolver built by NewResolver.
type ResolverOption func(*Resolver)

// WithClock makes the resolver read the time from now instead of
// time.Now. The clock only decides when a remembered unknown host
// expires, so a test can step it past the negative TTL instead of
// sleeping through it.
func WithClock(now func() time.Time) ResolverOption {
	return func(r *Resolver) { r.now = now }
}

// NewResolver returns an empty resolver over lookup.
func NewResolver(lookup Lookup, negativeTTL time.Duration, opts ...ResolverOption) *Resolver {
	r := &Resolver{
		lookup:      lookup,
		negativeTTL: negativeTTL,
		now:         time.Now,
		known:       map[string]*Tenant{},
		unknown:     map[string]time.Time{},
	}
	for _, o := range opts {
		o(r)
	}
	return r
}

// LookupTimeout bounds how long Resolve waits for the catalog when its
// cache cannot answer and the caller's context has no deadline of its own.
// A request has one (server.request_timeout), which bounds its lookup
// instead: a lookup queues for a pooled connection behind the other
// requests' statements, so a tighter bound of its own refused requests
// that a busy, not stalled, database would have served (at 2 s and at
// 5 s, in TestIsolationUnderConcurrency under the race detector).
const LookupTimeout = 5 * time.Second

// maxUnknown bounds the negative cache; past it, entries are dropped
// wholesale, which at worst costs one query per host again.
const maxUnknown = 100_000

// Resolve returns the tenant for a normalized host, ErrUnknownHost, or a
// catalog error. The returned *Tenant is shared: do not modify it.
func (r *Resolver) Resolve(ctx context.Context, host string) (*Tenant, error) {
	r.mu.RLock()
	t, ok := r.known[host]
	until, neg := r.unknown[host]
	asked, complete := r.epoch, r.complete
	r.mu.RUnlock()
	if ok {
		r.hits.Add(1)
		return t, nil
	}
	if complete || (neg && r.now().Before(until)) {
		r.negativeHits.Add(1)
		return nil, ErrUnknownHost
	}
	r.misses.Add(1)

	// A miss asks the catalog, and waits for it no longer than the
	// caller's deadline (LookupTimeout without one): a stalled catalog
	// then costs a request a 503 (the error is a timeout), never a hang
	// and never a fallback to another tenant. Only here: a cache hit must
	// not pay for a timer.
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, LookupTimeout)
		defer cancel()
	}

	// Requests share a lookup only within one epoch: one that arrives
	// after a change must not be handed the answer to a query begun before
	// it.
	key := strconv.FormatUint(asked, 10) + " " + host
	ch := r.group.DoChan(key, func() (any, error) {
		// The query must not die with the one request that started it:
		// others are waiting on the same result. It keeps that request's
		// deadline, though, so a stalled catalog cannot hold it forever.
		deadline, _ := ctx.Deadline()
		lookupCtx, cancel := context.WithDeadline(context.WithoutCancel(ctx), deadline)
		defer cancel()
		t, err := r.lookup.ByHost(lookupCtx, host)
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.epoch != asked {
			// The cache was cleared or reloaded while we asked: our answer
			// may predate that change, so it is returned but not kept.
			return t, err
		}
		switch {
		case err == nil:
			r.known[host] = t
			delete(r.unknown, host)
		case errors.Is(err, ErrUnknownHost):
			if len(r.unknown) >= maxUnknown {
				r.unknown = map[string]time.Time{}
			}
			r.unknown[host] = r.now().Add(r.negativeTTL)
		}
		return t, err
	})
	// Each request waits for the shared answer only as long as its own
	// context allows: a lookup stuck on a stalled database (one whose
	// driver does not even watch the deadline) answers the waiting
	// requests with a timeout.
	var res singleflight.Result
	select {
	case res = <-ch:
	case <-ctx.Done():
		return nil, fmt.Errorf("resolve %s: %w", host, ctx.Err())
	}
	if res.Err != nil {
		return nil, res.Err
	}
	return res.Val.(*Tenant), nil
}

// Invalidate forgets everything cached; the next request per host asks
// the catalog again.
func (r *Resolver) Invalidate() {
	r.mu.Lock()
	r.known = map[string]*Tenant{}
	r.unknown = map[string]time.Time{}
	r.epoch++
	r.floor = r.epoch
	r.complete = false
	r.mu.Unlock()
}

// Refresh reloads the whole catalog into the cache with one query, so
// changes made by other processes are seen within the refresh interval.
// A refresh overtaken by a later Invalidate or Refresh discards what it
// read, since that may be older than what the cache now reflects.
func (r *Resolver) Refresh(ctx context.Context) error {
	r.mu.Lock()
	r.epoch++
	mine := r.epoch
	r.mu.Unlock()
	ts, err := r.lookup.List(ctx)
	if err != nil {
		r.reloadFailures.Add(1)
		return err
	}
	r.reloads.Add(1)
	known := make(map[string]*Tenant, len(ts)*2)
	counts := tenantCounts{byStatus: map[Status]int{}}
	for i := range ts {
		t := &ts[i]
		for _, h := range t.Hosts {
			known[h.Host] = t
		}
		if t.Removing {
			counts.removing++
		} else {
			counts.byStatus[t.Status]++
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if mine <= r.floor {
		return nil
	}
	r.known = known
	r.unknown = map[string]time.Time{}
	r.floor = mine
	r.complete = true
	r.lastReload, r.tenants = r.now(), counts
	return nil
}

// ResolverStats is a snapshot of a Resolver's counters, for metrics. The
// counters only grow.
type ResolverStats struct {
	// Hits are lookups the cache answered with a tenant; NegativeHits
	// those it answered with ErrUnknownHost (a complete snapshot, or a
	// host remembered as unknown); Misses those that asked the catalog.
	Hits, NegativeHits, Misses uint64
	// Reloads counts full catalog reads by Refresh that succeeded (a read
	// overtaken by a later change included), ReloadFailures those that
	// failed.
	Reloads, ReloadFailures uint64
	// LastReload is when a Refresh last installed the whole catalog; the
	// zero time before the first.
	LastReload time.Time
	// Tenants counts that catalog's tenants by status, and Removing those
	// whose removal has begun (counted there, not under their status).
	// Both describe the catalog as of LastReload, so reading them costs no
	// query; Tenants is nil before the first reload.
	Tenants  map[Status]int
	Removing int
}

// Stats returns the resolver's counters and the last reload's tenant
// counts.
func (r *Resolver) Stats() ResolverStats {
	st := ResolverStats{
		Hits:           r.hits.Load(),
		NegativeHits:   r.negativeHits.Load(),
		Misses:         r.misses.Load(),
		Reloads:        r.reloads.Load(),
		ReloadFailures: r.reloadFailures.Load(),
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	st.LastReload, st.Removing = r.lastReload, r.tenants.removing
	st.Tenants = maps.Clone(r.tenants.byStatus)
	return st
}

// Run refreshes the cache every interval until ctx ends, logging failures
// through onErr and keeping the last good cache.
func (r *Resolver) Run(ctx context.Context, interval time.Duration, onErr func(error)) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if err := r.Refresh(ctx); err != nil && ctx.Err() == nil {
				onErr(err)
			}
		}
	}
}
