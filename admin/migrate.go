package admin

import (
	"net/http"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"tenantry/tenants"
)

// migrationStatus is what GET /admin/migrate shows: the current run, or
// the last one when none is running. While a run goes on, Done, Failed and
// Total are the catalog's progress reports (tenants.Progress: Done counts
// finished tenants, failed ones included). Once it has finished they come
// from its report and cover every tenant it looked at, up-to-date ones
// included, and Report holds the whole report.
type migrationStatus struct {
	Running    bool                    `json:"running"`
	Tenant     string                  `json:"tenant,omitempty"`
	Done       int                     `json:"done"`
	Failed     int                     `json:"failed"`
	Total      int                     `json:"total"`
	Failures   []tenants.TenantFailure `json:"failures"`
	StartedAt  *time.Time              `json:"started_at"`
	FinishedAt *time.Time              `json:"finished_at"`
	// Error says why a run stopped before reaching every tenant.
	Error  string                 `json:"error,omitempty"`
	Report *tenants.MigrateReport `json:"report,omitempty"`
}

// migration is this process's one background migration run. Runs of
// several instances may overlap safely: the catalog migrates each tenant
// under its own advisory lock.
type migration struct {
	mu     sync.Mutex
	status migrationStatus
	done   chan struct{} // closed when the current run ends; nil before the first
}

// running returns a channel closed when the current run ends, or nil when
// no run is in progress.
func (m *migration) running() <-chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.status.Running {
		return nil
	}
	return m.done
}

func (m *migration) snapshot() migrationStatus {
	m.mu.Lock()
	defer m.mu.Unlock()
	st := m.status
	st.Failures = append([]tenants.TenantFailure{}, m.status.Failures...)
	return st
}

// start begins a run unless one is in progress (errMigrationRunning).
func (m *migration) start(now time.Time, tenant string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.status.Running {
		return errMigrationRunning
	}
	m.status = migrationStatus{Running: true, Tenant: tenant, Failures: []tenants.TenantFailure{}, StartedAt: &now}
	m.done = make(chan struct{})
	return nil
}

// progress records one finished tenant. The catalog may report from
// several goroutines at once.
func (m *migration) progress(p tenants.Progress) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.status.Done, m.status.Failed, m.status.Total = p.Done, p.Failed, p.Total
	if p.Err != nil {
		m.status.Failures = append(m.status.Failures, tenants.TenantFailure{Tenant: p.Tenant, Database: p.Database, Error: p.Err.Error()})
	}
}

func (m *migration) finish(rep tenants.MigrateReport, stopped string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now().UTC()
	m.status.Running, m.status.FinishedAt, m.status.Error = false, &now, stopped
	if rep.Total > 0 {
		// The report is the authority: progress reports do not cover
		// tenants that were already up to date.
		m.status.Total, m.status.Failed = rep.Total, rep.Failed
		m.status.Done = rep.Migrated + rep.UpToDate + rep.Failed
		m.status.Failures = append([]tenants.TenantFailure{}, rep.Failures...)
	}
	m.status.Report = &rep
	close(m.done)
}

// migrateRequest is the optional body of POST /admin/migrate.
type migrateRequest struct {
	// Tenant limits the run to one tenant.
	Tenant string `json:"tenant"`
	// Jobs is how many tenants are migrated at once; the catalog's
	// default when zero.
	Jobs int `json:"jobs"`
}

// maxJobs bounds a run's parallelism: each job holds a pooled connection.
const maxJobs = 64

func (r migrateRequest) Valid() error {
	if r.Jobs < 0 || r.Jobs > maxJobs {
		return invalid(FieldError{Field: "jobs", Message: "must be a whole number from 1 to 64, or 0 for the default"})
	}
	return nil
}

// handleMigrateStart starts a run in the background and answers 202 at
// once; GET /admin/migrate follows it. A run is not tied to the request:
// it goes on when the client disconnects and is cancelled only by
// Shutdown.
func (s *Server) handleMigrateStart(c *gin.Context) {
	var req migrateRequest
	if c.Request.ContentLength != 0 && !s.read(c, &req, mediaJSON) {
		return
	}
	if req.Tenant != "" {
		// Fail fast on a name that matches no tenant, rather than
		// reporting it later as a failed run.
		if _, err := s.catalog.Get(c.Request.Context(), req.Tenant); err != nil {
			s.respondError(c, err)
			return
		}
	}
	if err := s.migration.start(time.Now().UTC(), req.Tenant); err != nil {
		s.respondError(c, err)
		return
	}
	// The answer shows the run just started: taken after the run begins,
	// the snapshot could already show it finished.
	started := s.migration.snapshot()
	go s.runMigration(req)
	c.Header("Location", "/admin/migrate")
	s.writeJSON(c, http.StatusAccepted, started)
}

func (s *Server) runMigration(req migrateRequest) {
	ctx := s.ctx
	s.log.InfoContext(ctx, "migration run started", "tenant", req.Tenant, "jobs", req.Jobs)
	rep, err := s.catalog.Migrate(ctx, tenants.MigrateOptions{Jobs: req.Jobs, Tenant: req.Tenant, Progress: s.migration.progress})
	stopped := ""
	switch {
	case err == nil:
		s.log.InfoContext(ctx, "migration run finished", "total", rep.Total, "migrated", rep.Migrated)
	case ctx.Err() != nil:
		stopped = "The run was cancelled because the server shut down; run it again to finish."
		s.log.WarnContext(ctx, "migration run cancelled by shutdown", "err", err)
	case rep.Failed > 0:
		// Each failed tenant is listed with its error in Failures.
		s.log.WarnContext(ctx, "migration run finished with failures", "failed", rep.Failed, "total", rep.Total)
	default:
		// Not one tenant's failure: the run itself could not go on.
		// Details go to the log only.
		stopped = "The run stopped before reaching every tenant; see the server log."
		s.log.ErrorContext(ctx, "migration run stopped", "err", err)
	}
	s.migration.finish(rep, stopped)
}

func (s *Server) handleMigrateStatus(c *gin.Context) {
	s.writeJSON(c, http.StatusOK, s.migration.snapshot())
}
