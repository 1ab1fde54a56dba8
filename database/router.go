package database

import (
	"context"
	"database/sql"
	"errors"

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
// one, the statement overflows to the next group in order that can, so a
// tenant that takes all the load still uses the whole pool; only when
// every group is busy does it wait, in its home group.
//
// Routing decides which connection runs a statement, never what the
// statement may reach: nothing is SET on a connection for a tenant, and
// the scope callbacks qualify every table, so any connection is as safe as
// any other for any tenant.
type Router struct {
	groups []*sql.DB
	key    RouteKey
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
	return &Router{groups: groups, key: key}
}

// Groups returns the number of connection groups.
func (r *Router) Groups() int { return len(r.groups) }

// Group returns the index of the group ctx's statements go to first.
func (r *Router) Group(ctx context.Context) int {
	if len(r.groups) == 1 {
		return 0
	}
	key, _ := r.key(ctx)
	return int(fnv1a(key) % uint64(len(r.groups)))
}

// pick returns the group to run ctx's next statement or transaction on.
func (r *Router) pick(ctx context.Context) *sql.DB {
	home := r.Group(ctx)
	if len(r.groups) == 1 || hasRoom(r.groups[home]) {
		return r.groups[home]
	}
	// Probe in a fixed order from home, so a hot tenant's overflow lands
	// on the same few neighbours and stays prepared there.
	for i := 1; i < len(r.groups); i++ {
		g := r.groups[(home+i)%len(r.groups)]
		if hasRoom(g) {
			return g
		}
	}
	return r.groups[home]
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
	return r.pick(ctx).PrepareContext(ctx, query)
}

// ExecContext runs query on ctx's group.
func (r *Router) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	return r.pick(ctx).ExecContext(ctx, query, args...)
}

// QueryContext runs query on ctx's group.
func (r *Router) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	return r.pick(ctx).QueryContext(ctx, query, args...)
}

// QueryRowContext runs query on ctx's group.
func (r *Router) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	return r.pick(ctx).QueryRowContext(ctx, query, args...)
}

// BeginTx starts a transaction on one connection of ctx's group; every
// statement of the transaction then runs on that connection.
func (r *Router) BeginTx(ctx context.Context, opts *sql.TxOptions) (*sql.Tx, error) {
	return r.pick(ctx).BeginTx(ctx, opts)
}

// PingContext checks that the database answers, through ctx's group.
func (r *Router) PingContext(ctx context.Context) error {
	return r.pick(ctx).PingContext(ctx)
}

// Ping is PingContext without a deadline; gorm.Open calls it.
func (r *Router) Ping() error { return r.PingContext(context.Background()) }

// Stats adds up every group's pool statistics.
func (r *Router) Stats() sql.DBStats {
	var t sql.DBStats
	for _, g := range r.groups {
		s := g.Stats()
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
	for i, g := range r.groups {
		out[i] = g.Stats()
	}
	return out
}

// Close closes every group; it is safe to call more than once.
func (r *Router) Close() error {
	var errs []error
	for _, g := range r.groups {
		errs = append(errs, g.Close())
	}
	return errors.Join(errs...)
}
