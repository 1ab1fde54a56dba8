package tenants

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"tenantry/fault"
	"tenantry/migrations"
)

// RemovalPolicy bounds how Catalog.Remove waits for a tenant's in-flight
// work and retries its disposal. The zero value of a field takes its
// default (DefaultRemovalPolicy).
type RemovalPolicy struct {
	// DrainTimeout bounds the wait, after new requests are refused, for
	// requests already running on the tenant to end (PostgreSQL only):
	// at most this long, and at most half of what the caller's context
	// has left, so the disposal keeps time for its attempts. Past it the
	// removal goes on; its lock timeout and retries take over.
	DrainTimeout time.Duration
	// LockTimeout is each disposal attempt's lock_timeout (PostgreSQL):
	// how long it waits for one lock before the attempt is undone and
	// tried again.
	LockTimeout time.Duration
	// Attempts is how many times the disposal transaction is tried when
	// it cannot get its locks (lock timeout, deadlock, serialization
	// failure).
	Attempts int
}

// DefaultRemovalPolicy is the policy of a catalog built without
// WithRemovalPolicy. Drain, attempts and backoff together stay under the
// admin API's default request timeout (server.request_timeout, 10 s), so
// that a removal that cannot get its locks answers its own 503
// (ErrRemovalBlocked) rather than a bare timeout.
func DefaultRemovalPolicy() RemovalPolicy {
	return RemovalPolicy{DrainTimeout: 5 * time.Second, LockTimeout: time.Second, Attempts: 4}
}

func (p RemovalPolicy) withDefaults() RemovalPolicy {
	d := DefaultRemovalPolicy()
	if p.DrainTimeout <= 0 {
		p.DrainTimeout = d.DrainTimeout
	}
	if p.LockTimeout <= 0 {
		p.LockTimeout = d.LockTimeout
	}
	if p.Attempts <= 0 {
		p.Attempts = d.Attempts
	}
	return p
}

// WithRemovalPolicy makes Remove drain and retry as p says instead of
// DefaultRemovalPolicy.
func WithRemovalPolicy(p RemovalPolicy) CatalogOption {
	return func(c *Catalog) { c.removal = p }
}

// ErrRemovalBlocked means a removal could not get the locks it needs
// within its attempts (other work kept the tenant's tables, or a
// migration kept the tenant's lock), or the database failed or ran out of
// time on it. Nothing was removed: the tenant is left being removed
// (ErrRemoving, 503 to its requests), and sending the removal again
// completes it.
var ErrRemovalBlocked = &fault.Error{Kind: fault.Unavailable, Code: "tenant-removal-blocked", Title: "Tenant removal blocked",
	Message: "Nothing was removed yet: other work on the tenant kept its tables locked, or the database did not answer in time. " +
		"The tenant stays out of service (503 to its requests) until the removal is sent again, after the number of seconds in Retry-After."}

// drainPoll is how often the drain looks for in-flight work.
const drainPoll = 10 * time.Millisecond

// Remove takes a tenant out of service and deletes its catalog rows. Its
// data is dropped when dropData is set and otherwise kept under an archive
// name (archived_<schema>_<time> for a schema, archived_<time>_<id>_<table>
// for prefixed tables), so the schema name can be used again.
//
// The tenant may be in use while it is removed, so Remove works in three
// steps, none of which lets a request see half a tenant:
//
//  1. Suspend: one committed statement marks the tenant Removing, and
//     OnChange announces it, so every process refuses its new requests
//     with ErrRemoving (503) from then on.
//  2. Drain: on PostgreSQL, wait (RemovalPolicy.DrainTimeout) until no
//     other session holds a lock on the tenant's tables, so requests
//     already running finish instead of being cut off. SQLite has one
//     connection: a running statement holds it, nothing can overlap.
//  3. Dispose: one transaction takes its locks in a fixed order (the
//     tenant's advisory lock, as provisioning and migrations take it
//     first; then the tenant's tables in name order; then its catalog
//     rows), each wait bounded by a local lock_timeout, and only then
//     deletes the rows and drops or archives the data. A deadlock,
//     serialization failure or lock timeout undoes it whole, and it is
//     tried again after a short backoff, up to RemovalPolicy.Attempts.
//
// A request that had its tenant before step 1 and reaches the database
// after step 3 finds the tables gone: its statement fails as
// database.ErrGone, which the APIs answer 404. A removal whose locks stay
// taken fails with ErrRemovalBlocked (503) and removes nothing; the tenant
// stays being removed until the removal is sent again.
func (c *Catalog) Remove(ctx context.Context, name string, dropData bool) (archivedAs string, err error) {
	p := c.removal.withDefaults()
	t, err := c.markRemoving(ctx, name)
	if err != nil {
		return "", fmt.Errorf("remove tenant %q: %w", name, err)
	}
	// Each process drops its cache: the tenant's next request, on any
	// instance, reads it as being removed.
	c.changed(ctx)
	c.log.InfoContext(ctx, "tenant being removed: refusing its requests, draining", "tenant", t.Name, "schema", t.Schema, "drop_data", dropData)
	if err = c.drain(ctx, t, p); err != nil {
		err = blocked(err)
	} else {
		archivedAs, err = c.disposeRetrying(ctx, name, dropData, p)
	}
	if err != nil {
		c.log.WarnContext(ctx, "tenant removal failed; the tenant stays out of service until the removal is sent again",
			"tenant", name, "err", err)
		return "", fmt.Errorf("remove tenant %q: %w", name, err)
	}
	c.log.InfoContext(ctx, "tenant removed", "tenant", t.Name, "schema", t.Schema, "drop_data", dropData, "archived_as", archivedAs)
	c.changed(ctx)
	return archivedAs, nil
}

// markRemoving sets the tenant's Removing flag in a statement of its own,
// committed before anything else happens, and returns the tenant.
func (c *Catalog) markRemoving(ctx context.Context, name string) (*Tenant, error) {
	// Not while a move copies the tenant: the removal would drop one copy
	// while the move finishes the other (Move refuses a tenant being
	// removed in turn).
	res := c.db.WithContext(ctx).Model(&Tenant{}).Where("name = ? AND moving_to = ''", name).Updates(map[string]any{"removing": true})
	if res.Error != nil {
		return nil, fmt.Errorf("mark as being removed: %w", res.Error)
	}
	if res.RowsAffected == 0 {
		if t, err := c.Get(ctx, name); err == nil && t.MovingTo != "" {
			return nil, ErrMoveInProgress.With("", fmt.Sprintf("Tenant %q is being moved to database %s; remove it when the move has ended.", name, t.MovingTo), nil)
		}
		return nil, fmt.Errorf("tenant %q: %w", name, ErrNotFound)
	}
	return c.Get(ctx, name)
}

// drain waits until no other PostgreSQL session holds a lock on t's
// tables, for at most p.DrainTimeout and half of what ctx has left. A
// drain that runs out of time is not an error: the disposal's lock
// timeout and retries deal with what is still running. Only the end of
// ctx, or a failing database, stops the removal here.
func (c *Catalog) drain(ctx context.Context, t *Tenant, p RemovalPolicy) error {
	if c.layout.Dialect != migrations.Postgres {
		return nil
	}
	wait := p.DrainTimeout
	if d, ok := ctx.Deadline(); ok {
		wait = min(wait, time.Until(d)/2)
	}
	// The drain's own bound ends the wait between two looks, never a
	// look: a statement cut off by it would be reported as a database
	// timeout (database.Health) though the database is fine.
	start := time.Now()
	timeout := time.NewTimer(wait)
	defer timeout.Stop()
	tick := time.NewTicker(drainPoll)
	defer tick.Stop()
	for {
		n, err := c.lockHolders(ctx, t)
		switch {
		case err != nil:
			return err
		case n == 0:
			c.log.DebugContext(ctx, "tenant drained", "tenant", t.Name, "took", time.Since(start))
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-timeout.C:
			c.log.WarnContext(ctx, "tenant removal: work on the tenant still running after the drain timeout; taking its locks anyway",
				"tenant", t.Name, "sessions", n, "drain_timeout", wait)
			return nil
		case <-tick.C:
		}
	}
}

// lockHolders counts the other client sessions of this database that
// hold or await a lock on one of t's tables (under the schema strategy,
// on anything in t's schema). Statements lock their tables before touching
// them and keep the locks to the end of their transaction, so none left
// means no work on t is running. Autovacuum is not waited for: PostgreSQL
// cancels it when it is in the way of the disposal's locks.
func (c *Catalog) lockHolders(ctx context.Context, t *Tenant) (int64, error) {
	q := `SELECT count(DISTINCT l.pid) FROM pg_locks l
	JOIN pg_class r ON r.oid = l.relation
	JOIN pg_namespace n ON n.oid = r.relnamespace
	JOIN pg_stat_activity a ON a.pid = l.pid
	WHERE l.locktype = 'relation'
	  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
	  AND l.pid <> pg_backend_pid()
	  AND a.backend_type = 'client backend'`
	args := []any{}
	if c.layout.Strategy == StrategySchema {
		q += " AND n.nspname = ?"
		args = append(args, t.Schema)
	} else {
		q += " AND n.nspname = ? AND r.relname IN ?"
		args = append(args, PrefixSchema, c.prefixedTables(t))
	}
	var n int64
	if err := c.on(ctx, t.Database).Raw(q, args...).Scan(&n).Error; err != nil {
		return 0, fmt.Errorf("look for work on the tenant: %w", err)
	}
	return n, nil
}

// prefixedTables are the unqualified names of t's tables under the prefix
// strategy, sorted.
func (c *Catalog) prefixedTables(t *Tenant) []string {
	var out []string
	for _, table := range c.set.Tables() {
		name := c.layout.Table(t.Schema, table)
		out = append(out, name[strings.LastIndexByte(name, '.')+1:])
	}
	slices.Sort(out)
	return out
}

// disposeRetrying runs the disposal transaction until it commits, fails
// for a reason a retry cannot change, or has been tried p.Attempts times.
// It backs off between attempts (25 ms doubling, jittered, capped at
// 400 ms) so that the work it collided with can finish.
func (c *Catalog) disposeRetrying(ctx context.Context, name string, dropData bool, p RemovalPolicy) (string, error) {
	for attempt := 1; ; attempt++ {
		archivedAs, err := c.disposeOnce(ctx, name, dropData, p)
		switch {
		case err == nil:
			return archivedAs, nil
		case !retryable(err) || ctx.Err() != nil:
			return "", blocked(err)
		case attempt >= p.Attempts:
			return "", ErrRemovalBlocked.With("", "", fmt.Errorf("after %d attempts: %w", attempt, err))
		}
		c.log.InfoContext(ctx, "tenant removal could not take its locks; retrying", "tenant", name, "attempt", attempt, "err", err)
		timer := time.NewTimer(retryDelay(attempt))
		select {
		case <-ctx.Done():
			timer.Stop()
			return "", blocked(fmt.Errorf("after %d attempts: %w", attempt, ctx.Err()))
		case <-timer.C:
		}
	}
}

// retryDelay is the wait before the attempt after attempt of a step that
// could not take its locks (a removal's disposal, a move's fence): 25 ms
// doubling, capped at 400 ms, jittered up to twice that, so that the
// work it collided with can finish and two retriers drift apart.
func retryDelay(attempt int) time.Duration {
	base := min(25*time.Millisecond<<(attempt-1), 400*time.Millisecond)
	return base + rand.N(base)
}

// retryable reports whether a disposal attempt failed only because of
// other work: a deadlock or serialization failure (fault.Contention), or
// its lock_timeout (55P03). A statement_timeout or the caller's deadline
// is not: trying again would not get more time.
func retryable(err error) bool {
	if fault.KindOf(err) == fault.Contention {
		return true
	}
	var pg *pgconn.PgError
	return errors.As(err, &pg) && pg.Code == "55P03"
}

// blocked returns err as ErrRemovalBlocked when it is transient (the
// database, a lock or the time ran out): the operator is told that the
// tenant is left being removed and that sending the removal again
// completes it. Other errors (no such tenant, a client gone) pass as
// they are.
func blocked(err error) error {
	if errors.Is(err, ErrRemovalBlocked) || !fault.KindOf(err).Transient() {
		return err
	}
	return ErrRemovalBlocked.With("", "", err)
}

// disposeOnce is one attempt at the disposal transaction; see Remove for
// its lock order.
func (c *Catalog) disposeOnce(ctx context.Context, name string, dropData bool, p RemovalPolicy) (archivedAs string, err error) {
	err = c.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := c.localLockTimeout(ctx, tx, p); err != nil {
			return err
		}
		t, err := c.get(ctx, tx, name)
		if err != nil {
			return err
		}
		if t.Database == "" {
			archivedAs, err = c.disposeIn(ctx, tx, tx, t, dropData)
			return err
		}
		// The tenant's data is on another database: its transaction runs
		// inside the catalog's, in the same lock order, and commits just
		// before it. Should the catalog's commit then fail, the tenant is
		// left being removed with its data gone, and sending the removal
		// again deletes its rows.
		return c.on(ctx, t.Database).Transaction(func(data *gorm.DB) error {
			if err := c.localLockTimeout(ctx, data, p); err != nil {
				return err
			}
			archivedAs, err = c.disposeIn(ctx, tx, data, t, dropData)
			return err
		})
	})
	return archivedAs, err
}

// localLockTimeout sets p's lock_timeout for the rest of tx (PostgreSQL):
// the pooled connection keeps its own (database.lock_timeout) for later
// users.
func (c *Catalog) localLockTimeout(ctx context.Context, tx *gorm.DB, p RemovalPolicy) error {
	if c.layout.Dialect != migrations.Postgres {
		return nil
	}
	err := tx.WithContext(ctx).Exec("SELECT set_config('lock_timeout', ?, true)",
		strconv.FormatInt(p.LockTimeout.Milliseconds(), 10)+"ms").Error
	if err != nil {
		return fmt.Errorf("set lock_timeout: %w", err)
	}
	return nil
}

// disposeIn takes the disposal's locks in order and deletes t's catalog
// rows in catalog and its data in data (the same transaction when the
// tenant lives on the catalog's database).
func (c *Catalog) disposeIn(ctx context.Context, catalog, data *gorm.DB, t *Tenant, dropData bool) (string, error) {
	if err := c.lock(ctx, data, "tenantry:tenant:"+t.Schema); err != nil {
		return "", err
	}
	if c.layout.Dialect == migrations.Postgres {
		if err := c.lockTables(ctx, data, t); err != nil {
			return "", err
		}
		if err := c.lockCatalogRows(ctx, catalog, t); err != nil {
			return "", err
		}
	}
	if err := catalog.WithContext(ctx).Where("tenant_id = ?", t.ID).Delete(&TenantHost{}).Error; err != nil {
		return "", fmt.Errorf("delete hosts: %w", err)
	}
	if err := catalog.WithContext(ctx).Where("id = ?", t.ID).Delete(&Tenant{}).Error; err != nil {
		return "", fmt.Errorf("delete tenant: %w", err)
	}
	if t.Database != "" {
		// A removal whose data transaction committed and catalog one did
		// not finds no schema when sent again.
		var n int64
		if err := data.WithContext(ctx).Raw("SELECT count(*) FROM pg_namespace WHERE nspname = ?", t.Schema).Scan(&n).Error; err != nil {
			return "", fmt.Errorf("look for schema %q: %w", t.Schema, err)
		}
		if n == 0 {
			return "", nil
		}
	}
	return c.dispose(ctx, data, t, dropData)
}

// lockTables takes ACCESS EXCLUSIVE locks on t's existing tables, one at
// a time in name order (PostgreSQL). Holding them all before dropping or
// renaming anything is what keeps the disposal from deadlocking with a
// request: a statement locks its table before anything that belongs to
// it (indexes, sequences), so once the removal holds every table, no
// statement can hold part of what DROP goes on to lock. The fixed order
// means two transactions that both lock several of these tables queue
// rather than wait on each other.
func (c *Catalog) lockTables(ctx context.Context, tx *gorm.DB, t *Tenant) error {
	q := "SELECT schemaname || '.' || tablename FROM pg_tables WHERE schemaname = ?"
	args := []any{t.Schema}
	if c.layout.Strategy == StrategyPrefix {
		q += " AND tablename IN ?"
		args = []any{PrefixSchema, c.prefixedTables(t)}
	}
	var tables []string
	if err := tx.WithContext(ctx).Raw(q, args...).Scan(&tables).Error; err != nil {
		return fmt.Errorf("list tables of %q: %w", t.Name, err)
	}
	slices.Sort(tables)
	for _, table := range tables {
		if err := tx.WithContext(ctx).Exec("LOCK TABLE " + migrations.Quote(table) + " IN ACCESS EXCLUSIVE MODE").Error; err != nil {
			return fmt.Errorf("lock table %s: %w", table, err)
		}
	}
	return nil
}

// lockCatalogRows locks t's catalog row and then its hosts' rows, in host
// order, after its tables (PostgreSQL): the other catalog changes lock
// one of them at most, so they queue behind the removal or it behind
// them. A tenant removed meanwhile by another removal is ErrNotFound.
func (c *Catalog) lockCatalogRows(ctx context.Context, tx *gorm.DB, t *Tenant) error {
	forUpdate := clause.Locking{Strength: clause.LockingStrengthUpdate}
	var ids []uint64
	if err := tx.WithContext(ctx).Model(&Tenant{}).Clauses(forUpdate).Where("id = ?", t.ID).Pluck("id", &ids).Error; err != nil {
		return fmt.Errorf("lock catalog row of %q: %w", t.Name, err)
	}
	if len(ids) == 0 {
		return fmt.Errorf("tenant %q: %w", t.Name, ErrNotFound)
	}
	var hosts []string
	err := tx.WithContext(ctx).Model(&TenantHost{}).Clauses(forUpdate).Where("tenant_id = ?", t.ID).Order("host").Pluck("host", &hosts).Error
	if err != nil {
		return fmt.Errorf("lock hosts of %q: %w", t.Name, err)
	}
	return nil
}

// dispose drops or archives t's data inside the disposal transaction,
// which holds its locks already.
func (c *Catalog) dispose(ctx context.Context, tx *gorm.DB, t *Tenant, dropData bool) (string, error) {
	stamp := time.Now().UTC().Format("20060102150405")
	exec := func(q string) error { return tx.WithContext(ctx).Exec(q).Error }
	if c.layout.Strategy == StrategySchema {
		if dropData {
			return "", exec("DROP SCHEMA " + migrations.Quote(t.Schema) + " CASCADE")
		}
		archived := archiveName(t.Schema)
		return archived, exec("ALTER SCHEMA " + migrations.Quote(t.Schema) + " RENAME TO " + migrations.Quote(archived))
	}
	archivedPrefix := "archived_" + stamp + "_" + strconv.FormatUint(t.ID, 10)
	target := c.layout.TenantTarget(t.Schema)
	for _, table := range c.set.Tables() {
		name := target.Table(table)
		q := "DROP TABLE IF EXISTS " + migrations.Quote(name)
		if !dropData {
			// A tenant behind the code lacks the newest tables.
			ok, err := migrations.HasTable(ctx, tx, target, table)
			if err != nil {
				return "", err
			}
			if !ok {
				continue
			}
			q = "ALTER TABLE " + migrations.Quote(name) + " RENAME TO " + migrations.Quote(archivedPrefix+"_"+table)
		}
		if err := exec(q); err != nil {
			return "", fmt.Errorf("dispose of table %s: %w", table, err)
		}
	}
	if dropData {
		return "", nil
	}
	// Renaming a table keeps its indexes' names, and the set names them
	// explicitly (<schema>_users_email_key): left alone they would stop a
	// new tenant of the same schema from creating its own.
	for _, index := range c.set.Indexes() {
		if err := c.renameIndex(ctx, tx, target.Index(index), archivedPrefix+"_"+index); err != nil {
			return "", err
		}
	}
	return archivedPrefix + "_*", nil
}

// renameIndex renames a prefixed tenant index. PostgreSQL renames in
// place; SQLite cannot, so the index is dropped and created again under
// the new name from the definition SQLite stored (which already names the
// renamed table).
func (c *Catalog) renameIndex(ctx context.Context, tx *gorm.DB, from, to string) error {
	db := tx.WithContext(ctx)
	if c.layout.Dialect == migrations.Postgres {
		err := db.Exec("ALTER INDEX IF EXISTS " + migrations.Quote(PrefixSchema+"."+from) + " RENAME TO " + migrations.Quote(to)).Error
		if err != nil {
			return fmt.Errorf("archive index %s: %w", from, err)
		}
		return nil
	}
	var def []string
	if err := db.Raw("SELECT sql FROM sqlite_master WHERE type = 'index' AND name = ?", from).Scan(&def).Error; err != nil {
		return fmt.Errorf("read index %s: %w", from, err)
	}
	if len(def) == 0 {
		return nil
	}
	recreate := strings.Replace(def[0], migrations.Quote(from), migrations.Quote(to), 1)
	if recreate == def[0] {
		return fmt.Errorf("archive index %s: its definition does not name it as %s", from, migrations.Quote(from))
	}
	if err := db.Exec("DROP INDEX " + migrations.Quote(from)).Error; err != nil {
		return fmt.Errorf("archive index %s: %w", from, err)
	}
	if err := db.Exec(recreate).Error; err != nil {
		return fmt.Errorf("archive index %s as %s: %w", from, to, err)
	}
	return nil
}
