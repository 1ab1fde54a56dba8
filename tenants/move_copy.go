package tenants

import (
	"context"
	"crypto/md5"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/time/rate"

	"tenantry/database"
	"tenantry/migrations"
)

// makeTarget drops what an interrupted attempt left of the schema on the
// target (the catalog says the tenant is not there, and no other tenant
// has its schema name, so it is this move's), makes the schema with the
// marker, and migrates it to the tenant's version.
func (m *mover) makeTarget(ctx context.Context) error {
	err := m.onTarget(ctx, func(pc *pgx.Conn) error {
		q := "DROP SCHEMA IF EXISTS " + migrations.Quote(m.t.Schema) + " CASCADE; " +
			"CREATE SCHEMA " + migrations.Quote(m.t.Schema) + "; " +
			"COMMENT ON SCHEMA " + migrations.Quote(m.t.Schema) + " IS '" + moveMarker + "'"
		// Several statements in one simple query run in one transaction.
		_, err := pc.Exec(ctx, q, pgx.QueryExecModeSimpleProtocol)
		return err
	})
	if err != nil {
		return fmt.Errorf("make the schema on the target: %w", err)
	}
	copyOf := *m.t
	copyOf.Database = m.to
	if _, err := m.c.provisionOn(ctx, &copyOf, false); err != nil {
		return fmt.Errorf("migrate the schema on the target: %w", err)
	}
	return nil
}

// onTarget runs fn on a connection of the target of its own.
func (m *mover) onTarget(ctx context.Context, fn func(*pgx.Conn) error) error {
	conn, err := m.pools.Conn(ctx, m.to)
	if err != nil {
		return database.Classify(err)
	}
	defer m.release(conn)
	return database.Classify(withPgx(conn, fn))
}

// fromSnapshot runs fn with a dedicated connection to the source, inside
// a REPEATABLE READ, READ ONLY transaction (one snapshot of the tenant),
// and one to the target; what committing the source's side means is
// fn's business: it ends with the snapshot's COMMIT.
func (m *mover) fromSnapshot(ctx context.Context, step string, fn func(s, d *pgx.Conn) error) error {
	src, err := m.pools.Conn(ctx, m.from)
	if err != nil {
		return fmt.Errorf("connect to the source: %w", database.Classify(err))
	}
	defer m.release(src)
	dst, err := m.pools.Conn(ctx, m.to)
	if err != nil {
		return fmt.Errorf("connect to the target: %w", database.Classify(err))
	}
	defer m.release(dst)
	err = withPgx(src, func(s *pgx.Conn) error {
		return withPgx(dst, func(d *pgx.Conn) error {
			if _, err := s.Exec(ctx, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"); err != nil {
				return err
			}
			if err := longStatements(ctx, s); err != nil {
				return err
			}
			if err := fn(s, d); err != nil {
				return err
			}
			_, err := s.Exec(ctx, "COMMIT")
			return err
		})
	})
	if err != nil {
		return fmt.Errorf("%s: %w", step, database.Classify(err))
	}
	return nil
}

// bulkCopy copies every table from one snapshot of the source to the
// target, whose tables it empties first (the record table was filled by
// provisioning; the source's own records are what it must hold).
func (m *mover) bulkCopy(ctx context.Context) error {
	return m.fromSnapshot(ctx, "bulk copy", func(s, d *pgx.Conn) error {
		tables, err := m.describe(ctx, s, d)
		if err != nil {
			return err
		}
		m.tables = tables
		for i := range m.tables {
			if err := m.hook("copy " + m.tables[i].name); err != nil {
				return err
			}
			if err := m.copyTable(ctx, s, d, &m.tables[i]); err != nil {
				return err
			}
		}
		return nil
	})
}

// copyTable empties one table on the target and copies the source's rows
// into it, in a target transaction of its own.
func (m *mover) copyTable(ctx context.Context, s, d *pgx.Conn, tb *moveTable) error {
	if _, err := d.Exec(ctx, "BEGIN"); err != nil {
		return err
	}
	if err := longStatements(ctx, d); err != nil {
		return err
	}
	if _, err := d.Exec(ctx, "TRUNCATE "+tb.qualified); err != nil {
		return fmt.Errorf("empty %s on the target: %w", tb.name, err)
	}
	n, err := pipeCopy(ctx, s, d, "SELECT "+tb.cols+" FROM "+tb.qualified, tb, m.throttle)
	if err != nil {
		return fmt.Errorf("copy %s: %w", tb.name, err)
	}
	if _, err := d.Exec(ctx, "COMMIT"); err != nil {
		return err
	}
	m.c.log.DebugContext(ctx, "tenant move: table copied", "tenant", m.t.Name, "table", tb.name, "rows", n)
	return nil
}

// pipeCopy streams the rows of query on s into tb on d, in COPY's binary
// format, and returns how many rows d took.
func pipeCopy(ctx context.Context, s, d *pgx.Conn, query string, tb *moveTable, lim *rate.Limiter) (int64, error) {
	pr, pw := io.Pipe()
	var from io.Reader = pr
	if lim != nil {
		from = &throttled{ctx: ctx, r: pr, lim: lim}
	}
	done := make(chan error, 1)
	go func() {
		_, err := s.PgConn().CopyTo(ctx, pw, "COPY ("+query+") TO STDOUT (FORMAT binary)")
		_ = pw.CloseWithError(err)
		done <- err
	}()
	tag, err := d.PgConn().CopyFrom(ctx, from, "COPY "+tb.qualified+" ("+tb.cols+") FROM STDIN (FORMAT binary)")
	// A target that failed stops reading: the source's side must not
	// block on the pipe for ever.
	_ = pr.CloseWithError(errors.New("target stopped reading"))
	if serr := <-done; serr != nil && err == nil {
		err = serr
	}
	if err != nil {
		return 0, err
	}
	return tag.RowsAffected(), nil
}

// prepass, while writes go on, brings the target level with a fresh
// snapshot of the source (the writes made during the bulk copy) and
// remembers every row's hash, so that the pause has only the writes made
// since to catch up, found with one scan of the source.
func (m *mover) prepass(ctx context.Context) error {
	m.known = map[string]map[string]string{}
	// One snapshot for the hashes and the rows copied after them, so that
	// the target holds exactly what the hashes say.
	return m.fromSnapshot(ctx, "pre-pass", func(s, d *pgx.Conn) error {
		if _, err := d.Exec(ctx, "BEGIN"); err != nil {
			return err
		}
		if err := longStatements(ctx, d); err != nil {
			return err
		}
		for i := range m.tables {
			tb := &m.tables[i]
			hashes, _, err := m.syncTable(ctx, s, d, tb, nil)
			if err != nil {
				return fmt.Errorf("pre-pass %s: %w", tb.name, err)
			}
			m.known[tb.name] = hashes
		}
		_, err := d.Exec(ctx, "COMMIT")
		return err
	})
}

// setPaused sets WritesPaused and announces it: from then on every
// instance that has reloaded answers the tenant's writes 503.
func (m *mover) setPaused(ctx context.Context) error {
	res := m.c.db.WithContext(ctx).Model(&Tenant{}).Where("id = ? AND database = ? AND moving_to = ?", m.t.ID, m.from, m.rep.To).
		Updates(map[string]any{"writes_paused": true})
	if res.Error != nil {
		return fmt.Errorf("pause writes: %w", res.Error)
	}
	if res.RowsAffected != 1 {
		return ErrMoveInProgress.With("", fmt.Sprintf("Tenant %q changed during the move.", m.t.Name), nil)
	}
	m.c.changed(ctx)
	return nil
}

// takeFence opens the fence transaction on the source: the tenant's
// advisory lock first (as provisioning, migrations and removal take it),
// then EXCLUSIVE locks on its tables in name order, which conflict with
// every write and with no plain read. Each attempt waits at most
// opts.LockTimeout per lock; a lock timeout or deadlock (with a write
// that locks the tables in another order) undoes it and it is tried
// again, as Remove's disposal is.
func (m *mover) takeFence(ctx context.Context) error {
	conn, err := m.pools.Conn(ctx, m.from)
	if err != nil {
		return fmt.Errorf("connect to the source: %w", database.Classify(err))
	}
	m.fence = conn
	for attempt := 1; ; attempt++ {
		err := withPgx(conn, func(pc *pgx.Conn) error { return m.fenceOnce(ctx, pc) })
		if err == nil {
			return nil
		}
		_ = withPgx(conn, func(pc *pgx.Conn) error { return rollback(ctx, pc) })
		err = database.Classify(err)
		if !retryable(err) || attempt >= m.opts.Attempts || ctx.Err() != nil {
			return fmt.Errorf("fence the source after %d attempts: %w", attempt, err)
		}
		m.c.log.InfoContext(ctx, "tenant move could not fence the source; retrying", "tenant", m.t.Name, "attempt", attempt, "err", err)
		select {
		case <-ctx.Done():
			return fmt.Errorf("fence the source: %w", ctx.Err())
		case <-time.After(retryDelay(attempt)):
		}
	}
}

func (m *mover) fenceOnce(ctx context.Context, pc *pgx.Conn) error {
	if _, err := pc.Exec(ctx, "BEGIN"); err != nil {
		return err
	}
	if _, err := pc.Exec(ctx, "SELECT set_config('lock_timeout', $1, true)", pgx.QueryExecModeExec,
		strconv.FormatInt(m.opts.LockTimeout.Milliseconds(), 10)+"ms"); err != nil {
		return err
	}
	if _, err := pc.Exec(ctx, "SELECT pg_advisory_xact_lock(hashtext($1))", pgx.QueryExecModeExec, "tenantry:tenant:"+m.t.Schema); err != nil {
		return fmt.Errorf("tenant lock: %w", err)
	}
	names := make([]string, 0, len(m.tables))
	for _, tb := range m.tables {
		names = append(names, tb.qualified)
	}
	slices.Sort(names)
	for _, n := range names {
		if _, err := pc.Exec(ctx, "LOCK TABLE "+n+" IN EXCLUSIVE MODE"); err != nil {
			return fmt.Errorf("lock %s: %w", n, err)
		}
	}
	return nil
}

// catchUp brings the target level with the fenced source and verifies
// every table, in one target transaction committed only when all match.
func (m *mover) catchUp(ctx context.Context) error {
	dst, err := m.pools.Conn(ctx, m.to)
	if err != nil {
		return fmt.Errorf("connect to the target: %w", database.Classify(err))
	}
	defer m.release(dst)
	err = withPgx(m.fence, func(s *pgx.Conn) error {
		return withPgx(dst, func(d *pgx.Conn) error {
			if err := longStatements(ctx, s); err != nil {
				return err
			}
			if _, err := d.Exec(ctx, "BEGIN"); err != nil {
				return err
			}
			if err := longStatements(ctx, d); err != nil {
				return err
			}
			// The fence's transaction may have been retried since the
			// copy: the tables are described again under the locks, so a
			// migration that ran meanwhile fails the move here.
			tables, err := m.describe(ctx, s, d)
			if err != nil {
				return err
			}
			m.tables = tables
			current := map[string]map[string]string{}
			for i := range m.tables {
				tb := &m.tables[i]
				hashes, n, err := m.syncTable(ctx, s, d, tb, m.known[tb.name])
				if err != nil {
					return fmt.Errorf("catch up %s: %w", tb.name, err)
				}
				current[tb.name] = hashes
				m.rep.CaughtUp += n
			}
			if err := m.syncSequences(ctx, s, d); err != nil {
				return err
			}
			if err := m.hook("caught-up"); err != nil {
				return err
			}
			if err := m.verify(ctx, d, current); err != nil {
				return err
			}
			_, err = d.Exec(ctx, "COMMIT")
			return err
		})
	})
	if err != nil {
		return fmt.Errorf("catch up: %w", database.Classify(err))
	}
	return nil
}

// syncTable makes tb on d hold exactly the rows of tb on s and returns
// the source's key → row hash and how many rows it deleted or copied.
// Rows are told apart by primary key and compared by an md5 of their
// text. dstRows is what d holds when the caller knows it (the pre-pass
// left it so); nil has d scanned.
func (m *mover) syncTable(ctx context.Context, s, d *pgx.Conn, tb *moveTable, dstRows map[string]string) (map[string]string, int64, error) {
	q := "SELECT " + tb.key + ", md5(ROW(" + tb.cols + ")::text) FROM " + tb.qualified
	srcRows, err := rowHashes(ctx, s, q, m.throttle)
	if err != nil {
		return nil, 0, err
	}
	if dstRows == nil {
		if dstRows, err = rowHashes(ctx, d, q, m.throttle); err != nil {
			return nil, 0, err
		}
	}
	var stale, fresh []string
	for k, h := range dstRows {
		if sh, ok := srcRows[k]; !ok || sh != h {
			stale = append(stale, k)
		}
	}
	for k, h := range srcRows {
		if dh, ok := dstRows[k]; !ok || dh != h {
			fresh = append(fresh, k)
		}
	}
	if len(stale) > 0 {
		if _, err := d.Exec(ctx, "DELETE FROM "+tb.qualified+" WHERE "+tb.match("$1::text[]"), pgx.QueryExecModeExec, stale); err != nil {
			return nil, 0, fmt.Errorf("delete changed rows: %w", err)
		}
	}
	if len(fresh) > 0 {
		// COPY takes no parameters: the keys travel in a setting of the
		// fence's transaction, which the query reads back.
		if _, err := s.Exec(ctx, "SELECT set_config('tenantry.move_keys', $1::text[]::text, true)", pgx.QueryExecModeExec, fresh); err != nil {
			return nil, 0, err
		}
		q := "SELECT " + tb.cols + " FROM " + tb.qualified + " WHERE " + tb.match("current_setting('tenantry.move_keys')::text[]")
		if _, err := pipeCopy(ctx, s, d, q, tb, m.throttle); err != nil {
			return nil, 0, fmt.Errorf("copy new rows: %w", err)
		}
	}
	return srcRows, int64(len(stale) + len(fresh)), nil
}

// rowHashes returns key → hash for every row q yields.
func rowHashes(ctx context.Context, pc *pgx.Conn, q string, lim *rate.Limiter) (map[string]string, error) {
	rows, err := pc.Query(ctx, q, pgx.QueryExecModeExec)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	var k, h string
	_, err = pgx.ForEachRow(rows, []any{&k, &h}, func() error {
		out[k] = h
		// Reading slower slows the server's scan too: it waits to send.
		if lim != nil && len(out)%hashBatch == 0 {
			return lim.WaitN(ctx, hashBatch*(len(k)+len(h)))
		}
		return nil
	})
	return out, err
}

// hashBatch is how many row hashes rowHashes reads between two waits on
// its limiter.
const hashBatch = 256

// throttleBurst is the most a throttled copy reads at once.
const throttleBurst = 64 << 10

// throttled reads r no faster than lim allows.
type throttled struct {
	ctx context.Context
	r   io.Reader
	lim *rate.Limiter
}

func (t *throttled) Read(p []byte) (int, error) {
	if len(p) > throttleBurst {
		p = p[:throttleBurst]
	}
	n, err := t.r.Read(p)
	if n > 0 {
		if werr := t.lim.WaitN(t.ctx, n); werr != nil && err == nil {
			err = werr
		}
	}
	return n, err
}

// syncSequences sets every sequence of the schema on d to its value on s.
func (m *mover) syncSequences(ctx context.Context, s, d *pgx.Conn) error {
	rows, err := s.Query(ctx, `SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = $1 AND c.relkind = 'S' ORDER BY c.relname`, pgx.QueryExecModeExec, m.t.Schema)
	if err != nil {
		return err
	}
	seqs, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("list sequences: %w", err)
	}
	for _, seq := range seqs {
		name := migrations.Quote(m.t.Schema + "." + seq)
		var last int64
		var called bool
		if err := s.QueryRow(ctx, "SELECT last_value, is_called FROM "+name, pgx.QueryExecModeExec).Scan(&last, &called); err != nil {
			return fmt.Errorf("read sequence %s: %w", seq, err)
		}
		if _, err := d.Exec(ctx, "SELECT setval($1::regclass, $2, $3)", pgx.QueryExecModeExec, name, last, called); err != nil {
			return fmt.Errorf("set sequence %s: %w", seq, err)
		}
	}
	return nil
}

// checksumSQL is a table's row count and a checksum of its rows that does
// not depend on their order or on either server's collation; checksum
// computes the same from row hashes.
const checksumSQL = `SELECT count(*), md5(coalesce(string_agg(h, '' ORDER BY h COLLATE "C"), '')) FROM (SELECT md5(ROW(%s)::text) AS h FROM %s) r`

func checksum(rows map[string]string) string {
	hs := slices.Sorted(maps.Values(rows))
	sum := md5.New()
	for _, h := range hs {
		sum.Write([]byte(h))
	}
	return hex.EncodeToString(sum.Sum(nil))
}

// verify compares every table's row count and checksum on the target,
// read by the target's server, with the source's, computed from the row
// hashes read in the fence, and records them in the report.
func (m *mover) verify(ctx context.Context, d *pgx.Conn, source map[string]map[string]string) error {
	m.rep.Tables, m.rep.Rows = nil, 0
	for _, tb := range m.tables {
		sn, ssum := int64(len(source[tb.name])), checksum(source[tb.name])
		var dn int64
		var dsum string
		if err := d.QueryRow(ctx, fmt.Sprintf(checksumSQL, tb.cols, tb.qualified), pgx.QueryExecModeExec).Scan(&dn, &dsum); err != nil {
			return fmt.Errorf("checksum %s on the target: %w", tb.name, err)
		}
		if sn != dn || ssum != dsum {
			return fmt.Errorf("verify %s: source has %d rows (checksum %s), target %d (%s)", tb.name, sn, ssum, dn, dsum)
		}
		m.rep.Tables = append(m.rep.Tables, MovedTable{Table: tb.name, Rows: sn, Checksum: ssum})
		m.rep.Rows += sn
	}
	return nil
}

// withPgx runs fn with the pgx connection under conn (COPY needs the
// driver's own).
func withPgx(conn *sql.Conn, fn func(*pgx.Conn) error) error {
	return conn.Raw(func(dc any) error {
		// Not *stdlib.Conn: the pool wraps pgx's connection (see
		// database.releasingConn) and keeps its Conn method.
		sc, ok := dc.(interface{ Conn() *pgx.Conn })
		if !ok {
			return fmt.Errorf("driver connection %T is not pgx's", dc)
		}
		return fn(sc.Conn())
	})
}

// longStatements lifts the pool's statement_timeout for the rest of pc's
// transaction (a big table's COPY may take longer; the move's context
// bounds it) and fixes the settings a row's text depends on, so that both
// servers hash the same row alike.
func longStatements(ctx context.Context, pc *pgx.Conn) error {
	_, err := pc.Exec(ctx, `SELECT set_config('statement_timeout', '0', true), set_config('TimeZone', 'UTC', true),
		set_config('DateStyle', 'ISO, MDY', true), set_config('IntervalStyle', 'postgres', true),
		set_config('extra_float_digits', '1', true), set_config('bytea_output', 'hex', true)`)
	return err
}

// moveTable is one of the tenant's tables as a move handles it.
type moveTable struct {
	name      string // logical name
	qualified string // quoted "schema"."table"
	cols      string // quoted columns in the source's order
	// key is a text expression of the primary key; match(arr) an SQL
	// condition true for the rows whose key is in arr (a text[]).
	key   string
	match func(arr string) string
}

// describe reads each table's columns and primary key on s and checks
// that d's table has the same: a schema that differs (a migration ran on
// one side during the move) must fail the move, not copy half a row.
func (m *mover) describe(ctx context.Context, s, d *pgx.Conn) ([]moveTable, error) {
	var out []moveTable
	for _, name := range m.c.set.Tables() {
		sc, err := columnsOf(ctx, s, m.t.Schema, name)
		if err != nil {
			return nil, fmt.Errorf("describe %s on the source: %w", name, err)
		}
		dc, err := columnsOf(ctx, d, m.t.Schema, name)
		if err != nil {
			return nil, fmt.Errorf("describe %s on the target: %w", name, err)
		}
		if !slices.Equal(sc, dc) {
			return nil, fmt.Errorf("table %s differs: source %v, target %v", name, sc, dc)
		}
		if len(sc) == 0 {
			return nil, fmt.Errorf("table %s: missing on the source", name)
		}
		tb := moveTable{name: name, qualified: migrations.Quote(m.t.Schema + "." + name)}
		var cols, pk []string
		var pkType string
		for _, col := range sc {
			cols = append(cols, migrations.Quote(col.name))
			if col.pk {
				pk, pkType = append(pk, migrations.Quote(col.name)), col.typ
			}
		}
		tb.cols = strings.Join(cols, ", ")
		switch len(pk) {
		case 0:
			return nil, fmt.Errorf("table %s has no primary key", name)
		case 1:
			// Compared in the key's own type, so its index is used.
			tb.key = pk[0] + "::text"
			tb.match = func(arr string) string { return pk[0] + " = ANY((" + arr + ")::" + pkType + "[])" }
		default:
			tb.key = "ROW(" + strings.Join(pk, ", ") + ")::text"
			tb.match = func(arr string) string { return tb.key + " = ANY(" + arr + ")" }
		}
		out = append(out, tb)
	}
	return out, nil
}

// column is one column of a table as describe compares it.
type column struct {
	name, typ string
	pk        bool
}

func columnsOf(ctx context.Context, pc *pgx.Conn, schema, table string) ([]column, error) {
	rows, err := pc.Query(ctx, `SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), coalesce(a.attnum = ANY(i.indkey), false)
		FROM pg_attribute a
		JOIN pg_class c ON c.oid = a.attrelid
		JOIN pg_namespace n ON n.oid = c.relnamespace
		LEFT JOIN pg_index i ON i.indrelid = c.oid AND i.indisprimary
		WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind = 'r' AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
		ORDER BY a.attnum`, pgx.QueryExecModeExec, schema, table)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (column, error) {
		var col column
		err := r.Scan(&col.name, &col.typ, &col.pk)
		return col, err
	})
}
