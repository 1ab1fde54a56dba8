package tenants

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"runtime"
	"sort"
	"sync"
	"time"

	"gorm.io/gorm"

	"tenantry/migrations"
)

// ErrMigrateFailed means one or more tenants of a Migrate run failed and
// were rolled back; MigrateReport.Failures says which and why.
var ErrMigrateFailed = errors.New("tenant migrations failed")

// MigrateOptions controls Catalog.Migrate.
type MigrateOptions struct {
	// Jobs is how many tenants are migrated at once. Zero means one per
	// CPU. It is never more than the pool's max open connections, since
	// every job holds a connection for its transaction.
	Jobs int
	// Tenant limits the run to one tenant by name.
	Tenant string
	// DryRun reports what would be applied without applying it. It reads
	// each behind tenant's own records, so checksum drift shows up too.
	DryRun bool
	// Start, when set, is called once before any tenant is worked on, with
	// the number of tenants the run will work on (those behind the code).
	Start func(total int)
	// Progress, when set, is called after each tenant finishes. Calls
	// never overlap, so it need not be safe for concurrent use.
	Progress func(Progress)
}

// Progress is reported after each tenant of a run finishes.
type Progress struct {
	// Done counts finished tenants, failed ones included, out of Total.
	Done, Failed, Total int
	Tenant              string
	Err                 error
}

// TenantFailure is one tenant whose migration failed and was rolled back.
type TenantFailure struct {
	Tenant string `json:"tenant"`
	Error  string `json:"error"`
	// Err is the error itself, for errors.Is (e.g. migrations.ErrChecksum).
	Err error `json:"-"`
}

// TenantPlan is what a run applies, or in a dry run would apply, to one
// tenant.
type TenantPlan struct {
	Tenant string `json:"tenant"`
	// From is the version the tenant's records show; To the set's latest.
	From int `json:"from"`
	To   int `json:"to"`
	// Migrations are named NNNN_name, in the order they apply.
	Migrations []string `json:"migrations"`
}

// MigrateReport summarises a run. Tenants are counted once each:
// Total = Migrated + UpToDate + Failed, plus, in a dry run, len(Pending).
type MigrateReport struct {
	// Latest is the version every tenant is brought to.
	Latest int `json:"latest"`
	// Jobs is how many tenants were migrated at once.
	Jobs     int `json:"jobs"`
	Total    int `json:"total"`
	Migrated int `json:"migrated"`
	// UpToDate counts tenants with nothing to apply, including those that
	// another runner migrated while this one waited for their lock.
	UpToDate int             `json:"up_to_date"`
	Failed   int             `json:"failed"`
	Failures []TenantFailure `json:"failures,omitempty"`
	// Pending lists, in a dry run, what each behind tenant would get.
	Pending []TenantPlan `json:"pending,omitempty"`
}

// Migrate applies the shared migrations, then the pending tenant
// migrations to every tenant (or to opts.Tenant), opts.Jobs at a time.
//
// Every tenant's version is read from the catalog in one query and only
// tenants behind the code are touched, so a run with nothing to do costs
// one query however many tenants there are. Each behind tenant is
// migrated in its own transaction under its advisory lock (the one Ensure
// takes), where its own schema_migrations records decide what is pending
// and their checksums are verified; a second runner waiting on the lock
// then finds nothing left to do. A failing tenant is rolled back, keeps
// its version and tables, and is listed in the report while the others go
// on; the error is then ErrMigrateFailed. Running again finishes the rest.
//
// A tenant recorded at a version newer than the code is a failure too:
// this binary cannot know what its schema holds.
func (c *Catalog) Migrate(ctx context.Context, opts MigrateOptions) (MigrateReport, error) {
	rep := MigrateReport{Latest: c.set.Latest(), Jobs: c.jobs(opts.Jobs)}
	if !opts.DryRun {
		if err := c.Bootstrap(ctx); err != nil {
			return rep, fmt.Errorf("migrate: %w", err)
		}
	}
	ts, err := c.versions(ctx, opts.Tenant)
	if err != nil {
		return rep, err
	}
	if opts.Tenant != "" && len(ts) == 0 {
		return rep, fmt.Errorf("%w: %q", ErrNotFound, opts.Tenant)
	}
	rep.Total = len(ts)
	var behind []Tenant
	for _, t := range ts {
		switch {
		case t.SchemaVersion < rep.Latest:
			behind = append(behind, t)
		case t.SchemaVersion > rep.Latest:
			err := fmt.Errorf("%w: %q is at version %d, this binary knows up to %d",
				migrations.ErrUnknownVersion, t.Name, t.SchemaVersion, rep.Latest)
			rep.fail(t.Name, err)
			if !opts.DryRun {
				c.events.migrationFailed()
			}
		default:
			rep.UpToDate++
		}
	}
	if err := c.verifyApplied(ctx, ts, rep.Latest); err != nil {
		rep.UpToDate = 0
		return rep, err
	}
	if opts.Start != nil {
		opts.Start(len(behind))
	}

	run := c.newRun(ctx, opts, &rep, len(behind))
	work := make(chan Tenant)
	var wg sync.WaitGroup
	for range min(rep.Jobs, max(len(behind), 1)) {
		wg.Go(func() {
			for t := range work {
				plan, err := c.migrateTenant(ctx, t, opts.DryRun)
				run.finish(t, plan, err)
			}
		})
	}
feed:
	for _, t := range behind {
		select {
		case work <- t:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	run.notify(true)

	sort.Slice(rep.Failures, func(i, j int) bool { return rep.Failures[i].Tenant < rep.Failures[j].Tenant })
	sort.Slice(rep.Pending, func(i, j int) bool { return rep.Pending[i].Tenant < rep.Pending[j].Tenant })
	if err := ctx.Err(); err != nil {
		return rep, fmt.Errorf("migrate: stopped after %d of %d tenants: %w", run.done, len(behind), err)
	}
	if rep.Failed > 0 {
		return rep, fmt.Errorf("%w: %d of %d tenants", ErrMigrateFailed, rep.Failed, rep.Total)
	}
	return rep, nil
}

func (r *MigrateReport) fail(tenant string, err error) {
	r.Failed++
	r.Failures = append(r.Failures, TenantFailure{Tenant: tenant, Error: err.Error(), Err: err})
}

// jobs bounds the requested parallelism by the pool: a job beyond its
// open connections would only wait for one.
func (c *Catalog) jobs(n int) int {
	if n <= 0 {
		n = runtime.NumCPU()
	}
	if pool, ok := c.db.ConnPool.(interface{ Stats() sql.DBStats }); ok {
		if limit := pool.Stats().MaxOpenConnections; limit > 0 && n > limit {
			n = limit
		}
	}
	return max(n, 1)
}

// versions reads every tenant's (or one tenant's) catalog row in one
// query, without hosts: all Migrate needs to find who is behind.
func (c *Catalog) versions(ctx context.Context, name string) ([]Tenant, error) {
	q := c.db.WithContext(ctx).Select("id", "name", "schema", "status", "schema_version").Order("name")
	if name != "" {
		q = q.Where("name = ?", name)
	}
	var ts []Tenant
	if err := q.Find(&ts).Error; err != nil {
		return nil, fmt.Errorf("read tenant versions: %w", err)
	}
	return ts, nil
}

// verifyApplied checks, with one query, that the migrations the fleet has
// applied are still the ones in the code. It reads the records of the
// most advanced tenant not newer than the code: every migration any
// tenant at or below that version has applied, it has applied too. An
// edited migration would otherwise go unnoticed whenever nobody is behind
// (a behind tenant's records are checked when it is migrated), and a
// tenant still behind would then apply the edited text, so that tenants
// diverge. Drift therefore stops the whole run before any tenant is
// touched.
func (c *Catalog) verifyApplied(ctx context.Context, ts []Tenant, latest int) error {
	var witness *Tenant
	for i := range ts {
		if v := ts[i].SchemaVersion; v <= latest && (witness == nil || v > witness.SchemaVersion) {
			witness = &ts[i]
		}
	}
	if witness == nil || witness.SchemaVersion == 0 {
		return nil
	}
	_, _, err := c.set.Plan(ctx, c.db, c.layout.TenantTarget(witness.Schema))
	switch {
	case errors.Is(err, migrations.ErrChecksum) || errors.Is(err, migrations.ErrUnknownVersion):
		return fmt.Errorf("migrate: the tenant migrations differ from what tenant %q (version %d) applied; nothing was migrated: %w",
			witness.Name, witness.SchemaVersion, err)
	case err != nil:
		return fmt.Errorf("migrate: read the applied migrations of tenant %q: %w", witness.Name, err)
	}
	return nil
}

// migrateTenant migrates one tenant in its own transaction and returns
// what it applied (nil when nothing was left to do). In a dry run it only
// reads the tenant's records, without a transaction or the lock.
func (c *Catalog) migrateTenant(ctx context.Context, t Tenant, dryRun bool) (*TenantPlan, error) {
	if dryRun {
		return c.planTenant(ctx, t)
	}
	var applied migrations.Set
	from := t.SchemaVersion
	err := c.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := c.lock(ctx, tx, "tenantry:tenant:"+t.Schema); err != nil {
			return err
		}
		// Re-read under the lock: the tenant may have been removed or
		// migrated since the run read the catalog.
		var cur Tenant
		err := tx.WithContext(ctx).Where("id = ?", t.ID).Take(&cur).Error
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read tenant %q: %w", t.Name, err)
		}
		from = cur.SchemaVersion
		applied, err = c.migrate(ctx, tx, &cur)
		return err
	})
	if err != nil {
		return nil, err
	}
	return c.plan(t, from, applied), nil
}

// planTenant is a dry run's migrateTenant: what t's own records say is
// pending, read without writing anything.
func (c *Catalog) planTenant(ctx context.Context, t Tenant) (*TenantPlan, error) {
	from, pending, err := c.set.Plan(ctx, c.db, c.layout.TenantTarget(t.Schema))
	if err != nil {
		return nil, err
	}
	return c.plan(t, from, pending), nil
}

// plan describes migrations, applied or pending, taking t from version
// from to the latest; nil when there are none.
func (c *Catalog) plan(t Tenant, from int, ms migrations.Set) *TenantPlan {
	if len(ms) == 0 {
		return nil
	}
	return &TenantPlan{Tenant: t.Name, From: from, To: c.set.Latest(), Migrations: ms.Labels()}
}

// run gathers the results of a Migrate run's jobs.
type run struct {
	c      *Catalog
	ctx    context.Context
	opts   MigrateOptions
	rep    *MigrateReport
	total  int
	mu     sync.Mutex
	done   int
	unseen bool // tenants migrated since the last change notification
	last   time.Time
}

func (c *Catalog) newRun(ctx context.Context, opts MigrateOptions, rep *MigrateReport, total int) *run {
	return &run{c: c, ctx: ctx, opts: opts, rep: rep, total: total, last: time.Now()}
}

// notifyEvery spaces out change notifications during a long run, so other
// processes serve migrated tenants again soon without reloading their
// catalog once per tenant.
const notifyEvery = time.Second

func (r *run) finish(t Tenant, plan *TenantPlan, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil && r.ctx.Err() != nil {
		// Cancelled mid-tenant: rolled back, neither done nor failed.
		return
	}
	r.done++
	switch {
	case err != nil:
		r.rep.fail(t.Name, err)
		if !r.opts.DryRun {
			r.c.events.migrationFailed()
		}
		r.c.log.WarnContext(r.ctx, "tenant migration failed; rolled back", "tenant", t.Name, "err", err)
	case plan == nil:
		r.rep.UpToDate++
	case r.opts.DryRun:
		r.rep.Pending = append(r.rep.Pending, *plan)
	default:
		r.rep.Migrated++
		r.c.events.migrationsApplied(len(plan.Migrations))
		r.unseen = true
		r.notifyLocked(false)
	}
	if r.opts.Progress != nil {
		r.opts.Progress(Progress{Done: r.done, Failed: r.rep.Failed, Total: r.total, Tenant: t.Name, Err: err})
	}
}

func (r *run) notify(final bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.notifyLocked(final)
}

func (r *run) notifyLocked(final bool) {
	if !r.unseen || (!final && time.Since(r.last) < notifyEvery) {
		return
	}
	r.unseen, r.last = false, time.Now()
	r.c.changed(context.WithoutCancel(r.ctx))
}

// TenantVersion is one tenant's migration state as the catalog records it.
type TenantVersion struct {
	Name    string `json:"name"`
	Schema  string `json:"schema"`
	Status  Status `json:"status"`
	Version int    `json:"version"`
	// Pending is how many migrations the tenant lacks (0 when ahead).
	Pending int `json:"pending"`
}

// StatusReport says where every tenant stands against the code's
// migrations.
type StatusReport struct {
	// Latest is the tenant version the code needs to serve a tenant.
	Latest int `json:"latest"`
	// Shared and SharedLatest are the catalog schema's applied and known
	// shared migration versions.
	Shared       int             `json:"shared"`
	SharedLatest int             `json:"shared_latest"`
	Tenants      []TenantVersion `json:"tenants"`
	UpToDate     int             `json:"up_to_date"`
	Behind       int             `json:"behind"`
	// Ahead counts tenants migrated by a newer binary than this one.
	Ahead int `json:"ahead"`
}

// MigrationStatus reports each tenant's version and pending count, read
// from the catalog in one query, ordered by name.
func (c *Catalog) MigrationStatus(ctx context.Context) (StatusReport, error) {
	rep := StatusReport{Latest: c.set.Latest(), SharedLatest: migrations.Shared().Latest()}
	err := c.db.WithContext(ctx).Raw("SELECT coalesce(max(version), 0) FROM " +
		migrations.Quote(c.layout.SharedTable("schema_migrations"))).Scan(&rep.Shared).Error
	if err != nil {
		return rep, fmt.Errorf("read shared version: %w", err)
	}
	ts, err := c.versions(ctx, "")
	if err != nil {
		return rep, err
	}
	rep.Tenants = make([]TenantVersion, 0, len(ts))
	for _, t := range ts {
		v := TenantVersion{Name: t.Name, Schema: t.Schema, Status: t.Status, Version: t.SchemaVersion,
			Pending: max(rep.Latest-t.SchemaVersion, 0)}
		switch {
		case t.SchemaVersion < rep.Latest:
			rep.Behind++
		case t.SchemaVersion > rep.Latest:
			rep.Ahead++
		default:
			rep.UpToDate++
		}
		rep.Tenants = append(rep.Tenants, v)
	}
	return rep, nil
}
