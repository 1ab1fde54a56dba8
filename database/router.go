package database

import (
	"context"
	"database/sql"
	"errors"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"gorm.io/gorm"
)

// RouteKey names the tenant a statement's context belongs to, for routing
// only; tenants.RouteKey is the one the service uses. ok is false for a
// statement that belongs to no tenant (the catalog, migrations).
type RouteKey func(ctx context.Context) (key string, ok bool)

// Router is the pool GORM sees: a fixed set of groups of connections, each
// its own *sql.DB, and a rule that sends every statement and transaction
// to a group chosen from the tenant in its context.
//
// A tenant's home group is a hash of its key modulo the number of groups,
// so each connection serves a bounded share of the tenants and finds their
// statements already prepared (and their relations already open in its
// backend). When the home group has no free connection, a hot tenant (one
// among the last few its home group served) overflows to the first group
// in order from home that has one, so a tenant that takes all the load
// still uses the whole pool; a quiet tenant waits for its home for up to
// HomeWait, then for any connection. Callers that must wait queue in one
// queue for the whole pool, in order of arrival (wait).
//
// Routing decides which connection runs a statement, never what the
// statement may reach: nothing is SET on a connection for a tenant, and
// the scope callbacks qualify every table, so any connection is as safe as
// any other for any tenant.
type Router struct {
	groups []group
	key    RouteKey
	opts   RouterOptions
	// overflows counts statements and transactions sent away from a busy
	// home group: the measure of how often affinity gave way to load.
	overflows atomic.Uint64

	mu      sync.Mutex
	waiters []*waiter // in order of arrival
	// queued is len(waiters), read without mu on the hot path.
	queued atomic.Int64
	// waited holds the tenants (key hashes) that queued since windowAt,
	// up to one past SpreadTenants; crowded is set while more than that
	// many did, in this window or the last whole one.
	waited   map[uint64]struct{}
	windowAt time.Time
	crowded  bool
}

// RouterOptions tune how quiet tenants share connections.
type RouterOptions struct {
	// HomeWait is how long a quiet tenant waits for its home group before
	// it takes any (database.home_wait); 0 takes any at once.
	HomeWait time.Duration
	// SpreadTenants is how many distinct tenants may queue within
	// spreadWindow with quiet tenants still leaving home after HomeWait;
	// past it they wait at home only. 0: no limit.
	SpreadTenants int
}

// spreadWindow is how long the count of tenants that queued is kept
// before it starts again.
const spreadWindow = 10 * time.Second

// statementShapes is how many distinct statements a tenant's requests
// prepare on a connection (the users list, one user, insert, update,
// delete, and the catalog's own); a connection's statement cache holds
// every tenant's while tenants × statementShapes fit in it.
const statementShapes = 6

// SpreadTenantsFor is RouterOptions.SpreadTenants for a statement cache of
// capacity: as many tenants as every connection can keep prepared.
func SpreadTenantsFor(capacity int) int { return max(capacity/statementShapes, 1) }

var (
	_ gorm.ConnPool   = (*Router)(nil)
	_ gorm.TxBeginner = (*Router)(nil)
)

// NewRouter returns a router over groups (at least one), keyed by key; a
// nil key sends everything to the first group, with overflow. A group's
// connections must call Released as they come back to its pool (Open's
// do), or a caller that queues waits for a connection elsewhere, or its
// deadline.
func NewRouter(groups []*sql.DB, key RouteKey, o RouterOptions) *Router {
	if key == nil {
		key = func(context.Context) (string, bool) { return "", false }
	}
	r := &Router{groups: make([]group, len(groups)), key: key, opts: o, waited: map[uint64]struct{}{}}
	for i, db := range groups {
		r.groups[i].db = db
	}
	return r
}

// Groups returns the number of connection groups.
func (r *Router) Groups() int { return len(r.groups) }

// Group returns the index of the group ctx's statements go to first.
func (r *Router) Group(ctx context.Context) int {
	key, _ := r.key(ctx)
	return r.home(fnv1a(key))
}

// home is the index of the home group of a key hashed to h.
func (r *Router) home(h uint64) int { return int(h % uint64(len(r.groups))) }

// pick returns the group to run ctx's next statement or transaction on,
// waiting in the router's queue (wait) when the group it may take has no
// free connection; promised tells whether the group counts a promise for
// the caller, which done ends.
func (r *Router) pick(ctx context.Context) (g *group, promised bool) {
	if len(r.groups) == 1 {
		return &r.groups[0], false
	}
	key, keyed := r.key(ctx)
	h := fnv1a(key)
	start := r.home(h)
	home := &r.groups[start]
	// A tenant its home group has served just before is a busy one, and
	// may spread; statements without a tenant (catalog, migrations) may
	// always spread. Seen before recording, so a request never sees itself.
	hot := !keyed || home.seen(h)
	home.record(h)
	// With nobody queued, a free home connection is taken at once; with
	// callers queued, they come first.
	if r.queued.Load() == 0 && home.reserve() {
		return home, true
	}
	if hot {
		// Probe in a fixed order from home, so a hot tenant's overflow
		// lands on the same few neighbours and stays prepared there.
		for i := 1; i < len(r.groups); i++ {
			if g := &r.groups[(start+i)%len(r.groups)]; r.queued.Load() == 0 && g.reserve() {
				r.overflows.Add(1)
				return g, true
			}
		}
	}
	i, granted := r.wait(ctx, start, h, hot)
	if i != start {
		r.overflows.Add(1)
	}
	return &r.groups[i], granted
}

// waiter is a caller queued for a connection.
type waiter struct {
	home int
	// any is set when the caller may take any group's connection: a hot
	// tenant, a statement without one, or a quiet tenant that has waited
	// HomeWait for its home.
	any   bool
	grant chan int
}

func (w *waiter) accepts(i int) bool { return w.any || w.home == i }

// wait queues the caller until a group it accepts has a connection for it,
// and returns that group: the router's queue is one for the whole pool, so
// a caller never waits for its home while another connection stands idle
// for longer than HomeWait, and callers are served in order of arrival.
//
// A quiet tenant accepts only its home at first: spreading every collision
// over the pool at once would have each connection prepare every tenant's
// statements (measured at 10,000 tenants: 1,134 req/s overflowing against
// 2,327 waiting; docs/BENCHMARKS.md). After HomeWait it takes any group,
// as one shared pool would, so a busy home costs it at most HomeWait plus
// the wait for the next connection anywhere, not its home's whole queue.
// That holds while the tenants that queue are few enough for every
// connection to keep all their statements prepared (SpreadTenants); with
// more, leaving home after 2 ms halved throughput at 10,000 tenants
// (docs/BENCHMARKS.md), so quiet tenants then wait at home only.
//
// Connections tell the router when they come back (Released); a grant
// names the group whose connection is on its way back, and the group
// counts it as promised until the caller's method returns, so a caller
// arriving in between does not take it (reserve). If the caller's
// context ends, wait returns its home, not granted, and the statement
// fails there with the context's error.
func (r *Router) wait(ctx context.Context, home int, h uint64, hot bool) (int, bool) {
	began := time.Now()
	w := &waiter{home: home, any: hot, grant: make(chan int, 1)}
	r.mu.Lock()
	spread := !hot && r.spreadsLocked(h, began)
	w.any = w.any || (spread && r.opts.HomeWait <= 0)
	r.waiters = append(r.waiters, w)
	r.queued.Add(1)
	// A connection that came back before this caller queued went to
	// nobody: hand out what is free now.
	r.dispatchLocked()
	r.mu.Unlock()
	var promote <-chan time.Time
	if spread && r.opts.HomeWait > 0 {
		t := time.NewTimer(r.opts.HomeWait)
		defer t.Stop()
		promote = t.C
	}
	for {
		select {
		case i := <-w.grant:
			r.groups[i].queuedFor(time.Since(began))
			return i, true
		case <-promote:
			promote = nil
			r.mu.Lock()
			w.any = true
			r.dispatchLocked()
			r.mu.Unlock()
		case <-ctx.Done():
			r.mu.Lock()
			queued := r.removeLocked(w)
			r.mu.Unlock()
			if !queued {
				// Granted as the context ended: pass the group on.
				i := <-w.grant
				r.groups[i].promised.Add(-1)
				r.Released(i)
			}
			r.groups[home].queuedFor(time.Since(began))
			return home, false
		}
	}
}

// spreadsLocked counts the quiet tenant hashed to h as one that queued, and
// reports whether quiet tenants may leave home now: not while more
// distinct tenants than SpreadTenants queued, in this window or the one
// before.
func (r *Router) spreadsLocked(h uint64, now time.Time) bool {
	if r.opts.SpreadTenants <= 0 {
		return true
	}
	if now.Sub(r.windowAt) >= spreadWindow {
		// A window is counted from a wait to the first wait after it,
		// so a pause in the load (no waits) neither clears nor sets
		// crowded: only a window with few tenants queuing clears it.
		r.crowded = len(r.waited) > r.opts.SpreadTenants
		clear(r.waited)
		r.windowAt = now
	}
	if len(r.waited) <= r.opts.SpreadTenants {
		r.waited[h] = struct{}{}
	}
	if len(r.waited) > r.opts.SpreadTenants {
		r.crowded = true
	}
	return !r.crowded
}

// Released is called as one of group i's connections comes back to its
// pool (see releasingConn): the first queued caller that accepts i gets it.
func (r *Router) Released(i int) {
	if r.queued.Load() == 0 {
		return
	}
	r.mu.Lock()
	for _, w := range r.waiters {
		if w.accepts(i) {
			r.grantLocked(w, i)
			break
		}
	}
	r.mu.Unlock()
}

// dispatchLocked grants every group's free connections, as many as each
// has, to the first queued callers that accept them.
func (r *Router) dispatchLocked() {
	for i := range r.groups {
		if len(r.waiters) == 0 {
			return
		}
		free := r.groups[i].room()
		for k := 0; free > 0 && k < len(r.waiters); {
			if w := r.waiters[k]; w.accepts(i) {
				r.grantLocked(w, i)
				free--
				continue
			}
			k++
		}
	}
}

func (r *Router) grantLocked(w *waiter, i int) {
	r.removeLocked(w)
	r.groups[i].promised.Add(1)
	w.grant <- i
}

// removeLocked takes w out of the queue, keeping the others' order; it
// reports whether w was still queued.
func (r *Router) removeLocked(w *waiter) bool {
	for k, x := range r.waiters {
		if x == w {
			r.waiters = append(r.waiters[:k], r.waiters[k+1:]...)
			r.queued.Add(-1)
			return true
		}
	}
	return false
}

// Queued returns how many callers wait in the router's queue now.
func (r *Router) Queued() int { return int(r.queued.Load()) }

// group is one *sql.DB of the router and the tenants it served last.
type group struct {
	db *sql.DB
	// recent holds the key hashes of the last len(recent) statements whose
	// home this group is; a tenant found there while the group is busy is
	// taking a large part of the group's work.
	recent [recentPicks]atomic.Uint64
	next   atomic.Uint32
	// promised counts callers this group was promised to (reserve, or a
	// grant of the queue) whose method has not returned yet: a connection
	// free or coming back for one of them is not free for anybody else.
	promised atomic.Int64
	// waits and waited count the callers that queued in the router for
	// this group (or, given up, for their home) and the time they spent
	// there; GroupStats adds them to database/sql's own wait counts, so
	// the pool's wait metrics see both.
	waits  atomic.Int64
	waited atomic.Int64 // nanoseconds
}

func (g *group) queuedFor(d time.Duration) {
	g.waits.Add(1)
	g.waited.Add(int64(d))
}

// stats is g's pool statistics with the router's queue waits added.
func (g *group) stats() sql.DBStats {
	s := g.db.Stats()
	s.WaitCount += g.waits.Load()
	s.WaitDuration += time.Duration(g.waited.Load())
	return s
}

// done ends a caller's use of g's methods, and the promise pick made it.
func (g *group) done(promised bool) {
	if promised {
		g.promised.Add(-1)
	}
}

// reserve promises one of g's connections to the caller if one is free,
// counting the promise before looking, so that two callers never both take
// the last free connection: the loser would wait inside g for as long as
// the winner holds it, a transaction blocked on a lock included, while
// other groups stand free (seen in CI before promises covered this path).
func (g *group) reserve() bool {
	g.promised.Add(1)
	if g.room() >= 0 {
		return true
	}
	g.promised.Add(-1)
	return false
}

// room is how many connections g can hand out without waiting: idle ones
// and room to open more, less those promised.
func (g *group) room() int {
	s := g.db.Stats()
	if s.MaxOpenConnections <= 0 {
		return math.MaxInt32
	}
	return s.MaxOpenConnections - s.InUse - int(g.promised.Load())
}

// recentPicks is how many of a group's last statements decide whether a
// tenant is hot. With a uniform load over n tenants per group, a quiet
// tenant is taken for hot with a chance of about recentPicks/n.
const recentPicks = 4

func (g *group) seen(h uint64) bool {
	for i := range g.recent {
		if g.recent[i].Load() == h {
			return true
		}
	}
	return false
}

func (g *group) record(h uint64) {
	g.recent[g.next.Add(1)%recentPicks].Store(h)
}

// fnv1a is 64-bit FNV-1a, inlined so that routing allocates nothing.
func fnv1a(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

// PrepareContext prepares query on ctx's group.
func (r *Router) PrepareContext(ctx context.Context, query string) (*sql.Stmt, error) {
	g, promised := r.pick(ctx)
	defer g.done(promised)
	return g.db.PrepareContext(ctx, query)
}

// ExecContext runs query on ctx's group.
func (r *Router) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	g, promised := r.pick(ctx)
	defer g.done(promised)
	return g.db.ExecContext(ctx, query, args...)
}

// QueryContext runs query on ctx's group.
func (r *Router) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	g, promised := r.pick(ctx)
	defer g.done(promised)
	return g.db.QueryContext(ctx, query, args...)
}

// QueryRowContext runs query on ctx's group.
func (r *Router) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	g, promised := r.pick(ctx)
	defer g.done(promised)
	return g.db.QueryRowContext(ctx, query, args...)
}

// BeginTx starts a transaction on one connection of ctx's group; every
// statement of the transaction then runs on that connection.
func (r *Router) BeginTx(ctx context.Context, opts *sql.TxOptions) (*sql.Tx, error) {
	g, promised := r.pick(ctx)
	defer g.done(promised)
	return g.db.BeginTx(ctx, opts)
}

// PingContext checks that the database answers, through ctx's group.
func (r *Router) PingContext(ctx context.Context) error {
	g, promised := r.pick(ctx)
	defer g.done(promised)
	return g.db.PingContext(ctx)
}

// Ping is PingContext without a deadline; gorm.Open calls it.
func (r *Router) Ping() error { return r.PingContext(context.Background()) }

// Overflows returns how many statements and transactions have run outside
// their home group because it was busy.
func (r *Router) Overflows() uint64 { return r.overflows.Load() }

// Stats adds up every group's pool statistics; the waits include those in
// the router's queue.
func (r *Router) Stats() sql.DBStats {
	var t sql.DBStats
	for i := range r.groups {
		s := r.groups[i].stats()
		t.MaxOpenConnections += s.MaxOpenConnections
		t.OpenConnections += s.OpenConnections
		t.InUse += s.InUse
		t.Idle += s.Idle
		t.WaitCount += s.WaitCount
		t.WaitDuration += s.WaitDuration
		t.MaxIdleClosed += s.MaxIdleClosed
		t.MaxIdleTimeClosed += s.MaxIdleTimeClosed
		t.MaxLifetimeClosed += s.MaxLifetimeClosed
	}
	return t
}

// GroupStats returns each group's pool statistics, in group order; a
// group's waits include the router's queue waits that ended with it.
func (r *Router) GroupStats() []sql.DBStats {
	out := make([]sql.DBStats, len(r.groups))
	for i := range r.groups {
		out[i] = r.groups[i].stats()
	}
	return out
}

// Close closes every group; it is safe to call more than once.
func (r *Router) Close() error {
	var errs []error
	for i := range r.groups {
		errs = append(errs, r.groups[i].db.Close())
	}
	return errors.Join(errs...)
}

// Conn returns a dedicated connection of ctx's group, for work that needs
// one session throughout; the caller must Close it.
func (r *Router) Conn(ctx context.Context) (*sql.Conn, error) {
	g, promised := r.pick(ctx)
	defer g.done(promised)
	return g.db.Conn(ctx)
}
