package tenants

import (
	"context"
	"errors"
	"strconv"
	"sync"
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
}

// NewResolver returns an empty resolver over lookup.
func NewResolver(lookup Lookup, negativeTTL time.Duration) *Resolver {
	return &Resolver{
		lookup:      lookup,
		negativeTTL: negativeTTL,
		now:         time.Now,
		known:       map[string]*Tenant{},
		unknown:     map[string]time.Time{},
	}
}

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
		return t, nil
	}
	if complete || (neg && r.now().Before(until)) {
		return nil, ErrUnknownHost
	}

	// Requests share a lookup only within one epoch: one that arrives
	// after a change must not be handed the answer to a query begun before
	// it.
	key := strconv.FormatUint(asked, 10) + " " + host
	v, err, _ := r.group.Do(key, func() (any, error) {
		// The query must not die with the one request that started it:
		// others are waiting on the same result.
		ctx := context.WithoutCancel(ctx)
		t, err := r.lookup.ByHost(ctx, host)
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
	if err != nil {
		return nil, err
	}
	return v.(*Tenant), nil
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
		return err
	}
	known := make(map[string]*Tenant, len(ts)*2)
	for i := range ts {
		t := &ts[i]
		for _, h := range t.Hosts {
			known[h.Host] = t
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
	return nil
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
