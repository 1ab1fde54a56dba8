package database_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"tenantry/config"
	"tenantry/database"
	"tenantry/internal/testenv"
)

type keyCtx struct{}

// byKey routes by a plain string in the context, standing in for the
// tenant so that the router is tested on its own.
func byKey(ctx context.Context) (string, bool) {
	k, ok := ctx.Value(keyCtx{}).(string)
	return k, ok
}

func withKey(k string) context.Context { return context.WithValue(context.Background(), keyCtx{}, k) }

// openRouter opens a fresh PostgreSQL database with conns connections in
// groups groups, routed by byKey.
func openRouter(t *testing.T, conns, groups int, adjust ...func(*config.Database)) *database.Router {
	t.Helper()
	dbc := testenv.Postgres(t)
	dbc.MaxOpenConns, dbc.MaxIdleConns, dbc.PoolGroups = conns, conns, groups
	for _, a := range adjust {
		a(&dbc)
	}
	db, _, err := database.Open(context.Background(), dbc, testenv.Logger(t), database.RouteBy(byKey))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = database.Close(db) })
	r, err := database.Pool(db)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func backendPID(ctx context.Context, t *testing.T, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}) int {
	t.Helper()
	var pid int
	if err := q.QueryRowContext(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
		t.Fatal(err)
	}
	return pid
}

// keysInGroups returns one key per group, found by trying names.
func keysInGroups(t *testing.T, r *database.Router) []string {
	t.Helper()
	keys := make([]string, r.Groups())
	found := 0
	for i := 0; found < len(keys) && i < 10000; i++ {
		k := fmt.Sprintf("t%d", i)
		if g := r.Group(withKey(k)); keys[g] == "" {
			keys[g] = k
			found++
		}
	}
	if found < len(keys) {
		t.Fatalf("found keys for %d of %d groups", found, len(keys))
	}
	return keys
}

func TestOpenSplitsThePool(t *testing.T) {
	for _, tc := range []struct{ conns, groups, wantGroups int }{
		{16, 0, 16}, // automatic: one connection per group
		{1, 0, 1},
		{3, 0, 3},
		{5, 2, 2},
		{4, 4, 4},
		{4, 1, 1},
	} {
		t.Run(fmt.Sprintf("%dconns/%dgroups", tc.conns, tc.groups), func(t *testing.T) {
			r := openRouter(t, tc.conns, tc.groups)
			if got := r.Groups(); got != tc.wantGroups {
				t.Errorf("groups = %d, want %d", got, tc.wantGroups)
			}
			if got := r.Stats().MaxOpenConnections; got != tc.conns {
				t.Errorf("max open over all groups = %d, want %d", got, tc.conns)
			}
			for i, s := range r.GroupStats() {
				if s.MaxOpenConnections < 1 {
					t.Errorf("group %d has %d connections", i, s.MaxOpenConnections)
				}
			}
		})
	}
}

// A key's statements run on its home group's connection every time, and
// two keys with different home groups run on different connections.
func TestRouterHomeGroup(t *testing.T) {
	r := openRouter(t, 4, 4)
	keys := keysInGroups(t, r)
	pids := map[int]string{}
	for _, k := range keys {
		first := backendPID(withKey(k), t, r)
		for range 5 {
			if got := backendPID(withKey(k), t, r); got != first {
				t.Fatalf("key %s ran on backend %d, then %d: not affine", k, first, got)
			}
		}
		if other, ok := pids[first]; ok {
			t.Fatalf("keys %s and %s share backend %d though their groups differ", other, k, first)
		}
		pids[first] = k
	}
	// Transactions follow the same rule.
	tx, err := r.BeginTx(withKey(keys[0]), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback() }()
	if got := backendPID(context.Background(), t, tx); pids[got] != keys[0] {
		t.Errorf("transaction for %s ran on backend %d of %q", keys[0], got, pids[got])
	}
}

// When a key's home group is busy, its statements overflow to another
// group instead of waiting; only when every group is busy do they wait.
func TestRouterOverflow(t *testing.T) {
	r := openRouter(t, 2, 2)
	key := keysInGroups(t, r)[0]
	ctx := withKey(key)
	home := backendPID(ctx, t, r)

	held, err := r.BeginTx(ctx, nil) // takes the home group's only connection
	if err != nil {
		t.Fatal(err)
	}
	if got := backendPID(ctx, t, held); got != home {
		t.Fatalf("first transaction on backend %d, want home %d", got, home)
	}
	quick, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	over := backendPID(quick, t, r)
	if over == home {
		t.Fatalf("overflow ran on the busy home backend %d", over)
	}
	if got := r.Overflows(); got != 1 {
		t.Errorf("overflows = %d, want 1", got)
	}

	held2, err := r.BeginTx(ctx, nil) // and now the other group's
	if err != nil {
		t.Fatal(err)
	}
	short, cancel2 := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel2()
	var pid int
	err = r.QueryRowContext(short, "SELECT pg_backend_pid()").Scan(&pid)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("with every connection busy: err = %v (pid %d), want a wait that ends at the deadline", err, pid)
	}
	_ = held2.Rollback()
	_ = held.Rollback()
	if got := backendPID(ctx, t, r); got != home {
		t.Errorf("after the home group freed up: backend %d, want home %d", got, home)
	}
}

// quietKey returns the nth key whose home is group g among keys no other
// helper uses (n from 0).
func quietKey(r *database.Router, g, n int) string {
	skip := n
	for i := 0; ; i++ {
		if k := fmt.Sprintf("q%d", i); r.Group(withKey(k)) == g {
			if skip == 0 {
				return k
			}
			skip--
		}
	}
}

// A quiet tenant whose home group is busy with another tenant waits for
// it rather than overflow, even with other groups free, for up to
// database.home_wait: spreading every collision over the pool at once
// would have each connection prepare every tenant's statements.
func TestRouterQuietTenantWaitsAtHome(t *testing.T) {
	r := openRouter(t, 3, 3, func(d *config.Database) { d.HomeWait = time.Minute })
	keys := keysInGroups(t, r)
	quiet := quietKey(r, 0, 0)
	held, err := r.BeginTx(withKey(keys[0]), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = held.Rollback() }()
	short, cancel := context.WithTimeout(withKey(quiet), 300*time.Millisecond)
	defer cancel()
	var pid int
	err = r.QueryRowContext(short, "SELECT pg_backend_pid()").Scan(&pid)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("quiet tenant with its home busy: err = %v (pid %d), want a wait at home", err, pid)
	}
	if got := r.Overflows(); got != 0 {
		t.Errorf("overflows = %d, want 0", got)
	}
	if got := r.Queued(); got != 0 {
		t.Errorf("a caller whose context ended is still queued: %d queued", got)
	}
}

// A quiet tenant queued for its home is handed the home connection as soon
// as it comes back, long before home_wait: the connection tells the router.
func TestRouterQueuedCallerGetsItsHomeWhenFreed(t *testing.T) {
	r := openRouter(t, 2, 2, func(d *config.Database) { d.HomeWait = time.Minute })
	keys := keysInGroups(t, r)
	home := backendPID(withKey(keys[0]), t, r)
	held, err := r.BeginTx(withKey(keys[0]), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(withKey(quietKey(r, 0, 0)), 20*time.Second)
	defer cancel()
	got := pidOf(t, r, ctx)
	waitQueued(t, r, 1)
	_ = held.Rollback()
	wantServedOn(t, got, home, "the queued quiet caller, its home connection back")
}

// pidOf runs SELECT pg_backend_pid() through r in the background and
// sends the backend it ran on (0 if it failed).
func pidOf(t *testing.T, r *database.Router, ctx context.Context) <-chan int {
	t.Helper()
	got := make(chan int, 1)
	go func() {
		var pid int
		if err := r.QueryRowContext(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
			t.Errorf("caller %v: %v", ctx.Value(keyCtx{}), err)
		}
		got <- pid
	}()
	return got
}

// wantServedOn waits up to 10 s for a pidOf result and checks it is want.
func wantServedOn(t *testing.T, got <-chan int, want int, who string) {
	t.Helper()
	select {
	case pid := <-got:
		if pid != want {
			t.Errorf("%s: ran on backend %d, want %d", who, pid, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: not served within 10 s", who)
	}
}

// homeOfGroup0Held opens a router of 2 groups of one connection, keeps
// group 0's connection busy in a transaction until the test ends, and
// returns the router and the backend of group 1's connection.
func homeOfGroup0Held(t *testing.T, adjust func(*config.Database)) (*database.Router, int) {
	t.Helper()
	r := openRouter(t, 2, 2, adjust)
	keys := keysInGroups(t, r)
	other := backendPID(withKey(keys[1]), t, r)
	held, err := r.BeginTx(withKey(keys[0]), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = held.Rollback() })
	return r, other
}

// After home_wait, a quiet tenant whose home is still busy takes a free
// connection of another group.
func TestRouterQuietTenantTakesAnyAfterHomeWait(t *testing.T) {
	r, other := homeOfGroup0Held(t, func(d *config.Database) { d.HomeWait = 50 * time.Millisecond })
	ctx, cancel := context.WithTimeout(withKey(quietKey(r, 0, 0)), 10*time.Second)
	defer cancel()
	if got := backendPID(ctx, t, r); got != other {
		t.Errorf("quiet tenant past home_wait ran on backend %d, want the free group's %d", got, other)
	}
	if got := r.Overflows(); got != 1 {
		t.Errorf("overflows = %d, want 1", got)
	}
}

// Quiet tenants leave home only while the tenants that queue are few
// enough for every connection to keep all their statements prepared:
// with a statement cache for 2 tenants, the third distinct quiet tenant
// to queue waits at home though another group is free.
func TestRouterQuietTenantsStayHomeWhenMany(t *testing.T) {
	r, other := homeOfGroup0Held(t, func(d *config.Database) {
		d.HomeWait = 20 * time.Millisecond
		d.StatementCacheCapacity = 2 * 6
	})
	for i := range 3 {
		key := quietKey(r, 0, i)
		ctx, cancel := context.WithTimeout(withKey(key), 500*time.Millisecond)
		var pid int
		err := r.QueryRowContext(ctx, "SELECT pg_backend_pid()").Scan(&pid)
		cancel()
		switch {
		case i < 2 && (err != nil || pid != other):
			t.Errorf("quiet tenant %d of 2 allowed to spread: backend %d, err %v; want the free group's %d", i+1, pid, err, other)
		case i == 2 && !errors.Is(err, context.DeadlineExceeded):
			t.Errorf("third distinct quiet tenant: backend %d, err %v; want a wait at home until the deadline", pid, err)
		}
	}
}

// waitQueued waits until n callers are queued in r.
func waitQueued(t *testing.T, r *database.Router, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for r.Queued() != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d callers queued, want %d", r.Queued(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Statements without a key (the catalog, migrations) are routed too.
func TestRouterWithoutKey(t *testing.T) {
	r := openRouter(t, 4, 2)
	if err := r.PingContext(context.Background()); err != nil {
		t.Fatal(err)
	}
	a, b := backendPID(context.Background(), t, r), backendPID(context.Background(), t, r)
	if a != b {
		t.Errorf("keyless statements ran on %d then %d with nothing busy: want one home", a, b)
	}
}

// Every connection gets the configured statement cache and plan cache
// mode, and both are connection settings, not tenant state.
func TestOpenConnectionSettings(t *testing.T) {
	r := openRouter(t, 2, 2, func(d *config.Database) {
		d.StatementCacheCapacity = 777
		d.PlanCacheMode = "force_generic_plan"
	})
	for _, k := range keysInGroups(t, r) {
		var mode string
		if err := r.QueryRowContext(withKey(k), "SHOW plan_cache_mode").Scan(&mode); err != nil {
			t.Fatal(err)
		}
		if mode != "force_generic_plan" {
			t.Errorf("group of %s: plan_cache_mode = %q", k, mode)
		}
	}
	db := openRouterSQL(t, r, withKey("x"))
	conn, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	err = conn.Raw(func(dc any) error {
		pc, ok := dc.(interface{ Conn() *pgx.Conn })
		if !ok {
			return fmt.Errorf("driver connection %T does not hold a pgx connection", dc)
		}
		if got := pc.Conn().Config().StatementCacheCapacity; got != 777 {
			return fmt.Errorf("statement cache capacity = %d, want 777", got)
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
}

// openRouterSQL returns the pool of ctx's home group.
func openRouterSQL(t *testing.T, r *database.Router, ctx context.Context) *sql.DB {
	t.Helper()
	return r.GroupDB(r.Group(ctx))
}

// With every group busy, callers queue in one queue for the whole pool:
// a connection that comes back goes to the first queued caller that may
// take it, as in one shared pool, while a quiet tenant keeps waiting for
// its own home.
func TestRouterQueueServesTheFirstFreeConnection(t *testing.T) {
	r := openRouter(t, 2, 2, func(d *config.Database) { d.HomeWait = time.Minute })
	keys := keysInGroups(t, r)
	hot := withKey(keys[0])
	home := backendPID(hot, t, r)
	other := backendPID(withKey(keys[1]), t, r)

	holdHome, err := r.BeginTx(hot, nil)
	if err != nil {
		t.Fatal(err)
	}
	holdOther, err := r.BeginTx(withKey(keys[1]), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// First a quiet tenant of group 0, then the hot tenant of group 0
	// (it ran there twice just now): both queue.
	quiet := pidOf(t, r, context.WithValue(ctx, keyCtx{}, quietKey(r, 0, 0)))
	waitQueued(t, r, 1)
	busy := pidOf(t, r, context.WithValue(ctx, keyCtx{}, keys[0]))
	waitQueued(t, r, 2)

	// Group 1 frees up: the quiet caller, first in the queue, waits for
	// its home, so the hot one takes group 1.
	_ = holdOther.Rollback()
	wantServedOn(t, busy, other, fmt.Sprintf("the hot caller (home %d), another group freed", home))
	waitQueued(t, r, 1)
	_ = holdHome.Rollback()
	wantServedOn(t, quiet, home, "the quiet caller, its home freed")
}

// Callers that find the same last free connection never both take it: one
// takes it and the others queue for the whole pool, to be served by the
// next connection to come back, instead of waiting inside that one group
// for as long as the first holds it (a transaction blocked on a lock, say).
func TestRouterCallersNeverShareTheLastConnection(t *testing.T) {
	const callers = 8
	r := openRouter(t, 2, 2)
	keys := keysInGroups(t, r)
	hot := withKey(keys[0])
	backendPID(hot, t, r) // keys[0] is now hot in group 0
	for round := range 5 {
		held, err := r.BeginTx(withKey(keys[0]), nil) // group 0 busy
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(hot, 20*time.Second)
		start := make(chan struct{})
		txs := make(chan *sql.Tx, callers)
		for range callers {
			go func() {
				<-start
				tx, err := r.BeginTx(ctx, nil)
				if err != nil {
					t.Errorf("round %d: %v", round, err)
				}
				txs <- tx
			}()
		}
		close(start)
		first := <-txs // took group 1
		waitQueued(t, r, callers-1)
		_ = held.Rollback()
		if first != nil {
			_ = first.Rollback()
		}
		for range callers - 1 { // each frees its connection for the next
			if tx := <-txs; tx != nil {
				_ = tx.Rollback()
			}
		}
		cancel()
	}
}
