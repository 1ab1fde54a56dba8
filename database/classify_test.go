package database_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"gorm.io/gorm"

	"tenantry/config"
	"tenantry/database"
	"tenantry/fault"
	"tenantry/internal/testenv"
)

// openDB opens dbc through database.Open, routed by byKey (a context made
// by withKey is a tenant's), and closes it when t ends.
func openDB(t *testing.T, dbc config.Database, opts ...database.Option) *gorm.DB {
	t.Helper()
	db, _, err := database.Open(context.Background(), dbc, testenv.Logger(t), append([]database.Option{database.RouteBy(byKey)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = database.Close(db) })
	return db
}

// wantKind checks that err is classified as want, keeps its cause for
// errors.As, and says nothing of the cause in its client message.
func wantKind(t *testing.T, what string, err error, want fault.Kind, sentinel *fault.Error) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: no error, want kind %v", what, want)
	}
	if got := fault.KindOf(err); got != want {
		t.Fatalf("%s: kind = %v, want %v (err: %v)", what, got, want, err)
	}
	if sentinel != nil {
		if !errors.Is(err, sentinel) {
			t.Errorf("%s: errors.Is(err, %s) = false", what, sentinel.Code)
		}
		fe, _ := fault.As(err)
		if fe.Message != sentinel.Message || fe.Err == nil {
			t.Errorf("%s: message %q, cause %v: want the sentinel's message and the driver's error as cause", what, fe.Message, fe.Err)
		}
	}
}

// exec runs sql on db as GORM does for the application.
func exec(ctx context.Context, db *gorm.DB, sql string, args ...any) error {
	return db.WithContext(ctx).Exec(sql, args...).Error
}

// TestClassifyPostgres provokes each failure on a real PostgreSQL server
// and checks the kind the application sees through the pool.
func TestClassifyPostgres(t *testing.T) {
	dbc := testenv.Postgres(t)
	dbc.LockTimeout = 100 * time.Millisecond
	db := openDB(t, dbc)
	bg := context.Background()
	for _, q := range []string{
		"CREATE TABLE locks (id int PRIMARY KEY)",
		"INSERT INTO locks VALUES (1), (2)",
		"CREATE TABLE ser (id int)",
		"CREATE TABLE uniq (id int PRIMARY KEY)",
		"INSERT INTO uniq VALUES (1)",
		"CREATE SCHEMA gone",
		"CREATE TABLE gone.users (id int)",
		"DROP SCHEMA gone CASCADE",
	} {
		if err := exec(bg, db, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}

	t.Run("statement_timeout is Timeout", func(t *testing.T) {
		err := db.WithContext(bg).Transaction(func(tx *gorm.DB) error {
			if err := tx.Exec("SET LOCAL statement_timeout = 1").Error; err != nil {
				return err
			}
			return tx.Exec("SELECT pg_sleep(1)").Error
		})
		wantKind(t, "pg_sleep past statement_timeout", err, fault.Timeout, database.ErrTimeout)
		wantCode(t, err, "57014")
	})

	t.Run("lock_timeout is Timeout", func(t *testing.T) {
		// database.lock_timeout (100ms here) is sent at connect time.
		hold := db.WithContext(bg).Begin()
		defer hold.Rollback()
		if err := hold.Exec("LOCK TABLE locks").Error; err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		err := exec(bg, db, "SELECT * FROM locks")
		wantKind(t, "read of a locked table", err, fault.Timeout, database.ErrTimeout)
		wantCode(t, err, "55P03")
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("lock wait took %v, want about lock_timeout", d)
		}
	})

	t.Run("serialization failure is Contention", func(t *testing.T) {
		opts := &sql.TxOptions{Isolation: sql.LevelSerializable}
		a, b := db.WithContext(bg).Begin(opts), db.WithContext(bg).Begin(opts)
		defer a.Rollback()
		defer b.Rollback()
		var n int64
		for _, tx := range []*gorm.DB{a, b} {
			if err := tx.Raw("SELECT count(*) FROM ser").Scan(&n).Error; err != nil {
				t.Fatal(err)
			}
		}
		for _, tx := range []*gorm.DB{a, b} {
			if err := tx.Exec("INSERT INTO ser VALUES (1)").Error; err != nil {
				t.Fatal(err)
			}
		}
		if err := a.Commit().Error; err != nil {
			t.Fatal(err)
		}
		// The failure comes at COMMIT, which GORM records through the
		// dialector's Translate, not through a statement callback.
		err := b.Commit().Error
		wantKind(t, "commit of a write skew", err, fault.Contention, database.ErrContention)
		wantCode(t, err, "40001")
	})

	t.Run("missing table of a tenant is Gone", func(t *testing.T) {
		var n int
		err := db.WithContext(withKey("gone")).Raw(`SELECT count(*) FROM "gone"."users"`).Scan(&n).Error
		wantKind(t, "read of a dropped schema's table", err, fault.Gone, database.ErrGone)
		wantCode(t, err, "42P01")
		err = exec(withKey("gone"), db, `CREATE TABLE "gone"."t" (id int)`)
		wantKind(t, "table in a dropped schema", err, fault.Gone, database.ErrGone)
		wantCode(t, err, "3F000")
	})

	t.Run("another tenant is unaffected", func(t *testing.T) {
		if err := exec(bg, db, `CREATE SCHEMA alive; CREATE TABLE alive.users (id int)`); err != nil {
			t.Fatal(err)
		}
		var n int
		if err := db.WithContext(withKey("alive")).Raw(`SELECT count(*) FROM "alive"."users"`).Scan(&n).Error; err != nil {
			t.Errorf("tenant alive beside a removed one: %v", err)
		}
	})

	t.Run("missing table outside a tenant stays internal", func(t *testing.T) {
		var n int
		err := db.WithContext(bg).Raw(`SELECT count(*) FROM "gone"."users"`).Scan(&n).Error
		wantKind(t, "catalog statement on a missing table", err, fault.Internal, nil)
		wantCode(t, err, "42P01")
	})

	t.Run("request deadline is Timeout", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(bg, 50*time.Millisecond)
		defer cancel()
		start := time.Now()
		err := exec(ctx, db, "SELECT pg_sleep(5)")
		wantKind(t, "pg_sleep past the context's deadline", err, fault.Timeout, database.ErrTimeout)
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("statement ran %v past a 50ms deadline", d)
		}
	})

	t.Run("cancelled request is Canceled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(bg)
		time.AfterFunc(50*time.Millisecond, cancel)
		err := exec(ctx, db, "SELECT pg_sleep(5)")
		wantKind(t, "pg_sleep of a cancelled request", err, fault.Canceled, database.ErrCanceled)
	})

	t.Run("terminated backend is Unavailable", func(t *testing.T) {
		tx := db.WithContext(bg).Begin()
		defer tx.Rollback()
		var pid int
		if err := tx.Raw("SELECT pg_backend_pid()").Scan(&pid).Error; err != nil {
			t.Fatal(err)
		}
		if err := exec(bg, db, "SELECT pg_terminate_backend(?)", pid); err != nil {
			t.Fatal(err)
		}
		// The backend may take a moment to go; the statement after that
		// finds the connection closed.
		var err error
		testenv.Eventually(t, 5*time.Second, func() bool {
			err = tx.Exec("SELECT 1").Error
			return err != nil
		}, "statement on a terminated backend fails")
		wantKind(t, "statement on a terminated backend", err, fault.Unavailable, database.ErrUnavailable)
	})

	t.Run("waiting for a pooled connection past the deadline is Timeout", func(t *testing.T) {
		one := testenv.Postgres(t)
		one.MaxOpenConns, one.MaxIdleConns, one.PoolGroups = 1, 1, 1
		db := openDB(t, one)
		hold := db.WithContext(bg).Begin()
		defer hold.Rollback()
		ctx, cancel := context.WithTimeout(bg, 50*time.Millisecond)
		defer cancel()
		wantKind(t, "query behind a held connection", exec(ctx, db, "SELECT 1"), fault.Timeout, database.ErrTimeout)
	})

	t.Run("duplicate key stays gorm.ErrDuplicatedKey", func(t *testing.T) {
		err := exec(bg, db, "INSERT INTO uniq VALUES (1)")
		if !errors.Is(err, gorm.ErrDuplicatedKey) {
			t.Fatalf("err = %v, want gorm.ErrDuplicatedKey", err)
		}
		if _, ok := fault.As(err); ok {
			t.Errorf("a duplicate key was classified: %v", err)
		}
	})

	t.Run("syntax error stays unclassified", func(t *testing.T) {
		err := exec(bg, db, "SELEC 1")
		wantKind(t, "syntax error", err, fault.Internal, nil)
		wantCode(t, err, "42601")
	})
}

// TestClassifyDeadlock provokes a deadlock with lock_timeout off, so that
// PostgreSQL's deadlock detector, not the lock timeout, ends it.
func TestClassifyDeadlock(t *testing.T) {
	dbc := testenv.Postgres(t)
	dbc.LockTimeout = 0
	db := openDB(t, dbc)
	bg := context.Background()
	if err := exec(bg, db, "CREATE TABLE locks (id int PRIMARY KEY); INSERT INTO locks VALUES (1), (2)"); err != nil {
		t.Fatal(err)
	}
	a, b := db.WithContext(bg).Begin(), db.WithContext(bg).Begin()
	defer a.Rollback()
	defer b.Rollback()
	if err := a.Exec("UPDATE locks SET id = id WHERE id = 1").Error; err != nil {
		t.Fatal(err)
	}
	if err := b.Exec("UPDATE locks SET id = id WHERE id = 2").Error; err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 2)
	var wg sync.WaitGroup
	wg.Go(func() { errs <- a.Exec("UPDATE locks SET id = id WHERE id = 2").Error })
	wg.Go(func() { errs <- b.Exec("UPDATE locks SET id = id WHERE id = 1").Error })
	var victim error
	select {
	case victim = <-errs:
	case <-time.After(30 * time.Second):
		t.Fatal("no deadlock detected within 30s")
	}
	if victim == nil {
		// The survivor answered first: the victim's error follows.
		victim = <-errs
	}
	wantKind(t, "deadlock", victim, fault.Contention, database.ErrContention)
	wantCode(t, victim, "40P01")
	a.Rollback()
	b.Rollback()
	wg.Wait()
}

// TestClassifyConnect: failures to connect at all, from a real server and
// a real closed port.
func TestClassifyConnect(t *testing.T) {
	t.Run("nothing listening is Unavailable", func(t *testing.T) {
		dbc := config.Default().Database
		dbc.Driver, dbc.DSN = "postgres", "postgres://postgres@"+testenv.FreeAddr(t)+"/x?sslmode=disable"
		dbc.ConnectTimeout = 0
		_, _, err := database.Open(context.Background(), dbc, testenv.Logger(t))
		wantKind(t, "connect to a closed port", database.Classify(err), fault.Unavailable, database.ErrUnavailable)
	})
	t.Run("too many connections is Unavailable", func(t *testing.T) {
		// A role allowed no connection gets 53300 at once, as every
		// client does when max_connections is reached.
		dbc := testenv.Postgres(t)
		admin := openDB(t, dbc)
		role := "tenantry_nolimit_" + strings.ReplaceAll(testenv.Unique("r"), "-", "_")
		if err := exec(context.Background(), admin, "CREATE ROLE "+role+" LOGIN CONNECTION LIMIT 0"); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = exec(context.Background(), admin, "DROP ROLE IF EXISTS "+role) })
		dbc.DSN = strings.Replace(dbc.DSN, "postgres://postgres@", "postgres://"+role+"@", 1)
		dbc.ConnectTimeout = 0
		_, _, err := database.Open(context.Background(), dbc, testenv.Logger(t))
		err = database.Classify(err)
		wantKind(t, "connect over the role's limit", err, fault.Unavailable, database.ErrUnavailable)
		wantCode(t, err, "53300")
	})
}

// TestClassifySQLite provokes each SQLite failure on a real database file.
func TestClassifySQLite(t *testing.T) {
	dbc := testenv.SQLite(t)
	dbc.LockTimeout = 100 * time.Millisecond
	db := openDB(t, dbc)
	bg := context.Background()
	if err := exec(bg, db, "CREATE TABLE t (id integer PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}

	t.Run("another writer past busy_timeout is Timeout", func(t *testing.T) {
		// Another process's connection holds the write lock.
		other, err := sql.Open("sqlite", dbc.DSN)
		if err != nil {
			t.Fatal(err)
		}
		defer other.Close()
		conn, err := other.Conn(bg)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if _, err := conn.ExecContext(bg, "BEGIN IMMEDIATE"); err != nil {
			t.Fatal(err)
		}
		defer conn.ExecContext(bg, "ROLLBACK") //nolint:errcheck
		start := time.Now()
		err = exec(bg, db, "INSERT INTO t VALUES (1)")
		wantKind(t, "write behind another writer", err, fault.Timeout, database.ErrTimeout)
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("write waited %v, want about database.lock_timeout (100ms)", d)
		}
	})

	t.Run("missing table of a tenant is Gone", func(t *testing.T) {
		var n int
		err := db.WithContext(withKey("gone")).Raw("SELECT count(*) FROM gone_users").Scan(&n).Error
		wantKind(t, "read of a removed tenant's table", err, fault.Gone, database.ErrGone)
	})

	t.Run("missing table outside a tenant stays internal", func(t *testing.T) {
		var n int
		err := db.WithContext(bg).Raw("SELECT count(*) FROM gone_users").Scan(&n).Error
		wantKind(t, "catalog statement on a missing table", err, fault.Internal, nil)
	})

	t.Run("request deadline interrupts a statement: Timeout", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(bg, 50*time.Millisecond)
		defer cancel()
		// Exec: the driver interrupts a statement whose context ends while
		// it runs, but not the reading of rows that a query returned.
		err := exec(ctx, db, "CREATE TABLE big AS WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT x FROM c")
		wantKind(t, "endless query past the deadline", err, fault.Timeout, database.ErrTimeout)
	})

	t.Run("waiting for the one connection past the deadline is Timeout", func(t *testing.T) {
		hold := db.WithContext(bg).Begin()
		defer hold.Rollback()
		ctx, cancel := context.WithTimeout(bg, 50*time.Millisecond)
		defer cancel()
		wantKind(t, "query behind the held connection", exec(ctx, db, "SELECT 1"), fault.Timeout, database.ErrTimeout)
	})

	t.Run("unique violation stays gorm.ErrDuplicatedKey", func(t *testing.T) {
		if err := exec(bg, db, "INSERT INTO t VALUES (7)"); err != nil {
			t.Fatal(err)
		}
		err := exec(bg, db, "INSERT INTO t VALUES (7)")
		if !errors.Is(err, gorm.ErrDuplicatedKey) {
			t.Fatalf("err = %v, want gorm.ErrDuplicatedKey", err)
		}
		if _, ok := fault.As(err); ok {
			t.Errorf("a duplicate key was classified: %v", err)
		}
	})
}

// wantCode checks that the driver's PostgreSQL error is still reachable
// through the classified error, for logs and for callers that retry.
func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	var pg *pgconn.PgError
	if !errors.As(err, &pg) || pg.Code != code {
		t.Errorf("SQLSTATE = %v, want %s (err: %v)", pg, code, err)
	}
}

// TestClassifyTable covers every code and error value Classify knows, on
// values built by hand: the real provocations above cannot reach all of
// them (a crash shutdown, a full disk).
func TestClassifyTable(t *testing.T) {
	pg := func(code string) error {
		return fmt.Errorf("query: %w", &pgconn.PgError{Severity: "ERROR", Code: code, Message: "m"})
	}
	already := database.ErrContention.With("", "", errors.New("x"))
	for _, tc := range []struct {
		name string
		err  error
		want fault.Kind
		same bool // returned unchanged
	}{
		{"08000 connection_exception", pg("08000"), fault.Unavailable, false},
		{"08006 connection_failure", pg("08006"), fault.Unavailable, false},
		{"08P01 protocol_violation", pg("08P01"), fault.Unavailable, false},
		{"57P01 admin_shutdown", pg("57P01"), fault.Unavailable, false},
		{"57P02 crash_shutdown", pg("57P02"), fault.Unavailable, false},
		{"57P03 cannot_connect_now", pg("57P03"), fault.Unavailable, false},
		{"57P05 idle_session_timeout", pg("57P05"), fault.Unavailable, false},
		{"25P03 idle_in_transaction_session_timeout", pg("25P03"), fault.Unavailable, false},
		{"53000 insufficient_resources", pg("53000"), fault.Unavailable, false},
		{"53100 disk_full", pg("53100"), fault.Unavailable, false},
		{"53200 out_of_memory", pg("53200"), fault.Unavailable, false},
		{"53300 too_many_connections", pg("53300"), fault.Unavailable, false},
		{"57014 query_canceled", pg("57014"), fault.Timeout, false},
		{"55P03 lock_not_available", pg("55P03"), fault.Timeout, false},
		{"40001 serialization_failure", pg("40001"), fault.Contention, false},
		{"40P01 deadlock_detected", pg("40P01"), fault.Contention, false},
		{"42P01 undefined_table", pg("42P01"), fault.Gone, false},
		{"3F000 invalid_schema_name", pg("3F000"), fault.Gone, false},
		{"T0M01 a moved tenant's sealed source", pg(database.MovedSQLState), fault.Unavailable, false},
		{"23505 unique_violation", pg("23505"), fault.Internal, true},
		{"28P01 invalid_password", pg("28P01"), fault.Internal, true},
		{"3D000 invalid_catalog_name", pg("3D000"), fault.Internal, true},
		{"42601 syntax_error", pg("42601"), fault.Internal, true},
		{"context deadline", fmt.Errorf("q: %w", context.DeadlineExceeded), fault.Timeout, false},
		{"context cancelled", fmt.Errorf("q: %w", context.Canceled), fault.Canceled, false},
		{"io.EOF", fmt.Errorf("read: %w", io.EOF), fault.Unavailable, false},
		{"io.ErrUnexpectedEOF", io.ErrUnexpectedEOF, fault.Unavailable, false},
		{"driver.ErrBadConn", driver.ErrBadConn, fault.Unavailable, false},
		{"sql.ErrConnDone", sql.ErrConnDone, fault.Unavailable, false},
		{"pgconn conn closed", fmt.Errorf("x: %w", pgconn.ErrConnClosed), fault.Unavailable, false},
		{"connection refused", &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}, fault.Unavailable, false},
		{"connection reset", fmt.Errorf("read: %w", syscall.ECONNRESET), fault.Unavailable, false},
		{"already classified", already, fault.Contention, true},
		{"record not found", gorm.ErrRecordNotFound, fault.Internal, true},
		{"duplicate key", gorm.ErrDuplicatedKey, fault.Internal, true},
		{"anything else", errors.New("boom"), fault.Internal, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := database.Classify(tc.err)
			if k := fault.KindOf(got); k != tc.want {
				t.Errorf("kind = %v, want %v", k, tc.want)
			}
			if same := got == tc.err; same != tc.same {
				t.Errorf("returned unchanged = %v, want %v (%v)", same, tc.same, got)
			}
			if !errors.Is(got, tc.err) {
				t.Errorf("the cause is lost: %v does not wrap %v", got, tc.err)
			}
		})
	}
	if database.Classify(nil) != nil {
		t.Error("Classify(nil) != nil")
	}
}
