package database

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"log/slog"

	"gorm.io/gorm"

	"tenantry/fault"
)

// PlacementOf names the placement ctx's statements belong to: the
// tenant's database, or "" for the control database. tenants.PlacementKey
// is the one the service uses.
type PlacementOf func(ctx context.Context) string

// ErrUnknownPlacement is a statement for a placement this process has no
// pool for: a tenant placed on a database missing from its configuration
// (an instance started with an older config than the one that placed the
// tenant). It is 503, and never a fall-back to another database, where a
// schema of the same name would be someone else's business.
var ErrUnknownPlacement = &fault.Error{Kind: fault.Unavailable, Code: "database-unknown", Title: "Database unavailable",
	Message: "The database holding this workspace is not available; retry after the number of seconds in Retry-After."}

type placementKey struct{}

// OnPlacement returns a context whose statements go to the placement
// called name ("" for the control database) whatever tenant ctx carries:
// for the catalog's own work on a tenant's database (provisioning,
// migrations, removal, moves), which runs without a tenant in its context.
func OnPlacement(ctx context.Context, name string) context.Context {
	return context.WithValue(ctx, placementKey{}, name)
}

// PlacementFrom returns the placement OnPlacement set on ctx, if any.
func PlacementFrom(ctx context.Context) (string, bool) {
	name, ok := ctx.Value(placementKey{}).(string)
	return name, ok
}

// Placements is the pool GORM sees when tenants live on several databases:
// one Router per placement, and a rule that sends every statement and
// transaction to the Router of its placement (OnPlacement, else the
// PlacementOf the tenant in its context, else the control database).
// Within a placement the Router picks the tenant's home group as before.
//
// Like the Router, it decides where a statement runs, never what it may
// reach: the scope qualifies every statement with its tenant's schema, and
// no two tenants share a schema name on any database (the catalog's
// unique index), so a statement sent to the wrong database finds no table
// (ErrGone) rather than another tenant's.
type Placements struct {
	control string
	names   []string
	pools   map[string]*Router
	of      PlacementOf
	// unknown answers every statement for a placement not configured here.
	unknown *Router
	// health follows each database other than the control one (whose
	// Health is the logger's own, shared with the readiness check).
	health map[string]*Health
}

var (
	_ gorm.ConnPool   = (*Placements)(nil)
	_ gorm.TxBeginner = (*Placements)(nil)
)

// NewPlacements returns the pool over routers, keyed by placement name;
// control names the control database, which also answers to "". of may be
// nil: then only OnPlacement leaves the control database.
func NewPlacements(control string, names []string, routers map[string]*Router, of PlacementOf) *Placements {
	if of == nil {
		of = func(context.Context) string { return "" }
	}
	pools := make(map[string]*Router, len(routers)+1)
	for name, r := range routers {
		pools[name] = r
	}
	pools[""] = routers[control]
	return &Placements{
		control: control, names: names, pools: pools, of: of,
		unknown: NewRouter([]*sql.DB{sql.OpenDB(unknownConnector{})}, nil, RouterOptions{}),
	}
}

// logger gives l a Health per placement besides the control database,
// logging as that database, and one for statements of placements not
// configured here: those fail without reaching any database, and counted
// against the control database they would report it down.
func (p *Placements) logger(l *gormLogger, log *slog.Logger) *gormLogger {
	p.health = make(map[string]*Health, len(p.names))
	for _, name := range p.names[1:] {
		p.health[name] = NewHealth(log.With("database", name))
	}
	unknown := NewHealth(log.With("database", "(not configured)"))
	l.healthOf = func(ctx context.Context) *Health {
		name := p.placement(ctx)
		if h, ok := p.health[name]; ok {
			return h
		}
		if _, ok := p.pools[name]; !ok {
			return unknown
		}
		return l.health
	}
	return l
}

// Health returns the Health of the placement called name, if it is one
// besides the control database (whose Health is the one given to Open).
func (p *Placements) Health(name string) (*Health, bool) {
	h, ok := p.health[name]
	return h, ok
}

// Control returns the control database's name.
func (p *Placements) Control() string { return p.control }

// Names returns every placement's name, the control database first.
func (p *Placements) Names() []string { return p.names }

// Router returns the pool of the placement called name ("" for the
// control database).
func (p *Placements) Router(name string) (*Router, bool) {
	r, ok := p.pools[name]
	return r, ok
}

// Name returns the configured name of the placement ctx's statements go to.
func (p *Placements) Name(ctx context.Context) string {
	name := p.placement(ctx)
	if name == "" {
		return p.control
	}
	return name
}

func (p *Placements) placement(ctx context.Context) string {
	if name, ok := PlacementFrom(ctx); ok {
		return name
	}
	return p.of(ctx)
}

func (p *Placements) pick(ctx context.Context) *Router {
	if r, ok := p.pools[p.placement(ctx)]; ok {
		return r
	}
	return p.unknown
}

// PrepareContext prepares query on ctx's placement.
func (p *Placements) PrepareContext(ctx context.Context, query string) (*sql.Stmt, error) {
	return p.pick(ctx).PrepareContext(ctx, query)
}

// ExecContext runs query on ctx's placement.
func (p *Placements) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	return p.pick(ctx).ExecContext(ctx, query, args...)
}

// QueryContext runs query on ctx's placement.
func (p *Placements) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	return p.pick(ctx).QueryContext(ctx, query, args...)
}

// QueryRowContext runs query on ctx's placement.
func (p *Placements) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	return p.pick(ctx).QueryRowContext(ctx, query, args...)
}

// BeginTx starts a transaction on ctx's placement.
func (p *Placements) BeginTx(ctx context.Context, opts *sql.TxOptions) (*sql.Tx, error) {
	return p.pick(ctx).BeginTx(ctx, opts)
}

// PingContext checks that ctx's placement answers (the control database
// for a context that names none).
func (p *Placements) PingContext(ctx context.Context) error { return p.pick(ctx).PingContext(ctx) }

// Ping checks the control database; gorm.Open calls it.
func (p *Placements) Ping() error { return p.PingContext(context.Background()) }

// Stats returns the control database's pool statistics.
func (p *Placements) Stats() sql.DBStats { return p.pools[""].Stats() }

// Close closes every placement's pool.
func (p *Placements) Close() error {
	errs := []error{p.unknown.Close()}
	for _, name := range p.names {
		errs = append(errs, p.pools[name].Close())
	}
	return errors.Join(errs...)
}

// unknownConnector is the driver behind Placements.unknown: every
// connection attempt fails with ErrUnknownPlacement, so a statement for a
// placement this process does not know fails the way a database that is
// down does (503), whatever method GORM used to send it.
type unknownConnector struct{}

func (unknownConnector) Connect(context.Context) (driver.Conn, error) {
	return nil, fmt.Errorf("no pool for this placement: %w", ErrUnknownPlacement)
}

func (unknownConnector) Driver() driver.Driver { return unknownDriver{} }

type unknownDriver struct{}

func (unknownDriver) Open(string) (driver.Conn, error) {
	return nil, fmt.Errorf("no pool for this placement: %w", ErrUnknownPlacement)
}

// Conn returns a dedicated connection to the placement called name ("" for
// the control database), for work that needs one session throughout or
// the driver's own connection (a move's COPY through pgx: Conn.Raw). The
// caller must Close it, which returns it to its pool.
func (p *Placements) Conn(ctx context.Context, name string) (*sql.Conn, error) {
	r, ok := p.pools[name]
	if !ok {
		return nil, fmt.Errorf("placement %q: %w", name, ErrUnknownPlacement)
	}
	return r.Conn(ctx)
}
