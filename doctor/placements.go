package doctor

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"gorm.io/gorm"

	"tenantry/database"
	"tenantry/fault"
	"tenantry/migrations"
	"tenantry/tenants"
)

// placement is one configured database as the checks see it: the tenants
// the catalog places on it and what it holds, read in one transaction of
// its own (the control database's in the catalog's).
type placement struct {
	name    string
	control bool
	// alone is set when the deployment has no other database; messages
	// then need not name it.
	alone   bool
	tenants []catTenant
	// err is why the database could not be read: it cannot be reached.
	// Nothing below is set then.
	err error
	// records holds each tenant's migration records by schema, for the
	// tenants whose record table exists and has the expected columns.
	records map[string][]record
	inv     inventory
	// PostgreSQL only. user is the role the doctor (and, with the same
	// configuration, tenantry) connects as.
	user     string
	grants   []grant
	defaults []defaultGrant
	settings serverSettings
	// server tells PostgreSQL servers apart (postmaster start time and
	// port), so that databases on one server are sized together; dbname
	// is the database's own name on it.
	server string
	dbname string
}

func newPlacement(name string, control bool) *placement {
	return &placement{name: name, control: control, records: map[string][]record{}, inv: newInventory()}
}

// read reads a database other than the control one in a transaction of
// its own. A database that cannot be reached is noted in p.err, not
// returned: the other databases are still audited. Any other failure
// (a query refused) is the run's.
func (p *placement) read(ctx context.Context, db *gorm.DB, layout tenants.Layout) error {
	pctx := database.OnPlacement(ctx, p.name)
	var err error
	// Twice: the first attempt may take a pooled connection that the
	// server closed when it restarted, which says nothing of it now.
	for range 2 {
		*p = *newPlacementLike(p)
		err = db.WithContext(pctx).Transaction(func(tx *gorm.DB) error {
			if err := p.readInventory(pctx, tx, layout); err != nil {
				return err
			}
			return p.readRest(pctx, tx, layout)
		}, txOptions(layout))
		if err == nil || !unreachable(err) {
			break
		}
	}
	switch {
	case err == nil:
		return nil
	case unreachable(err):
		*p = *newPlacementLike(p)
		p.err = err
		return nil
	}
	return fmt.Errorf("database %s: %w", p.name, err)
}

// newPlacementLike returns p as it was before anything was read into it.
func newPlacementLike(p *placement) *placement {
	n := newPlacement(p.name, p.control)
	n.alone, n.tenants = p.alone, p.tenants
	return n
}

// unreachable reports whether err means the database could not be talked
// to at all: down, refusing or failing the connection (a wrong password
// or database name is refused at connect time too), out of connections,
// not answering, or not configured in this process.
func unreachable(err error) bool {
	var connect *pgconn.ConnectError
	return errors.As(err, &connect) || errors.Is(err, database.ErrUnavailable) ||
		errors.Is(err, database.ErrTimeout) || errors.Is(err, database.ErrUnknownPlacement)
}

// cause is the driver's own account of err, without the message a
// classified error carries for the API's clients.
func cause(err error) error {
	if e, ok := fault.As(err); ok && e.Err != nil {
		return e.Err
	}
	return err
}

func (p *placement) readInventory(ctx context.Context, tx *gorm.DB, layout tenants.Layout) error {
	if layout.Dialect == migrations.Postgres {
		return readPostgres(ctx, tx, postgresUser, &p.inv)
	}
	return readSQLite(ctx, tx, &p.inv)
}

// readRest reads what the inventory does not hold: the tenants' migration
// records and, on PostgreSQL, the role, grants, settings and server.
func (p *placement) readRest(ctx context.Context, tx *gorm.DB, layout tenants.Layout) error {
	if err := p.readRecords(ctx, tx, layout); err != nil {
		return err
	}
	if layout.Dialect != migrations.Postgres {
		return nil
	}
	q := tx.WithContext(ctx)
	var who struct {
		User   string
		DBName string
		Server string
	}
	if err := q.Raw(`SELECT current_user AS user, current_database() AS db_name,
	pg_postmaster_start_time()::text || ' port ' || current_setting('port') AS server`).Scan(&who).Error; err != nil {
		return fmt.Errorf("read the current role and server: %w", err)
	}
	p.user, p.dbname, p.server = who.User, who.DBName, who.Server
	var err error
	if p.grants, p.defaults, err = readGrants(ctx, tx); err != nil {
		return err
	}
	p.settings, err = readSettings(ctx, tx)
	return err
}

// place hands each catalog tenant to the placement holding it. A tenant
// on a database that is not configured goes to none (checkPlacements).
func (s *snapshot) place() {
	for _, t := range s.tenants {
		if p := s.placement(t.Database); p != nil {
			p.tenants = append(p.tenants, t)
		}
	}
}

// placement returns the configured database called name, "" (as the
// catalog stores it) or its configured name for the control one; nil for
// one not configured.
func (s *snapshot) placement(name string) *placement {
	if name == "" {
		return s.placements[0]
	}
	for _, p := range s.placements {
		if p.name == name {
			return p
		}
	}
	return nil
}

// databaseName is the configured name of the database a catalog value
// (Tenant.Database) names.
func (s *snapshot) databaseName(stored string) string {
	if stored == "" {
		return s.placements[0].name
	}
	return stored
}

// audited returns the databases that could be read.
func (s *snapshot) audited() []*placement {
	var out []*placement
	for _, p := range s.placements {
		if p.err == nil {
			out = append(out, p)
		}
	}
	return out
}

// results says for each database whether it was audited: the configured
// ones in order, then those the catalog names that are not configured.
func (s *snapshot) results() []DatabaseResult {
	out := make([]DatabaseResult, 0, len(s.placements))
	for _, p := range s.placements {
		r := DatabaseResult{Name: p.name, Tenants: len(p.tenants)}
		if p.err != nil {
			r.Skipped = "cannot be reached: " + cause(p.err).Error()
		}
		out = append(out, r)
	}
	unknown := map[string]int{}
	for _, t := range s.tenants {
		if s.placement(t.Database) == nil {
			unknown[t.Database]++
		}
	}
	for _, name := range slices.Sorted(maps.Keys(unknown)) {
		out = append(out, DatabaseResult{Name: name, Tenants: unknown[name], Skipped: "not configured"})
	}
	return out
}

// server is one PostgreSQL server and the configured databases on it,
// which share its connections, files and buffers.
type server struct {
	placements []*placement
}

// servers groups the audited databases by server, in configuration order.
func (s *snapshot) servers() []*server {
	var out []*server
	by := map[string]*server{}
	for _, p := range s.audited() {
		sv := by[p.server]
		if sv == nil {
			sv = &server{}
			by[p.server] = sv
			out = append(out, sv)
		}
		sv.placements = append(sv.placements, p)
	}
	return out
}

// checkPlacements checks where the catalog puts each tenant: on a
// configured database, with no move left unfinished, and that every
// configured database could be read and is a database of its own.
func (a *audit) checkPlacements(snap *snapshot) {
	names := make([]string, len(snap.placements))
	for i, p := range snap.placements {
		names[i] = p.name
	}
	for _, t := range snap.tenants {
		where := snap.databaseName(t.Database)
		if snap.placement(t.Database) == nil {
			a.add(Finding{Check: CheckPlacements, Severity: Error, Database: where, Tenant: t.Name, Object: where,
				Message: fmt.Sprintf("the catalog places the tenant on database %q, which is not configured here (configured: %s): every request for it fails (503) and its data was not audited; add %s to databases in every instance's configuration (with its DSN), or correct the tenant's row if the name is wrong",
					where, strings.Join(names, ", "), where)})
		}
		switch {
		case t.MovingTo != "":
			a.add(Finding{Check: CheckPlacements, Severity: Warning, Database: where, Tenant: t.Name, Object: t.Schema,
				Message: a.moveMessage(snap, t)})
		case t.WritesPaused:
			a.add(Finding{Check: CheckPlacements, Severity: Error, Database: where, Tenant: t.Name, Object: t.Schema,
				Message: fmt.Sprintf("the tenant's writes are paused (every write answers 503) but no move is recorded (moving_to is empty), so nothing will resume them; clear it in the catalog: UPDATE %s SET writes_paused = false WHERE name = '%s'",
					a.d.Layout.SharedTable("tenants"), strings.ReplaceAll(t.Name, "'", "''"))})
		}
	}
	for _, p := range snap.placements {
		if p.err == nil {
			continue
		}
		a.add(Finding{Check: CheckPlacements, Severity: Error, Database: p.name, Object: p.name,
			Message: fmt.Sprintf("database %s cannot be reached (%v): the tenants placed on it are not audited, and their requests fail (503) until it answers (%s)",
				p.name, cause(p.err), tenantList(p.tenants))})
	}
	seen := map[string]string{}
	for _, p := range snap.audited() {
		if p.server == "" {
			continue
		}
		key := p.server + "/" + p.dbname
		if other, ok := seen[key]; ok {
			a.add(Finding{Check: CheckPlacements, Severity: Error, Database: p.name, Object: p.dbname,
				Message: fmt.Sprintf("databases %s and %s are the same PostgreSQL database (%s): each one's tenants look like the other's orphans, and a move between them would drop the tenant's own schema; give each placement a database of its own",
					other, p.name, p.dbname)})
			continue
		}
		seen[key] = p.name
	}
}

// moveMessage explains a tenant whose move is unfinished: running, when
// a process holds its move lock, else interrupted.
func (a *audit) moveMessage(snap *snapshot, t catTenant) string {
	from, other := snap.databaseName(t.Database), t.MovingTo
	state := "in progress or interrupted"
	if held, known := snap.moving[t.Schema]; known {
		state = "interrupted (no process holds its move lock)"
		if held {
			state = "in progress (a process holds its move lock)"
		}
	}
	msg := fmt.Sprintf("a move between databases %s and %s is %s: moving_to = %q (the target before the switch, the source until it is retired after it)", from, other, state, other)
	if t.WritesPaused {
		msg += ", and the tenant's writes are paused (503)"
	}
	if snap.placement(other) == nil {
		msg += fmt.Sprintf("; database %s is not configured here, so the move cannot be finished from this configuration", other)
	}
	if held := snap.moving[t.Schema]; held {
		return msg + "; wait for it to end"
	}
	return msg + "; run `tenantry tenants move` for the tenant again, or restart tenantry: either runs RecoverMoves, which finishes the switch or undoes the copy"
}

// tenantList counts tenants and names a few, for a message.
func tenantList(ts []catTenant) string {
	switch len(ts) {
	case 0:
		return "no tenant"
	case 1:
		return "1 tenant: " + ts[0].Name
	}
	var names []string
	for _, t := range ts[:min(len(ts), 5)] {
		names = append(names, t.Name)
	}
	if len(ts) > 5 {
		names = append(names, "…")
	}
	return fmt.Sprintf("%d tenants: %s", len(ts), strings.Join(names, ", "))
}
