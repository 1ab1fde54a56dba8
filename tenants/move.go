package tenants

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/time/rate"

	"tenantry/database"
	"tenantry/fault"
	"tenantry/migrations"
)

// MoveOptions controls Catalog.Move. The zero value of a duration or
// count takes its default.
type MoveOptions struct {
	// To names the configured database the tenant moves to.
	To string
	// DropSource drops the source schema after the switch instead of
	// keeping it under an archive name.
	DropSource bool
	// Grace is how long the sealed source is kept readable after the
	// switch before it is retired (default 1 s): long enough for every
	// instance to have reloaded the catalog, so that only an instance
	// that missed the announcement still reads the tenant from the source.
	Grace time.Duration
	// LockTimeout bounds each attempt to fence the source (default 1 s):
	// the fence waits for the tenant's running writes, and an attempt that
	// waits longer is undone and tried again.
	LockTimeout time.Duration
	// Attempts is how many times the fence is tried (default 4).
	Attempts int
	// CopyRate bounds, in bytes a second, how fast the bulk copy and the
	// pre-pass read the source while the tenant is served (0:
	// DefaultMoveCopyRate; negative: no bound). At full speed they take
	// the CPU the other tenants' requests need (measured: their p99 at
	// 2.2-2.4x during the copy on 2 cores, 1.1-1.8x at 1-2 MiB/s); the
	// write pause is never
	// throttled.
	CopyRate int64
}

func (o MoveOptions) withDefaults() MoveOptions {
	if o.CopyRate == 0 {
		o.CopyRate = DefaultMoveCopyRate
	}
	if o.Grace <= 0 {
		o.Grace = time.Second
	}
	if o.LockTimeout <= 0 {
		o.LockTimeout = time.Second
	}
	if o.Attempts <= 0 {
		o.Attempts = 4
	}
	return o
}

// MovedTable is one table a move copied and verified.
type MovedTable struct {
	Table    string `json:"table"`
	Rows     int64  `json:"rows"`
	Checksum string `json:"checksum"`
}

// MoveReport says what a move did.
type MoveReport struct {
	Tenant string       `json:"tenant"`
	From   string       `json:"from"`
	To     string       `json:"to"`
	Tables []MovedTable `json:"tables"`
	Rows   int64        `json:"rows"`
	// Copy is the time of the bulk copy, during which reads and writes
	// went on; WritePause the time writes were refused (catch-up,
	// verification and switch).
	Copy       time.Duration `json:"-"`
	WritePause time.Duration `json:"-"`
	CopyMS     int64         `json:"copy_ms"`
	PauseMS    int64         `json:"write_pause_ms"`
	// CaughtUp counts the rows the paused catch-up wrote or deleted on
	// the target: the writes made since the pre-pass. Copy includes the
	// bulk copy and the pre-pass.
	CaughtUp int64 `json:"caught_up_rows"`
	// ArchivedAs is the source schema's archive name; empty when dropped.
	ArchivedAs string `json:"archived_as,omitempty"`
	// RetirePending is set when the tenant moved but its source schema
	// could not be archived or dropped afterwards: RecoverMoves (at
	// start-up, or before the tenant's next move) finishes that.
	RetirePending bool `json:"retire_pending,omitempty"`
}

// DefaultMoveCopyRate is MoveOptions.CopyRate when unset: about 16 s for
// 100,000 users.
const DefaultMoveCopyRate = 1 << 20

// Errors of a move.
var (
	// ErrMoveInProgress means another move of the tenant holds its move
	// lock, in this process or another.
	ErrMoveInProgress = &fault.Error{Kind: fault.Conflict, Code: "move-in-progress", Title: "Move in progress",
		Message: "The tenant is being moved already."}
	// ErrCannotMove means the tenant's state or the service's set-up
	// rules the move out (suspended, being removed, behind the code, not
	// the schema strategy on PostgreSQL); the message says which.
	ErrCannotMove = &fault.Error{Kind: fault.Conflict, Code: "cannot-move", Title: "Tenant cannot be moved",
		Message: "The tenant cannot be moved in its current state."}
	// ErrMoveFailed means a move failed before its switch: nothing
	// changed for the tenant, which is served from its source with all
	// its data, and the move may be sent again.
	ErrMoveFailed = &fault.Error{Kind: fault.Unavailable, Code: "move-failed", Title: "Move failed",
		Message: "The move failed before the switch; the tenant is served from its database as before, nothing was lost. " +
			"Send the move again after the number of seconds in Retry-After."}
)

// moveMarker is the comment a move puts on the schema it is filling on
// the target, and removes just before the switch. It is what tells
// RecoverMoves, after a crash, a copy (dropped) from a source the switch
// left behind (archived): the catalog alone cannot tell them apart.
const moveMarker = "tenantry: incomplete copy of a tenant move"

// errAbandon, returned by the test hook, makes Move stop as a killed
// process would: connections closed, nothing cleaned up.
var errAbandon = errors.New("move abandoned")

// Move moves a tenant's schema to another database while it is served.
//
// The catalog row says where the tenant is: Tenant.Database until the
// switch, the target after it. MovingTo holds the configured name of the
// other database while a move is unfinished: the target before the
// switch, the source after it until the source is retired. The steps:
//
//  1. Under a session advisory lock (tenantry:move:<schema>, held on a
//     control connection for the whole move, so a second move is
//     ErrMoveInProgress and a killed process releases it), MovingTo is
//     set and announced.
//  2. The schema is made on the target at the tenant's version, marked
//     with moveMarker, and every table is copied with COPY (binary)
//     from one REPEATABLE READ snapshot of the source, while the tenant
//     is read and written as usual; a pre-pass then catches up with a
//     fresh snapshot and keeps every row's hash.
//  3. Pause: WritesPaused is set and announced (every instance answers
//     writes 503, ErrWritesPaused), then the source is fenced: a
//     transaction takes the tenant's advisory lock and EXCLUSIVE locks
//     on its tables in name order, which waits for running writes and
//     blocks any later one, even from an instance that has not heard of
//     the pause, while reads go on.
//  4. Catch-up: each table's rows on the source are compared by primary
//     key and an md5 of the row with the pre-pass's hashes (what the
//     target holds); rows changed or gone are deleted on the target,
//     rows new or changed copied again; sequences are set to the
//     source's values. Then each table's row count and checksum (read
//     by the target's server) must equal the source's, or the move is
//     undone. The pause thus costs one scan of each side.
//  5. Seal: a statement trigger on every source table refuses any write
//     (database.MovedSQLState, 503 tenant-moved), committed with the
//     fence: from here no write reaches the source whatever happens to
//     this process. A write that waited on the fence fails on it,
//     unacknowledged.
//  6. Switch: the marker is removed and one catalog transaction points
//     the tenant at the target and ends the pause; it is announced.
//  7. After opts.Grace the sealed source is renamed to its archive name
//     (archived_<schema>_<time>, as Remove does); with DropSource the
//     archive is then dropped.
//
// Any failure before the switch undoes the move (ErrMoveFailed when it
// was transient): the seal dropped, the pause and MovingTo cleared, the
// copy dropped;
// the tenant is served from its source with nothing lost, and the move can
// be sent again. A process killed during a move leaves MovingTo (and
// perhaps WritesPaused, and its seal) set: RecoverMoves, which every
// serving instance runs every few seconds and Move runs first for its
// tenant, finishes the cleanup.
func (c *Catalog) Move(ctx context.Context, name string, opts MoveOptions) (MoveReport, error) {
	opts = opts.withDefaults()
	rep := MoveReport{Tenant: name, To: opts.To}
	if c.layout.Dialect != migrations.Postgres || c.layout.Strategy != StrategySchema {
		return rep, ErrCannotMove.With("", "Moves need the schema strategy on PostgreSQL.", nil)
	}
	to, err := c.moveTarget(opts.To)
	if err != nil {
		return rep, err
	}
	pools, err := database.PlacementsOf(c.db)
	if err != nil {
		return rep, fmt.Errorf("move tenant %q: %w", name, err)
	}
	t, err := c.Get(ctx, name)
	if err != nil {
		return rep, err
	}
	lock, err := c.moveLock(ctx, pools, t.Schema)
	if err != nil {
		return rep, fmt.Errorf("move tenant %q: %w", name, err)
	}
	m := &mover{c: c, pools: pools, opts: opts, to: to, lock: lock, rep: &rep, testHook: moveHookFrom(ctx)}
	defer func() { m.release(lock) }()
	if t.MovingTo != "" {
		if err := c.recoverMove(ctx, t); err != nil {
			return rep, fmt.Errorf("move tenant %q: finish an earlier move first: %w", name, err)
		}
	}
	if t, err = c.Get(ctx, name); err != nil {
		return rep, err
	}
	if err := c.checkMovable(t, to); err != nil {
		return rep, err
	}
	m.t, m.from = t, t.Database
	rep.From, rep.To = c.DatabaseName(t), c.nameOf(to)
	return m.run(ctx)
}

// moveTarget returns the placement of the database a move names in its
// field "to".
func (c *Catalog) moveTarget(to string) (string, error) {
	if to == "" {
		return "", ErrUnknownDatabase.With("to", "Name the database to move the tenant to.", nil)
	}
	return c.placement("to", to)
}

// checkMovable says whether t may move to the placement to, now.
func (c *Catalog) checkMovable(t *Tenant, to string) error {
	switch {
	case t.Database == to:
		return ErrAlreadyOnDatabase.With("", fmt.Sprintf("Tenant %q is on database %q already; nothing to move.", t.Name, c.nameOf(to)), nil)
	case t.Removing:
		return ErrCannotMove.With("", fmt.Sprintf("Tenant %q is being removed.", t.Name), nil)
	case t.Status != StatusActive:
		return ErrCannotMove.With("", fmt.Sprintf("Tenant %q is %s; resume it first.", t.Name, t.Status), nil)
	case t.SchemaVersion != c.set.Latest():
		return ErrCannotMove.With("", fmt.Sprintf("Tenant %q is at schema version %d, the code at %d; migrate it first.",
			t.Name, t.SchemaVersion, c.set.Latest()), nil)
	}
	return nil
}

// MoveLockKey is the key of the session advisory lock (hashtext of it) a
// move of the tenant with schema holds on the control database for its
// whole length: besides MovingTo, the sign of a move running rather than
// interrupted (doctor reads it).
func MoveLockKey(schema string) string { return "tenantry:move:" + schema }

// moveLock takes the tenant's move lock on a dedicated control connection
// and returns that connection, which holds it until released.
func (c *Catalog) moveLock(ctx context.Context, pools *database.Placements, schema string) (*sql.Conn, error) {
	conn, err := pools.Conn(ctx, "")
	if err != nil {
		return nil, fmt.Errorf("connect to the control database: %w", database.Classify(err))
	}
	var got bool
	if err := conn.QueryRowContext(ctx, "SELECT pg_try_advisory_lock(hashtext($1))", MoveLockKey(schema)).Scan(&got); err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("take the move lock: %w", database.Classify(err))
	}
	if !got {
		_ = conn.Close()
		return nil, ErrMoveInProgress.With("", fmt.Sprintf("Tenant with schema %q is being moved already.", schema), nil)
	}
	return conn, nil
}

// mover is one move in progress.
type mover struct {
	c     *Catalog
	pools *database.Placements
	opts  MoveOptions
	t     *Tenant
	// from and to are the placements ("" for the control database).
	from, to string
	lock     *sql.Conn // holds the move lock (control)
	// fence holds the source's fence transaction from the pause to the
	// seal.
	fence  *sql.Conn
	tables []moveTable
	// known holds, per table, the key → row hash of what the target
	// holds since the pre-pass: the pause then scans the source once and
	// the target only to verify it.
	known map[string]map[string]string
	// sealing is set once sealSource has begun: the source may refuse
	// writes from then on, until the switch or dropSeal.
	sealing bool
	// throttle bounds reading the source before the pause (CopyRate).
	throttle *rate.Limiter
	rep      *MoveReport
	// testHook is called at each phase (tests only; see moveHookFrom);
	// an error from it fails the move there.
	testHook func(phase string) error
	// abandoned is set by the test hook's errAbandon: connections are
	// closed as by a killed process, nothing else is undone.
	abandoned bool
}

type moveHookKey struct{}

// moveHookFrom returns the phase hook a test put in ctx (export_test.go),
// or nil: the hook travels with the call, not in the catalog, so that
// nothing but a test's own Move sees it.
func moveHookFrom(ctx context.Context) func(string) error {
	fn, _ := ctx.Value(moveHookKey{}).(func(string) error)
	return fn
}

// hook runs the catalog's test hook at phase, if one is set.
func (m *mover) hook(phase string) error {
	if m.testHook == nil {
		return nil
	}
	if err := m.testHook(phase); err != nil {
		if errors.Is(err, errAbandon) {
			m.abandoned = true
		}
		return fmt.Errorf("at %s: %w", phase, err)
	}
	return nil
}

// run does the move after the checks; see Move.
func (m *mover) run(ctx context.Context) (MoveReport, error) {
	c, t, rep := m.c, m.t, m.rep
	start := time.Now()
	c.log.InfoContext(ctx, "tenant move started", "tenant", t.Name, "schema", t.Schema, "from", rep.From, "to", rep.To)
	res := c.db.WithContext(ctx).Model(&Tenant{}).Where("id = ? AND database = ? AND moving_to = ''", t.ID, m.from).
		Updates(map[string]any{"moving_to": rep.To})
	if res.Error != nil {
		return *rep, fmt.Errorf("move tenant %q: mark as moving: %w", t.Name, res.Error)
	}
	if res.RowsAffected != 1 {
		return *rep, ErrMoveInProgress.With("", fmt.Sprintf("Tenant %q changed while the move started; send it again.", t.Name), nil)
	}
	c.changed(ctx)
	var pauseStart time.Time
	err := m.beforeSwitch(ctx, &pauseStart)
	if err == nil {
		err = m.hook("verified")
	}
	if err == nil {
		err = m.switchOver(ctx)
	}
	if err != nil {
		if m.abandoned {
			m.closeAll()
			return *rep, fmt.Errorf("move tenant %q: %w", t.Name, err)
		}
		m.abort(ctx, err)
		if fault.KindOf(err).Transient() {
			err = ErrMoveFailed.With("", "", err)
		}
		return *rep, fmt.Errorf("move tenant %q: %w", t.Name, err)
	}
	rep.WritePause = time.Since(pauseStart)
	rep.PauseMS = rep.WritePause.Milliseconds()
	c.log.InfoContext(ctx, "tenant move switched: served from the target", "tenant", t.Name, "to", rep.To,
		"write_pause", rep.WritePause, "caught_up_rows", rep.CaughtUp)
	if err := m.hook("switched"); err != nil {
		if m.abandoned {
			m.closeAll()
			return *rep, fmt.Errorf("move tenant %q: %w", t.Name, err)
		}
		rep.RetirePending = true
		m.releaseFence()
		c.log.WarnContext(ctx, "tenant moved, but its source was not retired; RecoverMoves will archive it",
			"tenant", t.Name, "source", rep.From, "err", err)
		return *rep, nil
	}
	m.retire(ctx)
	c.log.InfoContext(ctx, "tenant move done", "tenant", t.Name, "from", rep.From, "to", rep.To, "rows", rep.Rows,
		"copy", rep.Copy, "write_pause", rep.WritePause, "archived_as", rep.ArchivedAs,
		"retire_pending", rep.RetirePending, "took", time.Since(start))
	return *rep, nil
}

// beforeSwitch makes the target, copies, pauses, fences, catches up and
// verifies: everything that a failure undoes. pauseStart is set when
// writes are paused.
func (m *mover) beforeSwitch(ctx context.Context, pauseStart *time.Time) error {
	if err := m.hook("marked"); err != nil {
		return err
	}
	if err := m.makeTarget(ctx); err != nil {
		return err
	}
	if err := m.hook("target"); err != nil {
		return err
	}
	copyStart := time.Now()
	if m.opts.CopyRate > 0 {
		m.throttle = rate.NewLimiter(rate.Limit(m.opts.CopyRate), throttleBurst)
	}
	if err := m.bulkCopy(ctx); err != nil {
		return err
	}
	if err := m.prepass(ctx); err != nil {
		return err
	}
	// The pause catches up at full speed: every millisecond of it is a
	// millisecond of refused writes.
	m.throttle = nil
	m.rep.Copy = time.Since(copyStart)
	m.rep.CopyMS = m.rep.Copy.Milliseconds()
	if err := m.hook("copied"); err != nil {
		return err
	}
	*pauseStart = time.Now()
	if err := m.setPaused(ctx); err != nil {
		return err
	}
	if err := m.hook("paused"); err != nil {
		return err
	}
	if err := m.takeFence(ctx); err != nil {
		return err
	}
	if err := m.hook("fenced"); err != nil {
		return err
	}
	if err := m.catchUp(ctx); err != nil {
		return err
	}
	return m.sealSource(ctx)
}

// sealFunction is the trigger function that refuses every write to a
// moved tenant's source tables (MovedSQLState); dropping it (CASCADE)
// drops its triggers too.
const sealFunction = "tenantry_moved"

// sealSource makes the source's tables refuse every write, with a
// statement trigger on each, and commits that with the fence transaction:
// from then on no write can reach the source, from any instance and
// whatever happens to this process, without holding a lock for it. A
// write that waited on the fence fails on the seal (503 tenant-moved).
// Until the switch the seal is undone with the move (abort, RecoverMoves:
// dropSeal); after it, it stays with the archive.
func (m *mover) sealSource(ctx context.Context) error {
	// From here a failure may have left the seal (its COMMIT's answer
	// lost): abort must look.
	m.sealing = true
	schema := migrations.Quote(m.t.Schema)
	fn := schema + "." + migrations.Quote(sealFunction)
	err := withPgx(m.fence, func(pc *pgx.Conn) error {
		if _, err := pc.Exec(ctx, "CREATE FUNCTION "+fn+"() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "+
			"RAISE EXCEPTION 'tenant moved to another database; retry' USING ERRCODE = '"+database.MovedSQLState+"'; END $$"); err != nil {
			return err
		}
		for _, tb := range m.tables {
			if _, err := pc.Exec(ctx, "CREATE TRIGGER "+migrations.Quote(sealFunction)+" BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON "+
				tb.qualified+" FOR EACH STATEMENT EXECUTE FUNCTION "+fn+"()"); err != nil {
				return err
			}
		}
		_, err := pc.Exec(ctx, "COMMIT")
		return err
	})
	m.releaseFence()
	if err != nil {
		return fmt.Errorf("seal the source: %w", database.Classify(err))
	}
	return nil
}

// dropSeal undoes sealSource on the schema of t on placement: the tenant
// is served from there again.
func (c *Catalog) dropSeal(ctx context.Context, placement string, t *Tenant) error {
	err := c.on(ctx, placement).Exec("DROP FUNCTION IF EXISTS " + migrations.Quote(t.Schema) + "." +
		migrations.Quote(sealFunction) + "() CASCADE").Error
	if err != nil {
		return fmt.Errorf("unseal %q: %w", t.Schema, err)
	}
	return nil
}

// switchOver removes the marker from the target and flips the catalog in
// one transaction: the tenant is on the target, its writes resume, and
// MovingTo names the source until it is retired.
func (m *mover) switchOver(ctx context.Context) error {
	err := m.onTarget(ctx, func(pc *pgx.Conn) error {
		_, err := pc.Exec(ctx, "COMMENT ON SCHEMA "+migrations.Quote(m.t.Schema)+" IS NULL")
		return err
	})
	if err != nil {
		return fmt.Errorf("unmark the target: %w", err)
	}
	res := m.c.db.WithContext(ctx).Model(&Tenant{}).
		Where("id = ? AND database = ? AND moving_to = ? AND NOT removing", m.t.ID, m.from, m.rep.To).
		Updates(map[string]any{"database": m.to, "moving_to": m.rep.From, "writes_paused": false})
	if res.Error != nil {
		// The commit's answer may be lost after it was made: the catalog
		// says whether it was.
		if cur, gerr := m.c.Get(context.WithoutCancel(ctx), m.t.Name); gerr == nil && cur.Database == m.to {
			m.c.changed(ctx)
			return nil
		}
		return fmt.Errorf("switch: %w", res.Error)
	}
	if res.RowsAffected != 1 {
		return ErrMoveInProgress.With("", fmt.Sprintf("Tenant %q changed during the move (removed, or its move recovered).", m.t.Name), nil)
	}
	m.c.changed(ctx)
	return nil
}

// retire, after the grace, renames the sealed source schema to its
// archive name, drops the archive when asked,
// and clears MovingTo. It runs to its end even when ctx ends: the move
// has happened. A failure leaves RetirePending for RecoverMoves.
func (m *mover) retire(ctx context.Context) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	// The grace is a wait for other processes, which announce nothing
	// back: only time tells that they have reloaded.
	grace := time.NewTimer(m.opts.Grace)
	<-grace.C
	archived := archiveName(m.t.Schema)
	// The source is sealed already: the rename only ends the reads of
	// instances that still have the old placement (ErrGone, then 503
	// tenant-moved once they have the new one).
	err := m.c.on(ctx, m.from).Exec("ALTER SCHEMA " + migrations.Quote(m.t.Schema) + " RENAME TO " + migrations.Quote(archived)).Error
	if err == nil {
		err = m.hook("retired")
	}
	if err != nil {
		m.rep.RetirePending = true
		m.c.log.WarnContext(ctx, "tenant moved, but its source was not retired; RecoverMoves will archive it",
			"tenant", m.t.Name, "source", m.rep.From, "err", err)
		return
	}
	m.rep.ArchivedAs = archived
	if m.opts.DropSource {
		if err := m.c.on(ctx, m.from).Exec("DROP SCHEMA " + migrations.Quote(archived) + " CASCADE").Error; err != nil {
			m.c.log.WarnContext(ctx, "tenant moved and its source archived, but the archive could not be dropped; drop it by hand",
				"tenant", m.t.Name, "source", m.rep.From, "archive", archived, "err", err)
		} else {
			m.rep.ArchivedAs = ""
		}
	}
	if err := m.c.clearMove(ctx, m.t.ID, m.rep.From); err != nil {
		m.rep.RetirePending = true
		m.c.log.WarnContext(ctx, "tenant moved and its source retired, but the catalog still says moving; RecoverMoves will clear it",
			"tenant", m.t.Name, "err", err)
	}
}

// archiveName is the name a removed or moved tenant's schema is kept
// under (Remove, Move, RecoverMoves).
func archiveName(schema string) string {
	return "archived_" + schema[:min(len(schema), 39)] + "_" + time.Now().UTC().Format("20060102150405")
}

// clearMove ends a move in the catalog: MovingTo and WritesPaused cleared
// if MovingTo still names other, and announced.
func (c *Catalog) clearMove(ctx context.Context, id uint64, other string) error {
	res := c.db.WithContext(ctx).Model(&Tenant{}).Where("id = ? AND moving_to = ?", id, other).
		Updates(map[string]any{"moving_to": "", "writes_paused": false})
	if res.Error != nil {
		return fmt.Errorf("clear the move: %w", res.Error)
	}
	c.changed(ctx)
	return nil
}

// abort undoes a move that failed before its switch. The pause is ended
// first, so that the tenant's writes resume at once whatever else fails;
// then the copy is dropped. It runs even when ctx has ended.
func (m *mover) abort(ctx context.Context, cause error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	m.releaseFence()
	m.c.log.WarnContext(ctx, "tenant move failed; undoing it, the tenant stays on its source",
		"tenant", m.t.Name, "from", m.rep.From, "to", m.rep.To, "err", cause)
	// A move that failed after sealing its source (its switch) must
	// unseal it before writes may resume; if that fails too, the move
	// stays recorded and RecoverMoves unseals it.
	if !m.sealing {
		// Nothing to unseal; the source may be down, which must not keep
		// the catalog saying the tenant's writes are paused.
	} else if err := m.c.dropSeal(ctx, m.from, m.t); err != nil {
		m.c.log.ErrorContext(ctx, "tenant move undone, but its source could not be unsealed; RecoverMoves will",
			"tenant", m.t.Name, "err", err)
		return
	}
	// Only while the catalog says the tenant is on its source is the
	// schema on the target a copy: a switch whose answer was lost may
	// have committed.
	res := m.c.db.WithContext(ctx).Model(&Tenant{}).Where("id = ? AND database = ? AND moving_to = ?", m.t.ID, m.from, m.rep.To).
		Updates(map[string]any{"moving_to": "", "writes_paused": false})
	if res.Error != nil || res.RowsAffected != 1 {
		m.c.log.ErrorContext(ctx, "tenant move undone, but its catalog flags could not be cleared; RecoverMoves will",
			"tenant", m.t.Name, "err", res.Error, "rows", res.RowsAffected)
		return
	}
	m.c.changed(ctx)
	err := m.c.on(ctx, m.to).Exec("DROP SCHEMA IF EXISTS " + migrations.Quote(m.t.Schema) + " CASCADE").Error
	if err != nil {
		m.c.log.WarnContext(ctx, "tenant move undone, but its partial copy could not be dropped; the next move to that database drops it",
			"tenant", m.t.Name, "database", m.rep.To, "err", err)
	}
}

// releaseFence ends the fence transaction, if any, and returns its
// connection.
func (m *mover) releaseFence() {
	if m.fence != nil {
		m.release(m.fence)
		m.fence = nil
	}
}

// release returns conn to its pool clean: its transaction rolled back and,
// for the lock connection, its move lock released. A connection that
// cannot be cleaned is closed instead, which the server cleans up.
func (m *mover) release(conn *sql.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := withPgx(conn, func(pc *pgx.Conn) error {
		if m.abandoned {
			return pc.Close(ctx)
		}
		if err := rollback(ctx, pc); err != nil {
			return err
		}
		if conn == m.lock {
			_, err := pc.Exec(ctx, "SELECT pg_advisory_unlock_all()")
			return err
		}
		return nil
	})
	if err != nil {
		_ = withPgx(conn, func(pc *pgx.Conn) error { return pc.Close(ctx) })
	}
	_ = conn.Close()
}

// closeAll closes the move's connections as a killed process would lose
// them (the test hook's errAbandon).
func (m *mover) closeAll() {
	m.releaseFence()
}

// rollback ends pc's transaction, if one is open.
func rollback(ctx context.Context, pc *pgx.Conn) error {
	if pc.PgConn().TxStatus() == 'I' {
		return nil
	}
	_, err := pc.Exec(ctx, "ROLLBACK")
	return err
}
