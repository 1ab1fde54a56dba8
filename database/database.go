package database

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/glebarez/sqlite"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"tenantry/config"
	"tenantry/migrations"
)

// Option adjusts how Open builds the pool.
type Option func(*options)

type options struct{ route RouteKey }

// RouteBy makes the pool route each statement by key (see Router); without
// it every statement goes to the first group, with overflow.
func RouteBy(key RouteKey) Option { return func(o *options) { o.route = key } }

// Open connects to the configured database, checks that it answers, and
// returns the pool with its dialect. GORM's error translation is on, so a
// unique violation is gorm.ErrDuplicatedKey on both databases.
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
		groups  []*sql.DB
		dialect migrations.Dialect
		err     error
	)
	switch c.Driver {
	case "postgres":
		dialect = migrations.Postgres
		groups, err = postgresGroups(c)
	case "sqlite":
		dialect = migrations.SQLite
		groups, err = sqliteGroups(c)
	default:
		return nil, "", fmt.Errorf("database.driver %q: want sqlite or postgres", c.Driver)
	}
	if err != nil {
		return nil, "", err
	}
	router := NewRouter(groups, o.route)
	var dialector gorm.Dialector
	if dialect == migrations.Postgres {
		dialector = postgres.New(postgres.Config{Conn: router})
	} else {
		dialector = &sqlite.Dialector{Conn: router}
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
		Logger: expectedErrors{logger.NewSlogLogger(log, logger.Config{
			SlowThreshold:             500 * time.Millisecond,
			LogLevel:                  logger.Warn,
			IgnoreRecordNotFoundError: true,
			ParameterizedQueries:      true,
		})},
		// Open pings below, with a deadline.
		DisableAutomaticPing: true,
	})
	if err != nil {
		_ = router.Close()
		return nil, "", fmt.Errorf("open %s: %w", c.Driver, err)
	}
	pingCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := router.PingContext(pingCtx); err != nil {
		_ = router.Close()
		return nil, "", fmt.Errorf("connect to %s: %w", c.Driver, err)
	}
	return db, dialect, nil
}

// postgresGroups opens Groups() pools that share max_open_conns and
// max_idle_conns between them as evenly as whole connections allow.
func postgresGroups(c config.Database) ([]*sql.DB, error) {
	pc, err := pgx.ParseConfig(c.DSN)
	if err != nil {
		return nil, fmt.Errorf("database.dsn: %w", err)
	}
	pc.StatementCacheCapacity = c.StatementCache()
	if c.PlanCacheMode != "" {
		// A startup parameter, not a SET: it holds for the connection's
		// life and says nothing about any tenant.
		pc.RuntimeParams["plan_cache_mode"] = c.PlanCacheMode
	}
	n := c.Groups()
	groups := make([]*sql.DB, n)
	for i := range groups {
		g := stdlib.OpenDB(*pc.Copy())
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

// share is group i's part of total split over n groups.
func share(total, n, i int) int {
	s := total / n
	if i < total%n {
		s++
	}
	return s
}

// sqliteGroups opens the one connection SQLite is used through. One writer
// at a time is SQLite's model; a single connection makes that explicit and
// avoids SQLITE_BUSY on read-then-write transactions. WAL still lets the
// file be read by other processes.
func sqliteGroups(c config.Database) ([]*sql.DB, error) {
	g, err := sql.Open(sqlite.DriverName, sqliteDSN(c.DSN))
	if err != nil {
		return nil, fmt.Errorf("open sqlite: %w", err)
	}
	g.SetMaxOpenConns(1)
	g.SetMaxIdleConns(1)
	g.SetConnMaxLifetime(c.ConnMaxLifetime)
	return []*sql.DB{g}, nil
}

// expectedErrors keeps GORM from logging, as errors, outcomes the
// application expects and answers itself: a duplicate key is a 409, not a
// fault. Slow statements are still logged.
type expectedErrors struct{ logger.Interface }

func (l expectedErrors) LogMode(level logger.LogLevel) logger.Interface {
	return expectedErrors{l.Interface.LogMode(level)}
}

func (l expectedErrors) Trace(ctx context.Context, begin time.Time, fc func() (string, int64), err error) {
	if errors.Is(err, gorm.ErrDuplicatedKey) {
		err = nil
	}
	l.Interface.Trace(ctx, begin, fc, err)
}

// sqliteDSN adds the pragmas tenantry relies on unless the DSN sets them.
func sqliteDSN(dsn string) string {
	var add []string
	for _, p := range []string{"busy_timeout(10000)", "journal_mode(WAL)", "foreign_keys(1)", "synchronous(FULL)"} {
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

// Pool returns the Router behind db, which Open made.
func Pool(db *gorm.DB) (*Router, error) {
	r, ok := db.ConnPool.(*Router)
	if !ok {
		return nil, fmt.Errorf("pool: %T is not a database.Router", db.ConnPool)
	}
	return r, nil
}

// Close closes every connection group behind db.
func Close(db *gorm.DB) error {
	r, err := Pool(db)
	if err != nil {
		return err
	}
	return r.Close()
}
