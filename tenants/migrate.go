package tenants

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sort"
	"sync"
	"time"

	"gorm.io/gorm"

	"tenantry/database"
	"tenantry/migrations"
)

// ErrMigrateFailed means one or more tenants of a Migrate run failed and
// were rolled back; MigrateReport.Failures says which and why.
var ErrMigrateFailed = errors.New("tenant migrations failed")

// MigrateOptions controls Migrator.Migrate.
type MigrateOptions struct {
	// Jobs is how many tenants of one database are migrated at once; the
	// databases are worked on side by side. Zero means one per CPU. It is
	// never more than that database's pool's max open connections, since
	// every job holds a connection there for its transaction; and every
	// job also holds one of the control database's (the catalog's side of
	// the job), so the jobs of all databases together never exceed that
	// pool's.
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
	// Database is the configured name of the tenant's database.
	Database string
	Err      error
}

// TenantFailure is one tenant whose migration failed and was rolled back.
type TenantFailure struct {
	Tenant string `json:"tenant"`
	// Database is the configured name of the tenant's database.
	Database string `json:"database"`
	Error    string `json:"error"`
	// Err is the error itself, for errors.Is (e.g. migrations.ErrChecksum).
	Err error `json:"-"`
}

// TenantPlan is what a run applies, or in a dry run would apply, to one
// tenant.
type TenantPlan struct {
	Tenant string `json:"tenant"`
	// Database is the configured name of the tenant's database.
	Database string `json:"database"`
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
	// Jobs is how many tenants of one database were migrated at once, at
	// most (each database's own is in Databases).
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
	// Databases splits the counts by database: every configured one, the
	// control database first, then any database a tenant names that this
	// process has no configuration for (its tenants all fail).
	Databases []DatabaseReport `json:"databases,omitempty"`
}

// DatabaseReport is one database's share of a run, counted as the
// MigrateReport is: Total = Migrated + UpToDate + Failed + Pending.
type DatabaseReport struct {
	// Name is the database's configured name (database.name for the
	// control database).
	Name string `json:"name"`
	// Jobs is how many of its tenants were migrated at once, at most.
	Jobs     int `json:"jobs"`
	Total    int `json:"total"`
	Migrated int `json:"migrated"`
	UpToDate int `json:"up_to_date"`
	Failed   int `json:"failed"`
	// Pending counts, in a dry run, its tenants that would be migrated.
	Pending int `json:"pending"`
}

// Migrator is the all-tenants migration runner behind `tenantry migrate`,
// `tenantry migrate status` and POST /admin/migrate. It works through the
// catalog it is made from, whose per-tenant step (Catalog.migrate) it
// calls for each tenant, and changes for its own reasons: how a fleet of
// tenants spread over several databases is brought up to date at once.
//
// Tenants are grouped by the database holding them (their placement), and
// every database is worked on at the same time, each with its own jobs
// (MigrateOptions.Jobs) bounded by its own pool. The checks that protect
// the fleet hold per database: the drift check reads one witness on each,
// and the advisory lock a tenant is migrated under is taken on the
// catalog's database and on the tenant's. A database that cannot be
// reached fails its own tenants, each listed in the report, and never
// holds back the others'.
type Migrator struct {
	c *Catalog
}

// NewMigrator returns the runner over c's tenants, migrations and pool.
func NewMigrator(c *Catalog) *Migrator { return &Migrator{c: c} }

// Migrate is NewMigrator(c).Migrate, kept on the catalog for its callers.
func (c *Catalog) Migrate(ctx context.Context, opts MigrateOptions) (MigrateReport, error) {
	return NewMigrator(c).Migrate(ctx, opts)
}

// MigrationStatus is NewMigrator(c).Status, kept on the catalog for its
// callers.
func (c *Catalog) MigrationStatus(ctx context.Context) (StatusReport, error) {
	return NewMigrator(c).Status(ctx)
}

// Migrate applies the shared migrations, then the pending tenant
// migrations to every tenant (or to opts.Tenant), on every database at
// once, opts.Jobs at a time on each.
//
// Every tenant's version is read from the catalog in one query and only
// tenants behind the code are touched, so a run with nothing to do costs
// that query and one drift check per database however many tenants there
// are. Each behind tenant is migrated in its own transaction under its
// advisory lock (the one Ensure takes), where its own schema_migrations
// records decide what is pending and their checksums are verified; a
// second runner waiting on the lock then finds nothing left to do. A
// failing tenant is rolled back, keeps its version and tables, and is
// listed in the report while the others go on; the error is then
// ErrMigrateFailed. Running again finishes the rest.
//
// A tenant recorded at a version newer than the code is a failure too:
// this binary cannot know what its schema holds. So is every tenant of a
// database whose drift check could not read it (down, or not configured
// here): none of them is known to be up to date, and none is touched.
func (m *Migrator) Migrate(ctx context.Context, opts MigrateOptions) (MigrateReport, error) {
	c := m.c
	control := m.poolLimit("")
	rep := MigrateReport{Latest: c.set.Latest(), Jobs: bound(opts.Jobs, control)}
	if !opts.DryRun {
		if err := c.Bootstrap(ctx); err != nil {
			return rep, fmt.Errorf("migrate: %w", err)
		}
	}
	ts, err := m.versions(ctx, opts.Tenant)
	if err != nil {
		return rep, err
	}
	if opts.Tenant != "" && len(ts) == 0 {
		return rep, fmt.Errorf("%w: %q", ErrNotFound, opts.Tenant)
	}
	rep.Total = len(ts)
	parts := m.split(ts, &rep)
	for _, p := range parts {
		for _, t := range p.tenants {
			switch {
			case t.SchemaVersion < rep.Latest:
				p.behind = append(p.behind, t)
			case t.SchemaVersion > rep.Latest:
				err := fmt.Errorf("%w: %q is at version %d, this binary knows up to %d",
					migrations.ErrUnknownVersion, t.Name, t.SchemaVersion, rep.Latest)
				rep.fail(p.rep, t.Name, err)
				if !opts.DryRun {
					c.events.migrationFailed()
				}
			default:
				rep.UpToDate++
				p.rep.UpToDate++
			}
		}
	}
	if err := m.verify(ctx, parts, rep.Latest); err != nil {
		rep.UpToDate = 0
		for i := range rep.Databases {
			rep.Databases[i].UpToDate = 0
		}
		return rep, err
	}
	behind := 0
	for _, p := range parts {
		if p.err != nil {
			m.failAll(ctx, &rep, p, opts.DryRun)
			continue
		}
		behind += len(p.behind)
	}
	if opts.Start != nil {
		opts.Start(behind)
	}

	r := m.newRun(ctx, opts, &rep, behind)
	// slots bounds the jobs of every database together by the control
	// pool, which carries the catalog's side of each (migrateTenant's
	// transaction): without it, databases whose own pools are large would
	// queue on the control pool's connections while holding theirs.
	var slots chan struct{}
	if control > 0 {
		slots = make(chan struct{}, control)
	}
	var wg sync.WaitGroup
	for _, p := range parts {
		if p.err != nil || len(p.behind) == 0 {
			continue
		}
		p.rep.Jobs = bound(rep.Jobs, m.poolLimit(p.placement))
		work := make(chan Tenant, len(p.behind))
		for _, t := range p.behind {
			work <- t
		}
		close(work)
		for range min(p.rep.Jobs, len(p.behind)) {
			wg.Go(func() {
				for t := range work {
					if ctx.Err() != nil {
						return
					}
					plan, err := m.job(ctx, slots, t, opts.DryRun)
					r.finish(p, t, plan, err)
				}
			})
		}
	}
	wg.Wait()
	r.notify(true)

	sort.Slice(rep.Failures, func(i, j int) bool { return rep.Failures[i].Tenant < rep.Failures[j].Tenant })
	sort.Slice(rep.Pending, func(i, j int) bool { return rep.Pending[i].Tenant < rep.Pending[j].Tenant })
	if err := ctx.Err(); err != nil {
		return rep, fmt.Errorf("migrate: stopped after %d of %d tenants: %w", r.done, behind, err)
	}
	if rep.Failed > 0 {
		return rep, fmt.Errorf("%w: %d of %d tenants", ErrMigrateFailed, rep.Failed, rep.Total)
	}
	return rep, nil
}

func (r *MigrateReport) fail(db *DatabaseReport, tenant string, err error) {
	r.Failed++
	db.Failed++
	r.Failures = append(r.Failures, TenantFailure{Tenant: tenant, Database: db.Name, Error: err.Error(), Err: err})
}

// part is one database's share of a run.
type part struct {
	// placement is the catalog's value for the database: "" for the
	// control one.
	placement string
	rep       *DatabaseReport
	// tenants are the run's tenants on the database, behind those of them
	// behind the code.
	tenants, behind []Tenant
	// err is why the database's drift check could not read it (verify):
	// its tenants all fail with it.
	err error
}

// split groups ts by database, in the order of MigrateReport.Databases,
// which it fills in with each database's total.
func (m *Migrator) split(ts []Tenant, rep *MigrateReport) []*part {
	order, by := m.placements(ts)
	rep.Databases = make([]DatabaseReport, len(order))
	parts := make([]*part, len(order))
	for i, p := range order {
		rep.Databases[i] = DatabaseReport{Name: m.c.nameOf(p), Total: len(by[p])}
		parts[i] = &part{placement: p, rep: &rep.Databases[i], tenants: by[p]}
	}
	return parts
}

// placements returns the placement of every configured database, the
// control one ("") first, then those ts name that are not configured, and
// ts grouped by placement.
func (m *Migrator) placements(ts []Tenant) (order []string, by map[string][]Tenant) {
	control, names := m.c.Databases()
	order = []string{""}
	for _, n := range names {
		if n != control {
			order = append(order, n)
		}
	}
	by = map[string][]Tenant{}
	var unknown []string
	for _, t := range ts {
		p := t.Database
		if p == control {
			p = ""
		}
		if !slices.Contains(order, p) && !slices.Contains(unknown, p) {
			unknown = append(unknown, p)
		}
		by[p] = append(by[p], t)
	}
	sort.Strings(unknown)
	return append(order, unknown...), by
}

// poolLimit returns the max open connections of placement p's pool, 0
// when it has no bound or this process no pool for p.
func (m *Migrator) poolLimit(p string) int {
	if ps, err := database.PlacementsOf(m.c.db); err == nil {
		if r, ok := ps.Router(p); ok {
			return r.Stats().MaxOpenConnections
		}
		return 0
	}
	// A pool that Open did not make is the control database alone.
	if pool, ok := m.c.db.ConnPool.(interface{ Stats() sql.DBStats }); ok && p == "" {
		return pool.Stats().MaxOpenConnections
	}
	return 0
}

// bound returns the requested parallelism (one per CPU when n <= 0)
// bounded by a pool of limit connections: a job beyond them would only
// wait for one.
func bound(n, limit int) int {
	if n <= 0 {
		n = runtime.NumCPU()
	}
	if limit > 0 && n > limit {
		n = limit
	}
	return max(n, 1)
}

// versions reads every tenant's (or one tenant's) catalog row in one
// query, without hosts: all Migrate needs to find who is behind, and
// where.
func (m *Migrator) versions(ctx context.Context, name string) ([]Tenant, error) {
	q := m.c.db.WithContext(ctx).Select("id", "name", "schema", "status", "schema_version", "database").Order("name")
	if name != "" {
		q = q.Where("name = ?", name)
	}
	var ts []Tenant
	if err := q.Find(&ts).Error; err != nil {
		return nil, fmt.Errorf("read tenant versions: %w", err)
	}
	return ts, nil
}

// verify runs the drift check (verifyApplied) on every database at once.
// Drift on any database stops the whole run before any tenant is touched:
// the migrations in the code are the same for every database, so an
// edited one is wrong for them all. A database that could not be read
// keeps the error (part.err) and fails only its own tenants.
func (m *Migrator) verify(ctx context.Context, parts []*part, latest int) error {
	errs := make([]error, len(parts))
	var wg sync.WaitGroup
	for i, p := range parts {
		wg.Go(func() { errs[i] = m.verifyApplied(ctx, p, latest) })
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	for i, err := range errs {
		if errors.Is(err, migrations.ErrChecksum) || errors.Is(err, migrations.ErrUnknownVersion) {
			return err
		}
		parts[i].err = err
	}
	return nil
}

// verifyApplied checks, with one query on p's database, that the
// migrations its tenants have applied are still the ones in the code. It
// reads the records of the most advanced tenant there not newer than the
// code: every migration any tenant at or below that version has applied,
// it has applied too. An edited migration would otherwise go unnoticed
// whenever nobody is behind (a behind tenant's records are checked when
// it is migrated), and a tenant still behind would then apply the edited
// text, so that tenants diverge. One witness per database, because a
// database restored from an older backup, or migrated by hand, can differ
// from the others.
func (m *Migrator) verifyApplied(ctx context.Context, p *part, latest int) error {
	var witness *Tenant
	for i := range p.tenants {
		if v := p.tenants[i].SchemaVersion; v <= latest && (witness == nil || v > witness.SchemaVersion) {
			witness = &p.tenants[i]
		}
	}
	if witness == nil || witness.SchemaVersion == 0 {
		return nil
	}
	c := m.c
	_, _, err := c.set.Plan(database.OnPlacement(ctx, p.placement), c.db, c.layout.TenantTarget(witness.Schema))
	switch {
	case errors.Is(err, migrations.ErrChecksum) || errors.Is(err, migrations.ErrUnknownVersion):
		return fmt.Errorf("migrate: the tenant migrations differ from what tenant %q (version %d) applied on database %s; nothing was migrated: %w",
			witness.Name, witness.SchemaVersion, p.rep.Name, err)
	case err != nil:
		return fmt.Errorf("database %s not checked for drift, so none of its tenants was migrated: read the applied migrations of tenant %q: %w",
			p.rep.Name, witness.Name, err)
	}
	return nil
}

// failAll fails every tenant of p's database that is not failed already,
// with the error its drift check met.
func (m *Migrator) failAll(ctx context.Context, rep *MigrateReport, p *part, dryRun bool) {
	n := 0
	for _, t := range p.tenants {
		switch {
		case t.SchemaVersion > rep.Latest:
			continue // failed already, as newer than the code
		case t.SchemaVersion == rep.Latest:
			rep.UpToDate--
			p.rep.UpToDate--
		}
		rep.fail(p.rep, t.Name, p.err)
		if !dryRun {
			m.c.events.migrationFailed()
		}
		n++
	}
	p.behind = nil
	m.c.log.WarnContext(ctx, "tenant migrations skipped on a database that could not be read",
		"database", p.rep.Name, "tenants", n, "err", p.err)
}

// job migrates (or plans) t once it holds one of slots, when its work
// takes a connection of the control database: every job but a dry run's
// for a tenant on another database.
func (m *Migrator) job(ctx context.Context, slots chan struct{}, t Tenant, dryRun bool) (*TenantPlan, error) {
	if slots != nil && (!dryRun || t.Database == "") {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		defer func() { <-slots }()
	}
	return m.migrateTenant(ctx, t, dryRun)
}

// migrateTenant migrates one tenant in its own transaction on the
// catalog's database, under its advisory lock there, and returns what it
// applied (nil when nothing was left to do); Catalog.migrate does the
// tenant's own database's part. In a dry run it only reads the tenant's
// records, without a transaction or the lock.
func (m *Migrator) migrateTenant(ctx context.Context, t Tenant, dryRun bool) (*TenantPlan, error) {
	if dryRun {
		return m.planTenant(ctx, t)
	}
	c := m.c
	var applied migrations.Set
	from := t.SchemaVersion
	err := c.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := c.lock(ctx, tx, "tenantry:tenant:"+t.Schema); err != nil {
			return err
		}
		// Re-read under the lock: the tenant may have been removed,
		// migrated or moved since the run read the catalog.
		var cur Tenant
		err := tx.WithContext(ctx).Where("id = ?", t.ID).Take(&cur).Error
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read tenant %q: %w", t.Name, err)
		}
		from, t.Database = cur.SchemaVersion, cur.Database
		applied, err = c.migrate(ctx, tx, &cur)
		return err
	})
	if err != nil {
		return nil, err
	}
	return m.plan(t, from, applied), nil
}

// planTenant is a dry run's migrateTenant: what t's own records, on its
// database, say is pending, read without writing anything.
func (m *Migrator) planTenant(ctx context.Context, t Tenant) (*TenantPlan, error) {
	c := m.c
	from, pending, err := c.set.Plan(database.OnPlacement(ctx, t.Database), c.db, c.layout.TenantTarget(t.Schema))
	if err != nil {
		return nil, fmt.Errorf("read the applied migrations of %q on database %s: %w", t.Name, c.DatabaseName(&t), err)
	}
	return m.plan(t, from, pending), nil
}

// plan describes migrations, applied or pending, taking t from version
// from to the latest; nil when there are none.
func (m *Migrator) plan(t Tenant, from int, ms migrations.Set) *TenantPlan {
	if len(ms) == 0 {
		return nil
	}
	return &TenantPlan{Tenant: t.Name, Database: m.c.DatabaseName(&t), From: from, To: m.c.set.Latest(), Migrations: ms.Labels()}
}

// run gathers the results of a Migrate run's jobs, which finish on every
// database at once.
type run struct {
	m      *Migrator
	ctx    context.Context
	opts   MigrateOptions
	rep    *MigrateReport
	total  int
	mu     sync.Mutex
	done   int
	unseen bool // tenants migrated since the last change notification
	last   time.Time
}

func (m *Migrator) newRun(ctx context.Context, opts MigrateOptions, rep *MigrateReport, total int) *run {
	return &run{m: m, ctx: ctx, opts: opts, rep: rep, total: total, last: time.Now()}
}

// notifyEvery spaces out change notifications during a long run, so other
// processes serve migrated tenants again soon without reloading their
// catalog once per tenant.
const notifyEvery = time.Second

func (r *run) finish(p *part, t Tenant, plan *TenantPlan, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil && r.ctx.Err() != nil {
		// Cancelled mid-tenant: rolled back, neither done nor failed.
		return
	}
	c := r.m.c
	r.done++
	switch {
	case err != nil:
		r.rep.fail(p.rep, t.Name, err)
		if !r.opts.DryRun {
			c.events.migrationFailed()
		}
		c.log.WarnContext(r.ctx, "tenant migration failed; rolled back", "tenant", t.Name, "database", p.rep.Name, "err", err)
	case plan == nil:
		r.rep.UpToDate++
		p.rep.UpToDate++
	case r.opts.DryRun:
		r.rep.Pending = append(r.rep.Pending, *plan)
		p.rep.Pending++
	default:
		r.rep.Migrated++
		p.rep.Migrated++
		c.events.migrationsApplied(len(plan.Migrations))
		r.unseen = true
		r.notifyLocked(false)
	}
	if r.opts.Progress != nil {
		r.opts.Progress(Progress{Done: r.done, Failed: r.rep.Failed, Total: r.total, Tenant: t.Name, Database: p.rep.Name, Err: err})
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
	r.m.c.changed(context.WithoutCancel(r.ctx))
}

// TenantVersion is one tenant's migration state as the catalog records it.
type TenantVersion struct {
	Name   string `json:"name"`
	Schema string `json:"schema"`
	// Database is the configured name of the tenant's database.
	Database string `json:"database"`
	Status   Status `json:"status"`
	Version  int    `json:"version"`
	// Pending is how many migrations the tenant lacks (0 when ahead).
	Pending int `json:"pending"`
}

// DatabaseStatus counts one database's tenants by where they stand.
type DatabaseStatus struct {
	Name     string `json:"name"`
	Tenants  int    `json:"tenants"`
	UpToDate int    `json:"up_to_date"`
	Behind   int    `json:"behind"`
	Ahead    int    `json:"ahead"`
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
	// Databases splits the counts by database, in the order of
	// MigrateReport.Databases.
	Databases []DatabaseStatus `json:"databases,omitempty"`
}

// Status reports each tenant's version, pending count and database, read
// from the catalog in one query, ordered by name. It reads no tenant's
// database, so it answers while one is down.
func (m *Migrator) Status(ctx context.Context) (StatusReport, error) {
	c := m.c
	rep := StatusReport{Latest: c.set.Latest(), SharedLatest: migrations.Shared().Latest()}
	err := c.db.WithContext(ctx).Raw("SELECT coalesce(max(version), 0) FROM " +
		migrations.Quote(c.layout.SharedTable("schema_migrations"))).Scan(&rep.Shared).Error
	if err != nil {
		return rep, fmt.Errorf("read shared version: %w", err)
	}
	ts, err := m.versions(ctx, "")
	if err != nil {
		return rep, err
	}
	order, by := m.placements(ts)
	rep.Databases = make([]DatabaseStatus, len(order))
	index := make(map[string]*DatabaseStatus, len(order))
	for i, p := range order {
		rep.Databases[i] = DatabaseStatus{Name: m.c.nameOf(p), Tenants: len(by[p])}
		for _, t := range by[p] {
			index[t.Name] = &rep.Databases[i]
		}
	}
	rep.Tenants = make([]TenantVersion, 0, len(ts))
	for _, t := range ts {
		db := index[t.Name]
		v := TenantVersion{Name: t.Name, Schema: t.Schema, Database: db.Name, Status: t.Status, Version: t.SchemaVersion,
			Pending: max(rep.Latest-t.SchemaVersion, 0)}
		switch {
		case t.SchemaVersion < rep.Latest:
			rep.Behind++
			db.Behind++
		case t.SchemaVersion > rep.Latest:
			rep.Ahead++
			db.Ahead++
		default:
			rep.UpToDate++
			db.UpToDate++
		}
		rep.Tenants = append(rep.Tenants, v)
	}
	return rep, nil
}
