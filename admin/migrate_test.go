package admin_test

import (
	"context"
	"database/sql"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver to hold a lock from outside the service

	"tenantry/internal/testenv"
)

// runStatus is GET /admin/migrate.
type runStatus struct {
	Running  bool   `json:"running"`
	Tenant   string `json:"tenant"`
	Done     int    `json:"done"`
	Failed   int    `json:"failed"`
	Total    int    `json:"total"`
	Failures []struct {
		Tenant string `json:"tenant"`
		Error  string `json:"error"`
	} `json:"failures"`
	StartedAt  *time.Time `json:"started_at"`
	FinishedAt *time.Time `json:"finished_at"`
	Error      string     `json:"error"`
	Report     *struct {
		Total int `json:"total"`
	} `json:"report"`
}

// finished polls GET /admin/migrate until the run is over.
func (f *fixture) finished(t *testing.T) runStatus {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var st runStatus
		f.ok(t, request{method: "GET", path: "/admin/migrate"}, 200, &st)
		if !st.Running {
			if st.StartedAt == nil || st.FinishedAt == nil || st.FinishedAt.Before(*st.StartedAt) || st.Report == nil {
				t.Errorf("finished run %+v: want started_at <= finished_at and a report", st)
			}
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("migration still running after 20s: %+v", st)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestMigrateRuns(t *testing.T) {
	for _, driver := range testenv.Drivers {
		t.Run(driver, func(t *testing.T) {
			t.Parallel()
			f := start(t, driver)
			var st runStatus
			f.ok(t, request{method: "GET", path: "/admin/migrate"}, 200, &st)
			if st.Running || st.StartedAt != nil || st.FinishedAt != nil {
				t.Errorf("before any run: %+v, want nothing", st)
			}

			resp := f.do(t, request{method: "POST", path: "/admin/migrate"})
			if resp.status != 202 || resp.header.Get("Location") != "/admin/migrate" {
				t.Fatalf("POST /admin/migrate = %d, Location %q: %s", resp.status, resp.header.Get("Location"), resp.body)
			}
			st = f.finished(t)
			if st.Total != 2 || st.Done != 2 || st.Failed != 0 || len(st.Failures) != 0 || st.Error != "" {
				t.Errorf("run over two up-to-date tenants: %+v", st)
			}

			f.ok(t, request{method: "POST", path: "/admin/migrate", body: `{"tenant":"tenant1","jobs":2}`}, 202, nil)
			st = f.finished(t)
			if st.Tenant != "tenant1" || st.Total != 1 || st.Failed != 0 {
				t.Errorf("run over tenant1 only: %+v", st)
			}
		})
	}
}

// TestMigrateConflictAndFailures holds the catalog table locked from
// outside so that a run stays in progress for as long as the test needs.
func TestMigrateConflictAndFailures(t *testing.T) {
	f := start(t, "postgres")
	db, err := sql.Open("pgx", f.env.App.Config.Database.DSN)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	ctx := context.Background()
	lock := func(t *testing.T) *sql.Tx {
		t.Helper()
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.ExecContext(ctx, "LOCK TABLE public.tenants IN ACCESS EXCLUSIVE MODE"); err != nil {
			t.Fatal(err)
		}
		return tx
	}

	t.Run("second run while one runs is 409", func(t *testing.T) {
		tx := lock(t)
		var st runStatus
		f.ok(t, request{method: "POST", path: "/admin/migrate"}, 202, &st)
		if !st.Running || st.StartedAt == nil || st.FinishedAt != nil {
			t.Errorf("answer to POST: %+v, want a running run", st)
		}
		checkProblem(t, f.do(t, request{method: "POST", path: "/admin/migrate"}), 409, "migration-running", "")
		checkProblem(t, f.do(t, request{method: "POST", path: "/admin/migrate", body: `{"jobs":2}`}), 409, "migration-running", "")
		f.ok(t, request{method: "GET", path: "/admin/migrate"}, 200, &st)
		if !st.Running {
			t.Errorf("while locked: %+v, want running", st)
		}
		if err := tx.Rollback(); err != nil {
			t.Fatal(err)
		}
		if st := f.finished(t); st.Failed != 0 || st.Total != 2 {
			t.Errorf("after the lock: %+v", st)
		}
	})

	t.Run("failed tenants are listed", func(t *testing.T) {
		if _, err := db.ExecContext(ctx, "UPDATE public.tenants SET schema_version = 999 WHERE name = 'tenant2'"); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_, _ = db.ExecContext(ctx, "UPDATE public.tenants SET schema_version = 1 WHERE name = 'tenant2'")
		})
		f.ok(t, request{method: "POST", path: "/admin/migrate"}, 202, nil)
		st := f.finished(t)
		if st.Failed != 1 || len(st.Failures) != 1 || st.Failures[0].Tenant != "tenant2" || st.Failures[0].Error == "" {
			t.Errorf("run with tenant2 ahead of the code: %+v, want tenant2 listed as failed", st)
		}
		if st.Error != "" {
			t.Errorf("error = %q; per-tenant failures are not a stopped run", st.Error)
		}
	})

	t.Run("shutdown cancels a run that outlives it", func(t *testing.T) {
		tx := lock(t)
		defer func() { _ = tx.Rollback() }()
		f.ok(t, request{method: "POST", path: "/admin/migrate"}, 202, nil)
		sctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer cancel()
		if err := f.admin.Shutdown(sctx); err == nil {
			t.Error("Shutdown with a run still blocked = nil, want the cancellation reported")
		}
		var st runStatus
		f.ok(t, request{method: "GET", path: "/admin/migrate"}, 200, &st)
		if st.Running || !strings.Contains(st.Error, "cancelled") || st.FinishedAt == nil {
			t.Errorf("after Shutdown: %+v, want a finished, cancelled run", st)
		}
	})
}
