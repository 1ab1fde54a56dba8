package database_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"testing"
	"time"

	"tenantry/config"
	"tenantry/database"
	"tenantry/internal/testenv"
)

// TestOpenRetriesThenGivesUp: with nothing listening, Open keeps trying
// for database.connect_timeout, logs at most a line every few seconds,
// and fails with a message naming the server and the time waited, with
// no password and no GORM initialisation line.
func TestOpenRetriesThenGivesUp(t *testing.T) {
	addr := testenv.FreeAddr(t)
	dbc := config.Default().Database
	dbc.Driver, dbc.DSN = "postgres", fmt.Sprintf("postgres://postgres:hunter2secret@%s/tenantry?sslmode=disable", addr)
	dbc.ConnectTimeout = 1500 * time.Millisecond
	var buf testenv.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	start := time.Now()
	_, _, err := database.Open(context.Background(), dbc, log)
	took := time.Since(start)
	if err == nil {
		t.Fatal("Open succeeded with nothing listening")
	}
	if took < dbc.ConnectTimeout || took > dbc.ConnectTimeout+3*time.Second {
		t.Errorf("Open gave up after %v, want about database.connect_timeout (%v)", took, dbc.ConnectTimeout)
	}
	want := fmt.Sprintf("database at %s not reachable after 1.5s: ", addr)
	if !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not say %q", err, want)
	}
	out := buf.String()
	for _, secret := range []string{"hunter2secret", "failed to initialize database"} {
		if strings.Contains(err.Error(), secret) || strings.Contains(out, secret) {
			t.Errorf("%q in the error or the log:\nerr: %v\nlog:\n%s", secret, err, out)
		}
	}
	// Attempts every 100ms doubling: about five in 1.5s, one line.
	if n := countMsg(out, "database not reachable yet; retrying"); n != 1 {
		t.Errorf("%d retry lines in 1.5s, want 1 (at most one per 5s):\n%s", n, out)
	}
}

// TestOpenFailsAtOnce: refusals that waiting cannot cure are not retried.
func TestOpenFailsAtOnce(t *testing.T) {
	for _, tc := range []struct {
		name string
		dbc  func(t *testing.T) config.Database
		want string
	}{
		{"missing database", func(t *testing.T) config.Database {
			u, err := url.Parse(testenv.AdminDSN())
			if err != nil {
				t.Fatal(err)
			}
			u.Path = "/tenantry_missing_database"
			d := config.Default().Database
			d.Driver, d.DSN = "postgres", u.String()
			return d
		}, "3D000"},
		{"connect_timeout 0 tries once", func(t *testing.T) config.Database {
			d := config.Default().Database
			d.Driver, d.DSN, d.ConnectTimeout = "postgres", "postgres://postgres@"+testenv.FreeAddr(t)+"/x?sslmode=disable", 0
			return d
		}, "not reachable after 0s"},
		{"sqlite file in a missing directory", func(t *testing.T) config.Database {
			d := testenv.SQLite(t)
			d.DSN = t.TempDir() + "/missing/dir/tenantry.db"
			return d
		}, "connect to sqlite database at"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dbc := tc.dbc(t)
			start := time.Now()
			_, _, err := database.Open(context.Background(), dbc, testenv.Logger(t))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one containing %q", err, tc.want)
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("Open took %v to fail, want at once (connect_timeout %v)", d, dbc.ConnectTimeout)
			}
		})
	}
}

// TestOpenWaitsForTheDatabase: a cluster that comes up during the retry
// window is connected to, and Open succeeds.
func TestOpenWaitsForTheDatabase(t *testing.T) {
	cluster := testenv.StartCluster(t)
	if err := cluster.Stop(); err != nil {
		t.Fatal(err)
	}
	dbc := cluster.Database()
	dbc.ConnectTimeout = time.Minute
	var buf testenv.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	type opened struct {
		err error
		at  time.Time
	}
	done := make(chan opened, 1)
	go func() {
		db, _, err := database.Open(context.Background(), dbc, log)
		if err == nil {
			_ = database.Close(db)
		}
		done <- opened{err, time.Now()}
	}()
	testenv.Eventually(t, 10*time.Second, func() bool {
		return strings.Contains(buf.String(), "database not reachable yet; retrying")
	}, "Open retrying")
	select {
	case o := <-done:
		t.Fatalf("Open returned while the database was down: %v", o.err)
	default:
	}
	if err := cluster.Start(); err != nil {
		t.Fatal(err)
	}
	up := time.Now()
	o := <-done
	if o.err != nil {
		t.Fatalf("Open: %v", o.err)
	}
	// The wait between attempts is capped at 2s.
	if lag := o.at.Sub(up); lag > 3*time.Second {
		t.Errorf("Open succeeded %v after the database came up, want within the 2s backoff cap", lag)
	}
	if !strings.Contains(buf.String(), `msg="database reachable"`) {
		t.Errorf("no \"database reachable\" line:\n%s", buf.String())
	}
}

// TestOpenTimeoutSettings: statement_timeout and lock_timeout reach every
// connection as startup parameters; 0 leaves the server's setting, and a
// sub-millisecond value is not rounded down to 0 (none).
func TestOpenTimeoutSettings(t *testing.T) {
	for _, tc := range []struct {
		name                      string
		statement, lock           time.Duration
		wantStatement, want, idle string
	}{
		{"defaults", config.Default().Database.StatementTimeout, config.Default().Database.LockTimeout, "15s", "5s", "1min"},
		{"disabled", 0, 0, "0", "0", "0"},
		{"sub-millisecond", 1500 * time.Millisecond, 300 * time.Microsecond, "1500ms", "1ms", "6s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := openRouter(t, 2, 2, func(d *config.Database) { d.StatementTimeout, d.LockTimeout = tc.statement, tc.lock })
			for _, k := range keysInGroups(t, r) {
				for setting, want := range map[string]string{"statement_timeout": tc.wantStatement, "lock_timeout": tc.want,
					"idle_in_transaction_session_timeout": tc.idle} {
					var got string
					if err := r.QueryRowContext(withKey(k), "SHOW "+setting).Scan(&got); err != nil {
						t.Fatal(err)
					}
					if got != want {
						t.Errorf("group of %s: %s = %q, want %q", k, setting, got, want)
					}
				}
			}
		})
	}
}
