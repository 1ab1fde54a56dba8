package app_test

import (
	"database/sql"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"tenantry/app"
	"tenantry/internal/testenv"
)

// TestMoveKilled kills the process running a move (kill -9), once while
// it copies and once while the tenant's writes are paused, and checks
// what the move promises: the tenant stays served from its source with
// nothing lost, another running instance ends the pause within seconds
// and drops the half-made copy, and the move, sent again, completes.
func TestMoveKilled(t *testing.T) {
	bin := testenv.Binary(t)
	target := testenv.StartCluster(t)
	db := testenv.Postgres(t)
	config := filepath.Join(t.TempDir(), "config.yaml")
	yaml := "tenancy:\n  refresh_interval: 30s\n" +
		"tenants:\n  - {name: seed, schema: seed, hosts: [\"seed.test\"]}\n" +
		"databases:\n  - {name: b, dsn: \"" + target.DSN() + "\"}\n"
	if err := os.WriteFile(config, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	c := &cluster{bin: bin, config: config, dbArgs: []string{"--db-driver", "postgres", "--db-dsn", db.DSN}}
	control, err := sql.Open("pgx", db.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer control.Close()
	onTarget, err := sql.Open("pgx", target.DSN())
	if err != nil {
		t.Fatal(err)
	}
	defer onTarget.Close()
	query := func(conn *sql.DB, q string, args ...any) (out string) {
		t.Helper()
		if err := conn.QueryRow(q, args...).Scan(&out); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		return out
	}

	// Enough rows that the copy, at the default copy rate, takes seconds.
	const users = 60000
	survivor := c.start(t, "survivor", "token-of-the-survivor-0123")
	for _, phase := range []string{"copy", "pause"} {
		t.Run("killed during the "+phase, func(t *testing.T) {
			name := "big" + phase
			host := name + ".test"
			c.cli(t, "tenants", "add", "--name", name, "--host", host, "--database", "main")
			if _, err := control.Exec(`INSERT INTO `+name+`.users (name, email, created_at, updated_at)
				SELECT 'u', 'u' || i || '@example.com', now(), now() FROM generate_series(1, $1) i`, users); err != nil {
				t.Fatal(err)
			}
			mover := c.start(t, "mover-"+phase, "token-of-the-mover-0123456")
			go func() {
				// Its answer never comes: the process dies first.
				req, _ := http.NewRequest("POST", "http://"+mover.admin+"/admin/tenants/"+name+"/move", strings.NewReader(`{"to":"b"}`))
				req.Header.Set("Authorization", "Bearer "+mover.token)
				req.Header.Set("Content-Type", "application/json")
				if resp, err := http.DefaultClient.Do(req); err == nil {
					resp.Body.Close()
				}
			}()
			state := func() string {
				return query(control, `SELECT moving_to || '/' || writes_paused::text FROM tenants WHERE name = $1`, name)
			}
			want := "b/false"
			if phase == "pause" {
				want = "b/true"
			}
			testenv.Eventually(t, 60*time.Second, func() bool { return state() == want }, "the move reaches its "+phase)
			mover.kill(t)
			if got := state(); got != want {
				t.Fatalf("catalog after the kill: %s, want the move left as it was (%s)", got, want)
			}

			// Another instance, running all along, finishes the dead move
			// within a few rounds of its recovery loop.
			took := testenv.Eventually(t, 3*app.RecoverMovesEvery, func() bool { return state() == "/false" },
				"the surviving instance ends the dead move")
			t.Logf("dead move (killed in the %s) undone by the surviving instance %v after the kill", phase, took)
			if n := query(onTarget, `SELECT count(*)::text FROM pg_namespace WHERE nspname = $1`, name); n != "0" {
				t.Errorf("the half-made copy is still on the target")
			}
			if got := query(control, `SELECT count(*)::text FROM `+name+`.users`); got != fmt.Sprint(users) {
				t.Errorf("source holds %s users after the kill, want %d", got, users)
			}
			if s := status(t, survivor.addr, host); s != http.StatusOK {
				t.Errorf("tenant served %d after the dead move was undone, want 200", s)
			}
			write(t, survivor.addr, host, "after-kill@example.com")

			survivor.adminCall(t, "POST", "/admin/tenants/"+name+"/move", `{"to":"b"}`, 200)
			if got := query(onTarget, `SELECT count(*)::text FROM `+name+`.users`); got != fmt.Sprint(users+1) {
				t.Errorf("target holds %s users after the move sent again, want %d", got, users+1)
			}
			if got := query(control, `SELECT database FROM tenants WHERE name = $1`, name); got != "b" {
				t.Errorf("tenant on %q after the move sent again, want b", got)
			}
		})
	}
}

// write creates a user through the tenant listener at addr and fails
// unless it is acknowledged.
func write(t *testing.T, addr, host, email string) {
	t.Helper()
	req, err := http.NewRequest("POST", "http://"+addr+"/api/users", strings.NewReader(`{"name":"w","email":"`+email+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST on %s: %d, want 201", host, resp.StatusCode)
	}
}
