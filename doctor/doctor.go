package doctor

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"

	"gorm.io/gorm"

	"tenantry/config"
	"tenantry/database"
	"tenantry/migrations"
	"tenantry/tenants"
)

// Severity says how serious a finding is.
type Severity string

// Severities. Both make the command exit non-zero unless warnings are
// accepted (Report.ExitCode).
const (
	// Error is a deployment fault: a tenant that is not served, or served
	// from a schema that differs from the code's, data where it must not
	// be, or data other roles can read.
	Error Severity = "error"
	// Warning is a risk that is not yet a fault: server settings too small
	// for the tenant count, an extra table or index, default privileges
	// that would expose objects created later.
	Warning Severity = "warning"
)

// The checks, in the order Run reports them. A Finding's Check is one of
// these.
const (
	CheckCatalog    = "catalog"
	CheckPlacements = "placements"
	CheckStorage    = "storage"
	CheckMigrations = "migrations"
	CheckColumns    = "columns"
	CheckIndexes    = "indexes"
	CheckShared     = "shared"
	CheckOrphans    = "orphans"
	CheckHosts      = "hosts"
	CheckGrants     = "grants"
	CheckSettings   = "settings"
)

// Checks returns every check's name in the order Run reports them.
func Checks() []string {
	return []string{CheckCatalog, CheckPlacements, CheckStorage, CheckMigrations, CheckColumns, CheckIndexes,
		CheckShared, CheckOrphans, CheckHosts, CheckGrants, CheckSettings}
}

// Exit statuses of `tenantry doctor`.
const (
	// ExitClean means no finding (or, with warnings accepted, no error).
	ExitClean = 0
	// ExitFindings means at least one finding counts.
	ExitFindings = 1
	// ExitFailed means the doctor itself could not run: configuration,
	// the control database unreachable, a query refused. Another database
	// unreachable is a finding.
	ExitFailed = 2
)

// Finding is one thing wrong with the deployment.
type Finding struct {
	Check    string   `json:"check"`
	Severity Severity `json:"severity"`
	// Database names the database the finding is about, as configured
	// (database.name for the control database, a databases entry's name
	// otherwise): set on every finding about what a database holds or how
	// its server is set, and on a tenant's placement; empty for the
	// catalog's rows and hosts, which live on the control database.
	Database string `json:"database,omitempty"`
	// Tenant is the catalog name of the tenant concerned, empty when the
	// finding belongs to no tenant (an orphan, the shared schema, the
	// server).
	Tenant string `json:"tenant,omitempty"`
	// Object is what the finding is about, spelled as in the database:
	// a schema, a qualified table, table.column, an index, a host, a
	// server setting.
	Object string `json:"object,omitempty"`
	// Message says what was found, what was expected and why it matters.
	Message string `json:"message"`
}

// CheckResult says whether a check ran and what it found.
type CheckResult struct {
	Name string `json:"name"`
	// Skipped is why the check did not run (it does not apply to the
	// database, or the catalog is missing); empty when it ran.
	Skipped  string `json:"skipped,omitempty"`
	Errors   int    `json:"errors"`
	Warnings int    `json:"warnings"`
}

// DatabaseResult says whether one database was audited.
type DatabaseResult struct {
	// Name is the database's configured name.
	Name string `json:"name"`
	// Tenants counts the catalog's tenants placed on it.
	Tenants int `json:"tenants"`
	// Skipped is why it was not audited (it cannot be reached, or it is
	// not configured); empty when it was.
	Skipped string `json:"skipped,omitempty"`
}

// Report is the outcome of one audit.
type Report struct {
	Dialect  migrations.Dialect `json:"dialect"`
	Strategy tenants.Strategy   `json:"strategy"`
	// Tenants counts the catalog's tenants.
	Tenants int `json:"tenants"`
	// Databases lists every configured database, the control one first,
	// then any database the catalog places a tenant on that is not
	// configured. Empty when there is no catalog.
	Databases []DatabaseResult `json:"databases"`
	// Latest is the tenant migration version the code requires.
	Latest int `json:"latest"`
	// Checks lists every check in order, with what it found.
	Checks []CheckResult `json:"checks"`
	// Findings are sorted by check, then tenant, then object; never nil.
	Findings []Finding `json:"findings"`
	// Archived lists the data of removed tenants kept under archive names
	// (archived_* schemas, or archived_*_* table groups), and the sources
	// that moves archived. It is expected after `tenants remove` without
	// --drop-data and after `tenants move` without --drop-source, so it is
	// no finding; it is listed so an operator can see what is kept. Those
	// on a database other than the control one end in " on database
	// NAME".
	Archived []string `json:"archived"`
	Errors   int      `json:"errors"`
	Warnings int      `json:"warnings"`
}

// ExitCode is the command's exit status for the report: ExitFindings when
// there is any finding, or with warningsOK any error; ExitClean otherwise.
func (r Report) ExitCode(warningsOK bool) int {
	if r.Errors > 0 || (r.Warnings > 0 && !warningsOK) {
		return ExitFindings
	}
	return ExitClean
}

// Deps is what Run audits and against what.
type Deps struct {
	// DB is the process's pool, as app.Open made it (read-only is enough;
	// Run reads and never writes).
	DB *gorm.DB
	// Layout says where tenants' tables live.
	Layout tenants.Layout
	// Migrations are the tenant migrations the code applies; nil means
	// migrations.Tenant(). Pass Catalog.Migrations() so the doctor expects
	// what the serving processes require.
	Migrations migrations.Set
	// Pool is the database configuration of each serving process, for the
	// server-settings check; a zero MaxOpenConns means config.Default()'s.
	Pool config.Database
	// Instances is how many tenantry processes share the database, each
	// with Pool; 0 means 1.
	Instances int
}

// Run audits the deployment behind d.DB and returns what it found. It
// reads and never writes (see the package doc for the one rolled-back
// transaction on PostgreSQL). An error means the audit could not be done
// (ExitFailed); findings are never errors, and neither is a database
// other than the control one that cannot be reached (a placements
// finding).
func Run(ctx context.Context, d Deps) (Report, error) {
	if d.DB == nil {
		return Report{}, errors.New("doctor: no database")
	}
	if d.Migrations == nil {
		d.Migrations = migrations.Tenant()
	}
	if d.Instances < 1 {
		d.Instances = 1
	}
	a := &audit{d: d, set: d.Migrations, results: map[string]*CheckResult{}}
	a.rep = Report{Dialect: d.Layout.Dialect, Strategy: d.Layout.Strategy, Latest: d.Migrations.Latest(),
		Databases: []DatabaseResult{}, Findings: []Finding{}, Archived: []string{}}
	for _, c := range Checks() {
		a.results[c] = &CheckResult{Name: c}
	}

	snap, err := read(ctx, d.DB, d.Layout, placementNames(d.DB))
	if err != nil {
		return Report{}, fmt.Errorf("doctor: %w", err)
	}
	if !snap.catalog {
		a.add(Finding{Check: CheckCatalog, Severity: Error, Object: d.Layout.SharedTable("tenants"),
			Message: "the catalog does not exist, so no tenant can be served; run `tenantry migrate` (or start the service) to create it"})
		for _, c := range Checks()[1:] {
			a.skip(c, "no catalog")
		}
		return a.finish(), nil
	}
	a.rep.Tenants = len(snap.tenants)
	a.rep.Databases = snap.results()
	// One reference for every database, built on the control one: a
	// placement on a server of another major version is compared with the
	// control server's spelling of types, defaults and index definitions.
	refs, err := buildReferences(database.OnPlacement(ctx, ""), d.DB, d.Layout.Dialect, d.Migrations, a.referenceVersions(snap))
	if err != nil {
		return Report{}, fmt.Errorf("doctor: build the reference schema: %w", err)
	}

	a.checkCatalog(snap)
	a.checkPlacements(snap)
	for _, p := range snap.audited() {
		a.on(p.name, func() {
			a.checkTenants(p, refs)
			a.checkUnowned(snap, p)
		})
	}
	for _, f := range checkHosts(snap.tenants, snap.hosts) {
		a.add(f)
	}
	if d.Layout.Dialect != migrations.Postgres {
		a.skip(CheckGrants, "SQLite has no roles or privileges: whoever can read the file reads every tenant")
		a.skip(CheckSettings, "SQLite has no server settings to size")
		return a.finish(), nil
	}
	for _, p := range snap.audited() {
		a.on(p.name, func() { a.checkGrants(p) })
	}
	for _, s := range snap.servers() {
		a.on(s.placements[0].name, func() {
			for _, f := range checkSettings(s.placements[0].settings, a.demand(s, refs)) {
				a.add(f)
			}
		})
	}
	return a.finish(), nil
}

// placementNames returns the configured name of every database behind db,
// the control one first; a pool that database.Open did not make has only
// the control database, named config.DefaultPlacement.
func placementNames(db *gorm.DB) []string {
	p, err := database.PlacementsOf(db)
	if err != nil {
		return []string{config.DefaultPlacement}
	}
	return p.Names()
}

// audit collects the findings of one Run.
type audit struct {
	d       Deps
	set     migrations.Set
	rep     Report
	results map[string]*CheckResult
}

func (a *audit) add(f Finding) {
	a.rep.Findings = append(a.rep.Findings, f)
}

func (a *audit) skip(check, why string) { a.results[check].Skipped = why }

// on runs checks that look at one database and marks the findings they
// add with its name.
func (a *audit) on(name string, checks func()) {
	from := len(a.rep.Findings)
	checks()
	for i := from; i < len(a.rep.Findings); i++ {
		a.rep.Findings[i].Database = name
	}
}

// finish sorts the findings and counts them per check and in all.
func (a *audit) finish() Report {
	order := map[string]int{}
	for i, c := range Checks() {
		order[c] = i
	}
	// Databases in the report's order (the control one first), findings
	// about no database before them.
	dbOrder := map[string]int{}
	for i, r := range a.rep.Databases {
		dbOrder[r.Name] = i + 1
	}
	slices.SortStableFunc(a.rep.Findings, func(x, y Finding) int {
		return cmp.Or(cmp.Compare(order[x.Check], order[y.Check]), cmp.Compare(dbOrder[x.Database], dbOrder[y.Database]),
			cmp.Compare(x.Database, y.Database), cmp.Compare(x.Tenant, y.Tenant),
			cmp.Compare(x.Object, y.Object), cmp.Compare(x.Message, y.Message))
	})
	for _, f := range a.rep.Findings {
		r := a.results[f.Check]
		if f.Severity == Error {
			r.Errors++
			a.rep.Errors++
		} else {
			r.Warnings++
			a.rep.Warnings++
		}
	}
	for _, c := range Checks() {
		a.rep.Checks = append(a.rep.Checks, *a.results[c])
	}
	slices.Sort(a.rep.Archived)
	a.rep.Archived = slices.Compact(a.rep.Archived)
	return a.rep
}
