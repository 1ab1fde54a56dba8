package database

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/glebarez/sqlite"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"

	"tenantry/config"
	"tenantry/migrations"
)

// Option adjusts how Open builds the pool.
type Option func(*options)

type options struct {
	route RouteKey
	// placements are the databases besides the control one, and where is
	// the rule that picks one for a statement (WithPlacements).
	placements []config.Placement
	where      PlacementOf
	health     *Health
	slow       time.Duration
	// slowSet tells LogSlowerThan(0), which logs no statement as slow,
	// from no LogSlowerThan at all, which keeps slowStatement.
	slowSet bool
}

// RouteBy makes the pool route each statement by key (see Router); without
// it every statement goes to the first group, with overflow. The key also
// tells tenant statements apart for Classify's ErrGone.
func RouteBy(key RouteKey) Option { return func(o *options) { o.route = key } }

// WithPlacements gives the pool a Router per database of placements
// besides the control one, and sends each statement to the one of its
// placement (see Placements); where names it from the statement's context.
// Their pools are opened without a connection: a placement that is down
// delays nothing at start-up, and fails only its own tenants' statements.
func WithPlacements(placements []config.Placement, where PlacementOf) Option {
	return func(o *options) { o.placements, o.where = placements, where }
}

// WithHealth makes the pool report every statement's outcome to h, which
// logs the database's changes of state; without it Open makes its own.
// Pass the Health the readiness check uses, so both feed one log.
func WithHealth(h *Health) Option { return func(o *options) { o.health = h } }

// LogSlowerThan makes the pool log every statement slower than d at WARN
// (log.slow_statement), with its placeholders, never its values; d <= 0
// logs no statement as slow. Without it the threshold is 500 ms.
func LogSlowerThan(d time.Duration) Option { return func(o *options) { o.slow, o.slowSet = d, true } }

// Open connects to the configured database, checks that it answers, and
// returns the pool with its dialect. GORM's error translation is on, so a
// unique violation is gorm.ErrDuplicatedKey on both databases, and every
// error of the pool is classified (Classify): a database that is down, a
// statement out of time, a deadlock are *fault.Error values of their own
// kind by the time a caller sees them.
//
// A PostgreSQL server that does not answer yet is retried with backoff
// for database.connect_timeout (see connect), so that the service and its
// database may start in any order.
//
// The pool is a Router: on PostgreSQL database.max_open_conns connections
// split into Config.Groups() groups, each a *sql.DB of its own with a
// statement cache of Config.StatementCache() per connection; on SQLite one
// group of one connection.
func Open(ctx context.Context, c config.Database, log *slog.Logger, opts ...Option) (*gorm.DB, migrations.Dialect, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	var (
		first   *Router
		dialect migrations.Dialect
		err     error
	)
	switch c.Driver {
	case "postgres":
		dialect = migrations.Postgres
		first, err = postgresRouter(c, o.route)
	case "sqlite":
		dialect = migrations.SQLite
		first, err = sqliteRouter(c, o.route)
	default:
		return nil, "", fmt.Errorf("database.driver %q: want sqlite or postgres", c.Driver)
	}
	if err != nil {
		return nil, "", err
	}
	if c.Name == "" {
		c.Name = config.DefaultPlacement
	}
	routers := map[string]*Router{c.Name: first}
	names := []string{c.Name}
	closeAll := func() {
		for _, r := range routers {
			_ = r.Close()
		}
	}
	for _, pl := range o.placements {
		if dialect != migrations.Postgres {
			closeAll()
			return nil, "", fmt.Errorf("databases: placements need database.driver postgres")
		}
		pc := c
		pc.DSN = pl.DSN
		pr, err := postgresRouter(pc, o.route)
		if err != nil {
			closeAll()
			return nil, "", fmt.Errorf("databases %s: %w", pl.Name, err)
		}
		routers[pl.Name] = pr
		names = append(names, pl.Name)
	}
	router := NewPlacements(c.Name, names, routers, o.where)
	// Before GORM: its SQLite dialector queries the version as it opens,
	// and GORM logs a failure there as "failed to initialize database".
	if err := connect(ctx, router.PingContext, c, log); err != nil {
		_ = router.Close()
		return nil, "", err
	}
	health := o.health
	if health == nil {
		health = NewHealth(log)
	}
	slow := slowStatement
	if o.slowSet {
		slow = o.slow
	}
	var dialector gorm.Dialector
	if dialect == migrations.Postgres {
		dialector = pgDialector{postgres.New(postgres.Config{Conn: router}).(*postgres.Dialector)}
	} else {
		dialector = sqliteDialector{&sqlite.Dialector{Conn: router}}
	}
	db, err := gorm.Open(dialector, &gorm.Config{
		TranslateError: true,
		// A single INSERT, UPDATE or DELETE is atomic on its own; GORM's
		// default BEGIN/COMMIT around it would triple its round trips.
		// Anything that needs more than one statement opens its own
		// transaction (Transaction), as the catalog does.
		SkipDefaultTransaction: true,
		// Microseconds in UTC: what PostgreSQL keeps, so a value read back
		// equals the value the API acknowledged.
		NowFunc: func() time.Time { return time.Now().UTC().Truncate(time.Microsecond) },
		Logger:  router.logger(newLogger(log, health, slow), log),
		// connect has pinged already, with retries and a deadline.
		DisableAutomaticPing: true,
	})
	if err == nil {
		err = classifier{route: o.route}.register(db)
	}
	if err != nil {
		_ = router.Close()
		return nil, "", fmt.Errorf("open %s: %w", c.Driver, err)
	}
	return db, dialect, nil
}

// pgDialector and sqliteDialector are GORM's dialectors with every error
// they translate classified too: GORM passes each error it records
// (statements, BEGIN, COMMIT) through Translate, so this is the one place
// that sees them all. They embed the dialector itself, so every optional
// interface GORM looks for (savepoints, the migrator) stays available.
// Translate has no context, so it never reads a missing table as a tenant
// gone; the classifier callback, which has the statement's, does.
type (
	pgDialector     struct{ *postgres.Dialector }
	sqliteDialector struct{ *sqlite.Dialector }
)

// Translate maps a unique violation to gorm.ErrDuplicatedKey, as GORM's
// dialector does, and classifies the rest.
func (d pgDialector) Translate(err error) error { return classify(d.Dialector.Translate(err), false) }

// Translate maps a unique violation to gorm.ErrDuplicatedKey, as GORM's
// dialector does, and classifies the rest.
func (d sqliteDialector) Translate(err error) error {
	return classify(d.Dialector.Translate(err), false)
}

// postgresRouter opens c's groups and the Router over them; each group's
// connections tell the router when they come back to their pool.
func postgresRouter(c config.Database, route RouteKey) (*Router, error) {
	var r *Router
	// r is set before any connection exists: OpenDB connects lazily.
	groups, err := postgresGroups(c, func(i int) { r.Released(i) })
	if err != nil {
		return nil, err
	}
	r = NewRouter(groups, route, RouterOptions{HomeWait: c.HomeWait, SpreadTenants: SpreadTenantsFor(c.StatementCache())})
	return r, nil
}

// postgresGroups opens Groups() pools that share max_open_conns and
// max_idle_conns between them as evenly as whole connections allow.
func postgresGroups(c config.Database, back func(group int)) ([]*sql.DB, error) {
	pc, err := pgx.ParseConfig(c.DSN)
	if err != nil {
		return nil, fmt.Errorf("database.dsn: %w", err)
	}
	pc.StatementCacheCapacity = c.StatementCache()
	// Startup parameters, not SETs: they hold for the connection's life
	// and say nothing about any tenant.
	if c.PlanCacheMode != "" {
		pc.RuntimeParams["plan_cache_mode"] = c.PlanCacheMode
	}
	// Backstops under the request deadline: a statement whose client
	// stopped waiting (its connection lost, the cancel request lost)
	// still ends, and a lock wait ends before the request's deadline.
	if c.StatementTimeout > 0 {
		pc.RuntimeParams["statement_timeout"] = milliseconds(c.StatementTimeout)
		// A transaction left open between statements (a stuck goroutine,
		// a bug) would hold its row locks, and block a tenant's removal,
		// for ever; tenantry's own transactions pause between statements
		// for milliseconds. The server ends such a session instead.
		pc.RuntimeParams["idle_in_transaction_session_timeout"] = milliseconds(IdleInTransaction(c.StatementTimeout))
	}
	if c.LockTimeout > 0 {
		pc.RuntimeParams["lock_timeout"] = milliseconds(c.LockTimeout)
	}
	n := c.Groups()
	groups := make([]*sql.DB, n)
	for i := range groups {
		g := sql.OpenDB(releasingConnector{Connector: stdlib.GetConnector(*pc.Copy()), back: func() { back(i) }})
		g.SetMaxOpenConns(share(c.MaxOpenConns, n, i))
		g.SetMaxIdleConns(share(c.MaxIdleConns, n, i))
		g.SetConnMaxLifetime(staggered(c.ConnMaxLifetime, n, i))
		groups[i] = g
	}
	return groups, nil
}

// staggered spreads the groups' connection lifetimes over [life, 1.5·life):
// connections opened together at start-up would otherwise all expire, and
// all start cold again (preparing every statement of their share), at the
// same moment.
func staggered(life time.Duration, n, i int) time.Duration {
	if life <= 0 || n <= 1 {
		return life
	}
	return life + life*time.Duration(i)/time.Duration(2*n)
}

// milliseconds renders d as PostgreSQL reads a timeout setting without a
// unit, rounded up: a sub-millisecond timeout must not become 0, which
// means none.
func milliseconds(d time.Duration) string {
	return strconv.FormatInt(int64((d+time.Millisecond-1)/time.Millisecond), 10)
}

// IdleInTransaction is the idle_in_transaction_session_timeout set
// with a statement_timeout: four times it (a minute at the default).
func IdleInTransaction(statementTimeout time.Duration) time.Duration { return 4 * statementTimeout }

// share is group i's part of total split over n groups.
func share(total, n, i int) int {
	s := total / n
	if i < total%n {
		s++
	}
	return s
}

// sqliteRouter opens the one connection SQLite is used through. One writer
// at a time is SQLite's model; a single connection makes that explicit and
// avoids SQLITE_BUSY on read-then-write transactions. WAL still lets the
// file be read by other processes.
func sqliteRouter(c config.Database, route RouteKey) (*Router, error) {
	g, err := sql.Open(sqlite.DriverName, sqliteDSN(c.DSN, c.LockTimeout))
	if err != nil {
		return nil, fmt.Errorf("open sqlite: %w", err)
	}
	g.SetMaxOpenConns(1)
	g.SetMaxIdleConns(1)
	g.SetConnMaxLifetime(c.ConnMaxLifetime)
	return NewRouter([]*sql.DB{g}, route, RouterOptions{}), nil
}

// sqliteDSN adds the pragmas tenantry relies on unless the DSN sets them.
// busy_timeout, how long a writer waits for another process's write lock,
// is database.lock_timeout: that wait does not watch the request's
// context, so it must end before the request's deadline (config checks
// that it is below server.request_timeout) for a locked database to
// answer 503 in time.
func sqliteDSN(dsn string, busy time.Duration) string {
	var add []string
	busyPragma := "busy_timeout(" + milliseconds(busy) + ")"
	for _, p := range []string{busyPragma, "journal_mode(WAL)", "foreign_keys(1)", "synchronous(FULL)"} {
		name := p[:strings.IndexByte(p, '(')]
		if !strings.Contains(dsn, name) {
			add = append(add, "_pragma="+p)
		}
	}
	if len(add) == 0 {
		return dsn
	}
	sep := "?"
	if strings.Contains(dsn, "?") {
		sep = "&"
	}
	return dsn + sep + strings.Join(add, "&")
}

// Pool returns the control database's Router behind db, which Open made.
func Pool(db *gorm.DB) (*Router, error) {
	p, err := PlacementsOf(db)
	if err != nil {
		return nil, err
	}
	r, _ := p.Router("")
	return r, nil
}

// PlacementsOf returns every placement's pool behind db, which Open made.
func PlacementsOf(db *gorm.DB) (*Placements, error) {
	p, ok := db.ConnPool.(*Placements)
	if !ok {
		return nil, fmt.Errorf("pool: %T is not a database.Placements", db.ConnPool)
	}
	return p, nil
}

// Close closes every connection group of every placement behind db.
func Close(db *gorm.DB) error {
	p, err := PlacementsOf(db)
	if err != nil {
		return err
	}
	return p.Close()
}
