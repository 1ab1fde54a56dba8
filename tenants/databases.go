package tenants

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"tenantry/fault"
	"tenantry/migrations"
)

// DatabaseStats is one configured database as `tenantry databases list`
// and GET /admin/databases show it.
type DatabaseStats struct {
	// Name is the configured name (database.name for the control
	// database, databases[].name for the others).
	Name string `json:"name"`
	// Control is set for the database that holds the catalog.
	Control bool `json:"control"`
	// Tenants counts the catalog's tenants placed on the database.
	Tenants int64 `json:"tenants"`
	// SizeBytes is the whole database's size on disk (PostgreSQL
	// pg_database_size, SQLite page_count × page_size); nil when it could
	// not be read.
	SizeBytes *int64 `json:"size_bytes"`
	// Available says whether the database answered within
	// DatabaseStatsWait; Error says why not, in words safe to show.
	Available bool   `json:"available"`
	Error     string `json:"error,omitempty"`
}

// DatabaseStatsWait bounds how long DatabaseStats waits for each
// database. A database that is down or stalled must not hold the list
// hostage: it is shown as unavailable once this has passed, and the
// databases are asked in parallel, so the whole list takes about this
// long at worst.
const DatabaseStatsWait = 2 * time.Second

// DatabaseStats lists every configured database, the control one first:
// its tenants (counted in the catalog), its size and whether it answers.
// Only the catalog must be readable: a placement that does not answer is
// listed as unavailable, with the reason, and the others as they are.
// A database the catalog names but this process's configuration lacks
// (an instance started with an older config) is listed last, unavailable.
func (c *Catalog) DatabaseStats(ctx context.Context) ([]DatabaseStats, error) {
	count, err := c.tenantsPerDatabase(ctx, c.db)
	if err != nil {
		return nil, err
	}
	control, names := c.Databases()
	out := make([]DatabaseStats, len(names))
	var wg sync.WaitGroup
	for i, name := range names {
		placement := name
		if name == control {
			placement = ""
		}
		out[i] = DatabaseStats{Name: name, Control: name == control, Tenants: count[placement]}
		delete(count, placement)
		wg.Go(func() { c.measureDatabase(ctx, placement, &out[i]) })
	}
	wg.Wait()
	for _, name := range slices.Sorted(maps.Keys(count)) {
		out = append(out, DatabaseStats{Name: name, Tenants: count[name],
			Error: "not configured in this process: its tenants cannot be served here"})
	}
	return out, nil
}

// measureDatabase reads the size of the database called placement into
// st, or records why it could not within DatabaseStatsWait. The cause
// goes to the log; st.Error only says what the operator can act on.
func (c *Catalog) measureDatabase(ctx context.Context, placement string, st *DatabaseStats) {
	ctx, cancel := context.WithTimeout(ctx, DatabaseStatsWait)
	defer cancel()
	db := c.on(ctx, placement)
	var size int64
	var err error
	if c.layout.Dialect == migrations.Postgres {
		err = db.Raw("SELECT pg_database_size(current_database())").Scan(&size).Error
	} else {
		var f *FileStorage
		if f, err = sqliteFile(db); err == nil {
			size = f.Bytes
		}
	}
	if err == nil {
		st.SizeBytes, st.Available = &size, true
		return
	}
	switch {
	case ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) || fault.KindOf(err) == fault.Timeout:
		st.Error = fmt.Sprintf("did not answer within %v", DatabaseStatsWait)
	case fault.KindOf(err).Transient():
		st.Error = "unreachable: down, restarting or out of connections"
	default:
		st.Error = "could not be read; see the server log"
	}
	c.log.WarnContext(ctx, "database size not read", "database", st.Name, "err", err)
}

// ErrAlreadyOnDatabase means a move names the database the tenant is on
// already: a conflict with the tenant's state, since the same request is
// right for a tenant placed elsewhere.
var ErrAlreadyOnDatabase = &fault.Error{Kind: fault.Conflict, Code: "same-database", Title: "Already on that database",
	Message: "The tenant is on that database already; nothing to move."}

// CheckMove checks what can be checked of a move before it starts, so
// that the CLI and the admin API refuse a wrong one at once and alike,
// with Move's own checks: the tenant exists (ErrNotFound), to is a
// configured database (ErrUnknownDatabase, for the field "to") and not
// the tenant's own (ErrAlreadyOnDatabase), and the tenant's state allows
// it (ErrCannotMove). It returns the tenant. Move checks again under its
// own lock.
func (c *Catalog) CheckMove(ctx context.Context, name, to string) (*Tenant, error) {
	t, err := c.Get(ctx, name)
	if err != nil {
		return nil, err
	}
	placement, err := c.moveTarget(to)
	if err != nil {
		return nil, err
	}
	if err := c.checkMovable(t, placement); err != nil {
		return nil, err
	}
	return t, nil
}
