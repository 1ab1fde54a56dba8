package database

import (
	"context"
	"database/sql"
	"errors"
	"sync/atomic"

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
// backend). When the home group has no free connection and cannot open
// one, a quiet tenant waits for it, while a hot one (a tenant among the
// last few its home group served) overflows to the first group in order
// from home that has room, so a tenant that takes all the load still uses
// the whole pool. When every group is busy a hot tenant queues in the
// group with the fewest callers waiting.
//
// Routing decides which connection runs a statement, never what the
// statement may reach: nothing is SET on a connection for a tenant, and
// the scope callbacks qualify every table, so any connection is as safe as
// any other for any tenant.
type Router struct {
	groups []group
	key    RouteKey
	// overflows counts statements and transactions sent away from a busy
	// home group: the measure of how often affinity gave way to load.
	overflows atomic.Uint64
}

var (
	_ gorm.ConnPool   = (*Router)(nil)
	_ gorm.TxBeginner = (*Router)(nil)
)

// NewRouter returns a router over groups (at least one), keyed by key; a
// nil key sends everything to the first group, with overflow.
func NewRouter(groups []*sql.DB, key RouteKey) *Router {
	if key == nil {
		key = func(context.Context) (string, bool) { return "", false }
	}
	r := &Router{groups: make([]group, len(groups)), key: key}
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

// pick returns the group to run ctx's next statement or transaction on.
func (r *Router) pick(ctx context.Context) *group {
	if len(r.groups) == 1 {
		return &r.groups[0]
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
	if !hot || hasRoom(home.db) {
		// A quiet tenant waits for its home group rather than overflow:
		// at thousands of tenants a home group is busy for about half of
		// all requests, and overflowing them all would have every
		// connection prepare every tenant's statements again (measured:
		// 1,134 req/s overflowing against 2,327 waiting, at 10,000
		// tenants; docs/BENCHMARKS.md). A second choice of group was
		// measured too, and lost at 10,000 tenants.
		return home
	}
	// Probe in a fixed order from home, so a hot tenant's overflow lands
	// on the same few neighbours and stays prepared there. If every group
	// is busy, queue where the fewest callers already wait, as one shared
	// pool would let the first free connection serve the next caller;
	// waiting for one busy connection among many would make the tail as
	// long as that connection's slowest statement.
	best := home
	for i := 1; i < len(r.groups); i++ {
		g := &r.groups[(start+i)%len(r.groups)]
		if hasRoom(g.db) {
			best = g
			break
		}
		if g.pending.Load() < best.pending.Load() {
			best = g
		}
	}
	if best != home {
		r.overflows.Add(1)
	}
	return best
}

// group is one *sql.DB of the router and the tenants it served last.
type group struct {
	db *sql.DB
	// recent holds the key hashes of the last len(recent) statements whose
	// home this group is; a tenant found there while the group is busy is
	// taking a large part of the group's work.
	recent [recentPicks]atomic.Uint64
	next   atomic.Uint32
	// pending counts callers inside one of db's methods: waiting for a
	// connection, or (Exec) running on one.
	pending atomic.Int64
}

// enter and leave bracket a caller's time inside one of g.db's methods.
func (g *group) enter() { g.pending.Add(1) }
func (g *group) leave() { g.pending.Add(-1) }

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

// hasRoom reports whether g can hand out a connection without waiting: an
// idle one, or room to open one. It is a snapshot, so two callers may both
// see the last free connection; the loser waits briefly in that group,
// which costs latency, never correctness.
func hasRoom(g *sql.DB) bool {
	s := g.Stats()
	return s.MaxOpenConnections <= 0 || s.InUse < s.MaxOpenConnections
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
	g := r.pick(ctx)
	g.enter()
	defer g.leave()
	return g.db.PrepareContext(ctx, query)
}

// ExecContext runs query on ctx's group.
func (r *Router) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	g := r.pick(ctx)
	g.enter()
	defer g.leave()
	return g.db.ExecContext(ctx, query, args...)
}

// QueryContext runs query on ctx's group.
func (r *Router) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	g := r.pick(ctx)
	g.enter()
	defer g.leave()
	return g.db.QueryContext(ctx, query, args...)
}

// QueryRowContext runs query on ctx's group.
func (r *Router) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	g := r.pick(ctx)
	g.enter()
	defer g.leave()
	return g.db.QueryRowContext(ctx, query, args...)
}

// BeginTx starts a transaction on one connection of ctx's group; every
// statement of the transaction then runs on that connection.
func (r *Router) BeginTx(ctx context.Context, opts *sql.TxOptions) (*sql.Tx, error) {
	g := r.pick(ctx)
	g.enter()
	defer g.leave()
	return g.db.BeginTx(ctx, opts)
}

// PingContext checks that the database answers, through ctx's group.
func (r *Router) PingContext(ctx context.Context) error {
	g := r.pick(ctx)
	g.enter()
	defer g.leave()
	return g.db.PingContext(ctx)
}

// Ping is PingContext without a deadline; gorm.Open calls it.
func (r *Router) Ping() error { return r.PingContext(context.Background()) }

// Overflows returns how many statements and transactions have run outside
// their home group because it was busy.
func (r *Router) Overflows() uint64 { return r.overflows.Load() }

// Stats adds up every group's pool statistics.
func (r *Router) Stats() sql.DBStats {
	var t sql.DBStats
	for i := range r.groups {
		s := r.groups[i].db.Stats()
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

// GroupStats returns each group's pool statistics, in group order.
func (r *Router) GroupStats() []sql.DBStats {
	out := make([]sql.DBStats, len(r.groups))
	for i := range r.groups {
		out[i] = r.groups[i].db.Stats()
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
	g := r.pick(ctx)
	g.enter()
	defer g.leave()
	return g.db.Conn(ctx)
}
