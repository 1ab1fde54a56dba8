package tenants_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"

	"tenantry/app"
	"tenantry/config"
	"tenantry/internal/testenv"
	"tenantry/migrations"
	"tenantry/tenants"
)

// moveEnv is a served app whose catalog is on the shared server, with two
// private clusters as the placements "east" and "west", and a raw
// connection to each of the three servers for counting rows straight
// from the databases.
type moveEnv struct {
	env        *testenv.Env
	cat        *tenants.Catalog
	east, west *testenv.Cluster
	raw        map[string]*sql.DB // by placement name: main, east, west
	port       string
	client     *http.Client
	// top is the test the env belongs to: what reopen's connections are
	// closed with.
	top *testing.T
}

func newMoveEnv(t *testing.T) *moveEnv {
	t.Helper()
	east, west := testenv.StartCluster(t), testenv.StartCluster(t)
	env := testenv.Start(t, "postgres", func(cfg *config.Config) {
		cfg.Databases = []config.Placement{{Name: "east", DSN: east.DSN()}, {Name: "west", DSN: west.DSN()}}
		cfg.Server.RequestTimeout, cfg.Server.WriteTimeout = 10*time.Second, 15*time.Second
	})
	me := &moveEnv{top: t, env: env, cat: env.App.Catalog, east: east, west: west, port: testenv.Port(env.Addr1),
		client: &http.Client{Timeout: 15 * time.Second},
		raw: map[string]*sql.DB{
			"main": openRaw(t, env.App.Config.Database.DSN), "east": openRaw(t, east.DSN()), "west": openRaw(t, west.DSN()),
		}}
	return me
}

// reopen replaces the raw connections to db, broken by its restart.
func (me *moveEnv) reopen(t *testing.T, db string) {
	t.Helper()
	dsn := me.east.DSN()
	if db == "west" {
		dsn = me.west.DSN()
	}
	me.raw[db] = openRaw(me.top, dsn)
}

func (me *moveEnv) host(name string) string { return name + ".test:" + me.port }

// create makes tenant name on database db with users seeded users,
// inserted straight into its table (the sequence advances as for the
// API's inserts).
func (me *moveEnv) create(t *testing.T, name, db string, users int) *tenants.Tenant {
	t.Helper()
	tn, err := me.cat.Create(t.Context(), tenants.Spec{Name: name, Database: db, Hosts: []string{me.host(name)}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = me.raw[db].Exec(`INSERT INTO `+migrations.Quote(tn.Schema+".users")+` (name, email, created_at, updated_at)
		SELECT 'Seed ' || i, 'seed-' || i || '@example.com', now(), now() FROM generate_series(1, $1) i`, users)
	if err != nil {
		t.Fatal(err)
	}
	return tn
}

// send sends method path to the app as tenant name and returns the
// status and body.
func (me *moveEnv) send(ctx context.Context, base, name, method, path, body string) (int, string, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, base+path, rd)
	if err != nil {
		return 0, "", err
	}
	req.Host = me.host(name)
	req.Header.Set("Content-Type", "application/json")
	resp, err := me.client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// hasSchema says whether database db has a schema called schema.
func (me *moveEnv) hasSchema(t *testing.T, db, schema string) bool {
	t.Helper()
	var n int
	if err := me.raw[db].QueryRow("SELECT count(*) FROM pg_namespace WHERE nspname = $1", schema).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n == 1
}

// users counts the users of schema on database db.
func (me *moveEnv) users(t *testing.T, db, schema string) int {
	t.Helper()
	var n int
	if err := me.raw[db].QueryRow("SELECT count(*) FROM " + migrations.Quote(schema+".users")).Scan(&n); err != nil {
		t.Fatalf("count users of %s on %s: %v", schema, db, err)
	}
	return n
}

// checkAt checks that tenant name is served from database db with no move
// recorded, that its schema is on db alone, and that it has want users.
func (me *moveEnv) checkAt(t *testing.T, name, db string, want int) {
	t.Helper()
	tn, err := me.cat.Get(t.Context(), name)
	if err != nil {
		t.Fatal(err)
	}
	if got := me.cat.DatabaseName(tn); got != db || tn.MovingTo != "" || tn.WritesPaused {
		t.Errorf("%s: database %q, moving_to %q, writes_paused %v; want %q, no move", name, got, tn.MovingTo, tn.WritesPaused, db)
	}
	for server := range me.raw {
		if has := me.hasSchema(t, server, tn.Schema); has != (server == db) {
			t.Errorf("%s: schema on %s is %v, want %v", name, server, has, server == db)
		}
	}
	if got := me.users(t, db, tn.Schema); got != want {
		t.Errorf("%s: %d users on %s, want %d", name, got, db, want)
	}
	code, body, err := me.send(t.Context(), me.env.URL1, name, http.MethodGet, "/api/users?limit=1", "")
	if err != nil || code != http.StatusOK {
		t.Errorf("%s: list users: %d %v %s", name, code, err, body)
	}
}

// TestMove moves tenants between two PostgreSQL servers while they are
// used, and breaks moves at every phase.
func TestMove(t *testing.T) {
	me := newMoveEnv(t)
	ctx := t.Context()

	t.Run("under load", func(t *testing.T) { testMoveUnderLoad(t, me) })

	t.Run("fails at each phase and is retried", func(t *testing.T) {
		tn := me.create(t, "mvfail", "east", 50)
		written := 50
		phases := []string{"marked", "target", "copy idempotency_keys", "copy users", "copied", "paused", "fenced", "caught-up", "verified"}
		for _, phase := range phases {
			hctx := tenants.WithMoveHook(ctx, func(p string) error {
				if p == phase {
					return errors.New("injected")
				}
				return nil
			})
			if _, err := me.cat.Move(hctx, tn.Name, tenants.MoveOptions{To: "west", Grace: time.Millisecond}); err == nil {
				t.Fatalf("move failing at %s: no error", phase)
			}
			me.checkAt(t, tn.Name, "east", written)
			// Undone means writable again: no seal, no fence left.
			if code, body, err := me.send(ctx, me.env.URL1, tn.Name, http.MethodPost, "/api/users",
				fmt.Sprintf(`{"name":"After","email":"failed-at-%d@example.com"}`, written)); err != nil || code != http.StatusCreated {
				t.Fatalf("write after the move failed at %s: %d %v %s", phase, code, err, body)
			}
			written++
		}
		rep, err := me.cat.Move(ctx, tn.Name, tenants.MoveOptions{To: "west", Grace: time.Millisecond})
		if err != nil {
			t.Fatalf("retry: %v", err)
		}
		me.checkAt(t, tn.Name, "west", written)
		if rep.ArchivedAs == "" || !me.hasSchema(t, "east", rep.ArchivedAs) {
			t.Errorf("archived as %q: not on east", rep.ArchivedAs)
		}
	})

	t.Run("killed at each phase and recovered", func(t *testing.T) {
		tn := me.create(t, "mvkill", "east", 30)
		for _, phase := range []string{"marked", "copy users", "copied", "paused", "fenced", "verified"} {
			hctx := tenants.WithMoveHook(ctx, func(p string) error {
				if p == phase {
					return tenants.ErrAbandonMove
				}
				return nil
			})
			if _, err := me.cat.Move(hctx, tn.Name, tenants.MoveOptions{To: "west"}); !errors.Is(err, tenants.ErrAbandonMove) {
				t.Fatalf("killed at %s: %v", phase, err)
			}
			left, err := me.cat.Get(ctx, tn.Name)
			if err != nil {
				t.Fatal(err)
			}
			if left.MovingTo != "west" {
				t.Errorf("killed at %s: moving_to %q, want west until recovered", phase, left.MovingTo)
			}
			if err := me.cat.RecoverMoves(ctx); err != nil {
				t.Fatalf("recover after %s: %v", phase, err)
			}
			me.checkAt(t, tn.Name, "east", 30)
			// The killed move's fence is gone with its connection.
			if code, body, err := me.send(ctx, me.env.URL1, tn.Name, http.MethodPost, "/api/users",
				fmt.Sprintf(`{"name":"After","email":"after-%d@example.com"}`, len(phase))); err != nil || code != http.StatusCreated {
				t.Fatalf("write after recovering from %s: %d %v %s", phase, code, err, body)
			}
			_, _ = me.raw["east"].Exec("DELETE FROM " + migrations.Quote(tn.Schema+".users") + " WHERE email LIKE 'after-%'")
		}
		// Killed after the switch: the tenant is on the target, and the
		// source is archived by the recovery, never dropped.
		hctx := tenants.WithMoveHook(ctx, func(p string) error {
			if p == "switched" {
				return tenants.ErrAbandonMove
			}
			return nil
		})
		if _, err := me.cat.Move(hctx, tn.Name, tenants.MoveOptions{To: "west", DropSource: true}); !errors.Is(err, tenants.ErrAbandonMove) {
			t.Fatalf("killed after the switch: %v", err)
		}
		if !me.hasSchema(t, "east", tn.Schema) {
			t.Fatal("killed after the switch: source already gone")
		}
		// A new move of the tenant recovers the old one first.
		rep, err := me.cat.Move(ctx, tn.Name, tenants.MoveOptions{To: "main", Grace: time.Millisecond})
		if err != nil {
			t.Fatalf("move after the kill: %v", err)
		}
		me.checkAt(t, tn.Name, "main", 30)
		var archived int
		if err := me.raw["east"].QueryRow("SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'archived_mvkill_%'").Scan(&archived); err != nil {
			t.Fatal(err)
		}
		if archived != 1 || rep.From != "west" {
			t.Errorf("after the kill: %d archives on east (want 1), moved from %q (want west)", archived, rep.From)
		}
	})

	t.Run("target down mid-copy", func(t *testing.T) {
		tn := me.create(t, "mvtgt", "east", 40)
		hctx := tenants.WithMoveHook(ctx, func(p string) error {
			if p == "copy users" {
				return me.west.Stop()
			}
			return nil
		})
		_, err := me.cat.Move(hctx, tn.Name, tenants.MoveOptions{To: "west"})
		if !errors.Is(err, tenants.ErrMoveFailed) {
			t.Fatalf("move with the target down: %v, want ErrMoveFailed", err)
		}
		tg, err := me.cat.Get(ctx, tn.Name)
		if err != nil {
			t.Fatal(err)
		}
		if tg.Database != "east" || tg.MovingTo != "" || tg.WritesPaused {
			t.Errorf("after the failure: %+v", tg)
		}
		if err := me.west.Start(); err != nil {
			t.Fatal(err)
		}
		me.reopen(t, "west")
		me.retryMove(t, tn.Name, "west")
		me.checkAt(t, tn.Name, "west", 40)
	})

	t.Run("source down while paused", func(t *testing.T) {
		tn := me.create(t, "mvsrc", "east", 40)
		hctx := tenants.WithMoveHook(ctx, func(p string) error {
			if p == "paused" {
				return me.east.Stop()
			}
			return nil
		})
		_, err := me.cat.Move(hctx, tn.Name, tenants.MoveOptions{To: "west"})
		if !errors.Is(err, tenants.ErrMoveFailed) {
			t.Fatalf("move with the source down: %v, want ErrMoveFailed", err)
		}
		if err := me.east.Start(); err != nil {
			t.Fatal(err)
		}
		me.reopen(t, "east")
		me.checkAt(t, tn.Name, "east", 40)
		me.retryMove(t, tn.Name, "west")
		me.checkAt(t, tn.Name, "west", 40)
	})

	t.Run("second move of the same tenant", func(t *testing.T) {
		tn := me.create(t, "mvtwice", "east", 10)
		var second error
		var recovered error
		hctx := tenants.WithMoveHook(ctx, func(p string) error {
			if p == "copied" {
				_, second = me.cat.Move(ctx, tn.Name, tenants.MoveOptions{To: "west"})
				recovered = me.cat.RecoverMoves(ctx)
			}
			return nil
		})
		if _, err := me.cat.Move(hctx, tn.Name, tenants.MoveOptions{To: "west", Grace: time.Millisecond}); err != nil {
			t.Fatal(err)
		}
		if !errors.Is(second, tenants.ErrMoveInProgress) || recovered != nil {
			t.Errorf("second move: %v, recover: %v; want ErrMoveInProgress and nothing to recover", second, recovered)
		}
		me.checkAt(t, tn.Name, "west", 10)
	})

	t.Run("refused moves", func(t *testing.T) {
		me.create(t, "mvref", "east", 1)
		if _, err := me.cat.SetStatus(ctx, "mvref", tenants.StatusSuspended); err != nil {
			t.Fatal(err)
		}
		cases := []struct {
			name, tenant, to string
			want             error
		}{
			{"unknown database", "mvref", "nowhere", tenants.ErrUnknownDatabase},
			{"no database", "mvref", "", tenants.ErrUnknownDatabase},
			{"same database", "mvref", "east", tenants.ErrAlreadyOnDatabase},
			{"suspended", "mvref", "west", tenants.ErrCannotMove},
			{"unknown tenant", "nobody", "west", tenants.ErrNotFound},
		}
		for _, tc := range cases {
			if _, err := me.cat.Move(ctx, tc.tenant, tenants.MoveOptions{To: tc.to}); !errors.Is(err, tc.want) {
				t.Errorf("%s: got %v, want %v", tc.name, err, tc.want)
			}
		}
		if _, err := me.cat.SetStatus(ctx, "mvref", tenants.StatusActive); err != nil {
			t.Fatal(err)
		}
		me.checkAt(t, "mvref", "east", 1)
	})

	t.Run("stale instance's write fails on the sealed source", func(t *testing.T) { testMoveStaleWrite(t, me) })
}

// retryMove moves name to db, sending the move again while it fails
// transiently (a pool still finding its connections to a restarted
// server broken).
func (me *moveEnv) retryMove(t *testing.T, name, db string) {
	t.Helper()
	testenv.Eventually(t, 30*time.Second, func() bool {
		_, err := me.cat.Move(t.Context(), name, tenants.MoveOptions{To: db, Grace: time.Millisecond})
		if err != nil {
			t.Logf("move of %s to %s: %v", name, db, err)
		}
		return err == nil
	}, "move of ", name, " to ", db, " to succeed")
}

// testMoveUnderLoad moves a tenant while clients read and write it and
// another tenant on the same servers, and counts what they saw.
func testMoveUnderLoad(t *testing.T, me *moveEnv) {
	ctx := t.Context()
	const seeded = 3000
	moving := me.create(t, "mvload", "east", seeded)
	other := me.create(t, "mvother", "east", 200)

	type seen struct {
		mu                       sync.Mutex
		statuses                 map[string]int // "read 200", "write 503 tenant-moving"...
		acked                    []string       // emails of users created (201)
		badReads, otherReadFails int
	}
	s := &seen{statuses: map[string]int{}}
	loadCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var seq atomic.Int64
	record := func(kind string, code int, body string) {
		s.mu.Lock()
		defer s.mu.Unlock()
		key := fmt.Sprintf("%s %d", kind, code)
		if code >= 400 {
			var p struct{ Type string }
			_ = json.Unmarshal([]byte(body), &p)
			key += " " + p.Type[strings.LastIndexByte(p.Type, ':')+1:]
		}
		s.statuses[key]++
	}
	for w := range 3 {
		wg.Go(func() {
			for loadCtx.Err() == nil {
				email := fmt.Sprintf("w%d-%d@example.com", w, seq.Add(1))
				// Sent with the test's context: a write is never cut off
				// between its commit and its answer.
				code, body, err := me.send(ctx, me.env.URL1, moving.Name, http.MethodPost, "/api/users",
					`{"name":"Writer","email":"`+email+`"}`)
				if err != nil {
					continue
				}
				record("write", code, body)
				if code == http.StatusCreated {
					s.mu.Lock()
					s.acked = append(s.acked, email)
					s.mu.Unlock()
				}
			}
		})
	}
	for range 3 {
		wg.Go(func() {
			for loadCtx.Err() == nil {
				id := 1 + rand.IntN(seeded)
				code, body, err := me.send(ctx, me.env.URL1, moving.Name, http.MethodGet, fmt.Sprintf("/api/users/%d", id), "")
				if err != nil {
					continue
				}
				record("read", code, body)
				if code != http.StatusOK {
					s.mu.Lock()
					s.badReads++
					s.mu.Unlock()
				}
				code, _, err = me.send(ctx, me.env.URL1, other.Name, http.MethodGet, fmt.Sprintf("/api/users/%d", 1+rand.IntN(200)), "")
				if err == nil && code != http.StatusOK {
					s.mu.Lock()
					s.otherReadFails++
					s.mu.Unlock()
				}
			}
		})
	}
	// Let the load run before and after the move.
	testenv.Eventually(t, 10*time.Second, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.acked) >= 20
	}, "writes before the move")
	rep, err := me.cat.Move(ctx, moving.Name, tenants.MoveOptions{To: "west", Grace: 500 * time.Millisecond})
	after := 0
	if err == nil {
		s.mu.Lock()
		after = len(s.acked)
		s.mu.Unlock()
		testenv.Eventually(t, 10*time.Second, func() bool {
			s.mu.Lock()
			defer s.mu.Unlock()
			return len(s.acked) >= after+20
		}, "writes after the move")
	}
	stop()
	wg.Wait()
	if err != nil {
		t.Fatalf("move: %v", err)
	}
	t.Logf("move: %d rows, copy %v, write pause %v, caught up %d rows; answers %v", rep.Rows, rep.Copy, rep.WritePause, rep.CaughtUp, s.statuses)

	if rep.From != "east" || rep.To != "west" || rep.RetirePending || rep.ArchivedAs == "" {
		t.Errorf("report %+v", rep)
	}
	if s.badReads > 0 || s.otherReadFails > 0 {
		t.Errorf("%d failed reads of the moved tenant, %d of the other; want none", s.badReads, s.otherReadFails)
	}
	for key, n := range s.statuses {
		switch key {
		case "read 200", "write 201", "write 503 tenant-moving":
			// Writes are refused only while paused.
		// A write that reached the source after it was fenced waited,
		// and failed once the source was retired: unacknowledged.
		case "write 404 tenant-gone":
			t.Logf("%d writes waited on the fence and failed as gone", n)
		default:
			t.Errorf("%d answers %q during the move", n, key)
		}
	}
	// Every acknowledged user is on the target, nowhere else.
	me.checkAt(t, moving.Name, "west", seeded+len(s.acked))
	for _, email := range s.acked {
		var n int
		if err := me.raw["west"].QueryRow("SELECT count(*) FROM mvload.users WHERE email = $1", email).Scan(&n); err != nil || n != 1 {
			t.Fatalf("acknowledged user %s: %d on the target (%v)", email, n, err)
		}
	}
	// The report's figures are the target's.
	for _, tb := range rep.Tables {
		var n int64
		if err := me.raw["west"].QueryRow("SELECT count(*) FROM " + migrations.Quote("mvload."+tb.Table)).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if tb.Table != "users" && n != tb.Rows {
			t.Errorf("table %s: %d rows on the target, report says %d", tb.Table, n, tb.Rows)
		}
	}
	// The archive on the source holds what the source had at the switch.
	if got := me.users(t, "east", rep.ArchivedAs); got > seeded+len(s.acked) || got < seeded {
		t.Errorf("archive has %d users; want between %d and %d", got, seeded, seeded+len(s.acked))
	}
	// New users get fresh ids on the target: the sequence came along.
	code, body, err := me.send(ctx, me.env.URL1, moving.Name, http.MethodPost, "/api/users", `{"name":"Last","email":"last@example.com"}`)
	if err != nil || code != http.StatusCreated {
		t.Fatalf("write after the move: %d %v %s", code, err, body)
	}
	// The other tenant on the same servers is untouched.
	me.checkAt(t, other.Name, "east", 200)
}

// testMoveStaleWrite sends a write through an instance whose cache still
// has the tenant on its source, during the pause: it waits on the fence,
// then fails on the seal the move puts on the source before its switch
// (503 tenant-moved), and lands nowhere.
func testMoveStaleWrite(t *testing.T, me *moveEnv) {
	ctx := t.Context()
	tn := me.create(t, "mvstale", "east", 5)
	stale, err := app.Open(ctx, me.env.App.Config, testenv.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = stale.Close() })
	srv := httptest.NewServer(stale.Handler)
	t.Cleanup(srv.Close)
	// Warm its cache: without a listener, it never reloads.
	if code, body, err := me.send(ctx, srv.URL, tn.Name, http.MethodGet, "/api/users/1", ""); err != nil || code != http.StatusOK {
		t.Fatalf("stale instance read: %d %v %s", code, err, body)
	}
	type answer struct {
		code int
		body string
		err  error
	}
	done := make(chan answer, 1)
	hctx := tenants.WithMoveHook(ctx, func(p string) error {
		if p != "fenced" {
			return nil
		}
		go func() {
			code, body, err := me.send(ctx, srv.URL, tn.Name, http.MethodPost, "/api/users", `{"name":"Stale","email":"stale@example.com"}`)
			done <- answer{code, body, err}
		}()
		// Wait until the write waits on the fence.
		testenv.Eventually(t, 10*time.Second, func() bool {
			var n int
			_ = me.raw["east"].QueryRow(`SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%mvstale%users%'`).Scan(&n)
			return n > 0
		}, "the stale write to wait on the fence")
		return nil
	})
	rep, err := me.cat.Move(hctx, tn.Name, tenants.MoveOptions{To: "west", Grace: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	a := <-done
	if a.err != nil || a.code != http.StatusServiceUnavailable || !strings.Contains(a.body, "tenant-moved") {
		t.Errorf("stale write: %d %v %s; want 503 tenant-moved (the sealed source refused it)", a.code, a.err, a.body)
	}
	me.checkAt(t, tn.Name, "west", 5)
	if got := me.users(t, "east", rep.ArchivedAs); got != 5 {
		t.Errorf("archive has %d users, want 5: the stale write landed in it", got)
	}
}
