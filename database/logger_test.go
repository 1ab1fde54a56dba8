package database_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"tenantry/database"
	"tenantry/internal/testenv"
)

// TestLogsHoldNoValues: a failing insert, a data exception, a slow
// statement and (at GORM's Info level) every statement, each carrying a
// known email, leave the email out of the log on both databases, which
// shows the statements with their placeholders instead.
func TestLogsHoldNoValues(t *testing.T) {
	for _, driver := range testenv.Drivers {
		t.Run(driver, func(t *testing.T) {
			var buf testenv.Buffer
			log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
			db, _, err := database.Open(context.Background(), testenv.Database(t, driver), log,
				database.RouteBy(byKey), database.LogSlowerThan(time.Nanosecond))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = database.Close(db) })
			ctx := context.Background()
			const email = "alice.secret@example.com"
			placeholder := map[string]string{"postgres": "$1", "sqlite": "?"}[driver]

			if err := exec(ctx, db, "CREATE TABLE people (id integer PRIMARY KEY, name text, email text NOT NULL CHECK (length(email) < 5))"); err != nil {
				t.Fatal(err)
			}
			if err := exec(ctx, db, "CREATE TABLE nums (n integer)"); err != nil {
				t.Fatal(err)
			}
			// A constraint the database enforces: an error GORM logs.
			if err := db.WithContext(ctx).Table("people").Create(map[string]any{"name": "Alice Secret", "email": email}).Error; err == nil {
				t.Fatal("insert breaking the check constraint succeeded")
			}
			// A PostgreSQL data exception, whose message quotes the value.
			if err := exec(ctx, db, "INSERT INTO nums VALUES ((?::text)::integer)", email); err == nil && driver == "postgres" {
				t.Fatal("insert of an email as an integer succeeded")
			}
			// Every statement is slow here (LogSlowerThan 1ns).
			var n int64
			if err := db.WithContext(ctx).Raw("SELECT count(*) FROM people WHERE email = ?", email).Scan(&n).Error; err != nil {
				t.Fatal(err)
			}
			// GORM's Info level logs every statement.
			verbose := db.Session(&gorm.Session{Logger: db.Logger.LogMode(logger.Info)})
			if err := verbose.WithContext(ctx).Raw("SELECT count(*) FROM people WHERE name = ? OR email = ?", "Alice Secret", email).Scan(&n).Error; err != nil {
				t.Fatal(err)
			}

			out := buf.String()
			for _, secret := range []string{email, "Alice Secret", "alice.secret"} {
				if strings.Contains(out, secret) {
					t.Errorf("the log holds %q:\n%s", secret, out)
				}
			}
			for _, want := range []string{`msg="SQL failed"`, `msg="slow SQL"`, placeholder} {
				if !strings.Contains(out, want) {
					t.Errorf("the log lacks %q:\n%s", want, out)
				}
			}
			if strings.Contains(out, "$1$") {
				t.Errorf("the log shows GORM's $1$ for a placeholder:\n%s", out)
			}
			if driver == "postgres" && !strings.Contains(out, "data exception 22P02 (message withheld") {
				t.Errorf("the data exception's message was not withheld:\n%s", out)
			}
		})
	}
}

// TestOutageIsLoggedOnce stops a private PostgreSQL cluster under a pool
// and runs statements against it: the log has one line for the outage,
// none per statement, and one when the database is back.
func TestOutageIsLoggedOnce(t *testing.T) {
	cluster := testenv.StartCluster(t)
	var buf testenv.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	db, _, err := database.Open(context.Background(), cluster.Database(), log, database.RouteBy(byKey))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = database.Close(db) })
	ctx := context.Background()
	if err := exec(ctx, db, "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	if err := cluster.Stop(); err != nil {
		t.Fatal(err)
	}
	const statements = 50
	for i := range statements {
		sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := exec(sctx, db, "SELECT ?", i)
		cancel()
		wantKind(t, "statement while the database is stopped", err, database.ErrUnavailable.Kind, database.ErrUnavailable)
	}
	out := buf.String()
	if n := countMsg(out, "database unavailable"); n != 1 {
		t.Errorf("%d \"database unavailable\" lines for %d failed statements, want 1:\n%s", n, statements, out)
	}
	if n := len(logLines(out)); n > 3 {
		t.Errorf("%d lines logged for %d failed statements, want the one unavailable line:\n%s", n, statements, out)
	}
	if err := cluster.Start(); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 5*time.Second, func() bool { return exec(ctx, db, "SELECT 1") == nil }, "pool answers after the restart")
	if n := countMsg(buf.String(), "database available again"); n != 1 {
		t.Errorf("%d \"database available again\" lines, want 1:\n%s", n, buf.String())
	}
}
