// Package database opens the one connection pool a tenantry process uses.
// Open is called once, by main (or a test), and the *gorm.DB is passed
// down explicitly; nothing keeps it in a package variable.
package database

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/glebarez/sqlite"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"tenantry/config"
	"tenantry/migrations"
)

// Open connects to the configured database, checks that it answers, and
// returns the pool with its dialect. GORM's error translation is on, so a
// unique violation is gorm.ErrDuplicatedKey on both databases.
func Open(ctx context.Context, c config.Database, log *slog.Logger) (*gorm.DB, migrations.Dialect, error) {
	var (
		dialector gorm.Dialector
		dialect   migrations.Dialect
	)
	switch c.Driver {
	case "postgres":
		dialector, dialect = postgres.Open(c.DSN), migrations.Postgres
	case "sqlite":
		dialector, dialect = sqlite.Open(sqliteDSN(c.DSN)), migrations.SQLite
	default:
		return nil, "", fmt.Errorf("database.driver %q: want sqlite or postgres", c.Driver)
	}
	db, err := gorm.Open(dialector, &gorm.Config{
		TranslateError: true,
		// Microseconds in UTC: what PostgreSQL keeps, so a value read back
		// equals the value the API acknowledged.
		NowFunc: func() time.Time { return time.Now().UTC().Truncate(time.Microsecond) },
		Logger: expectedErrors{logger.NewSlogLogger(log, logger.Config{
			SlowThreshold:             500 * time.Millisecond,
			LogLevel:                  logger.Warn,
			IgnoreRecordNotFoundError: true,
			ParameterizedQueries:      true,
		})},
	})
	if err != nil {
		return nil, "", fmt.Errorf("open %s: %w", c.Driver, err)
	}
	sqlDB, err := db.DB()
	if err != nil {
		return nil, "", fmt.Errorf("pool: %w", err)
	}
	if dialect == migrations.SQLite {
		// One writer at a time is SQLite's model; a single connection makes
		// that explicit and avoids SQLITE_BUSY on read-then-write
		// transactions. WAL still lets the file be read by other processes.
		sqlDB.SetMaxOpenConns(1)
		sqlDB.SetMaxIdleConns(1)
	} else {
		sqlDB.SetMaxOpenConns(c.MaxOpenConns)
		sqlDB.SetMaxIdleConns(c.MaxIdleConns)
	}
	sqlDB.SetConnMaxLifetime(c.ConnMaxLifetime)
	pingCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := sqlDB.PingContext(pingCtx); err != nil {
		_ = sqlDB.Close()
		return nil, "", fmt.Errorf("connect to %s: %w", c.Driver, err)
	}
	return db, dialect, nil
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

// Close closes the pool behind db.
func Close(db *gorm.DB) error {
	sqlDB, err := db.DB()
	if err != nil {
		return err
	}
	return sqlDB.Close()
}
