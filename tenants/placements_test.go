package tenants_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"

	"tenantry/config"
	"tenantry/internal/testenv"
	"tenantry/migrations"
	"tenantry/tenants"
)

// TestPlacementsAcrossServers spreads tenants over three PostgreSQL
// servers (the shared one holding the catalog, two private clusters) and
// checks what placements promise: new tenants are balanced, each schema
// lives on exactly its tenant's server, no request or row crosses tenants
// whatever server they are on, a server that is down fails only its own
// tenants, and a tenant placed on a database this process does not know
// is refused rather than served from another one.
func TestPlacementsAcrossServers(t *testing.T) {
	b, c := testenv.StartCluster(t), testenv.StartCluster(t)
	env := testenv.Start(t, "postgres", func(cfg *config.Config) {
		cfg.Databases = []config.Placement{{Name: "b", DSN: b.DSN()}, {Name: "c", DSN: c.DSN()}}
		cfg.Server.RequestTimeout, cfg.Server.WriteTimeout = 5*time.Second, 10*time.Second
	})
	ctx := t.Context()
	port := testenv.Port(env.Addr1)
	servers := map[string]*sql.DB{
		"main": openRaw(t, env.App.Config.Database.DSN),
		"b":    openRaw(t, b.DSN()),
		"c":    openRaw(t, c.DSN()),
	}
	// Opened for the whole test, not the subtest that restarts c.
	reopenC := func() *sql.DB { return openRaw(t, c.DSN()) }

	const tenantsN = 30
	names := make([]string, tenantsN)
	for i := range names {
		names[i] = fmt.Sprintf("pl%02d", i)
		if _, err := env.App.Catalog.Create(ctx, tenants.Spec{Name: names[i], Hosts: []string{names[i] + ".test:" + port}}); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("balanced and placed on exactly one server", func(t *testing.T) {
		all, err := env.App.Catalog.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		count := map[string]int{}
		for _, tn := range all {
			db := env.App.Catalog.DatabaseName(&tn)
			count[db]++
			for server, conn := range servers {
				has := hasSchema(t, conn, tn.Schema)
				if has != (server == db) {
					t.Errorf("tenant %s placed on %s: schema on %s is %v", tn.Name, db, server, has)
				}
			}
		}
		lo, hi := tenantsN, 0
		for _, db := range []string{"main", "b", "c"} {
			lo, hi = min(lo, count[db]), max(hi, count[db])
		}
		if hi-lo > 1 {
			t.Errorf("tenants per database %v: want them balanced within one", count)
		}
	})

	t.Run("named placement and unknown database", func(t *testing.T) {
		tn, err := env.App.Catalog.Create(ctx, tenants.Spec{Name: "onc", Database: "c", Hosts: []string{"onc.test:" + port}})
		if err != nil {
			t.Fatal(err)
		}
		if tn.Database != "c" || !hasSchema(t, servers["c"], "onc") {
			t.Errorf("tenant created with database c: placed on %q", tn.Database)
		}
		_, err = env.App.Catalog.Create(ctx, tenants.Spec{Name: "nowhere", Database: "zz"})
		if !errors.Is(err, tenants.ErrUnknownDatabase) {
			t.Errorf("create on an unknown database: %v, want ErrUnknownDatabase", err)
		}
		if _, err := env.App.Catalog.Get(ctx, "nowhere"); !errors.Is(err, tenants.ErrNotFound) {
			t.Errorf("a refused creation left a tenant: %v", err)
		}
	})

	t.Run("isolation across servers", func(t *testing.T) {
		const writes = 5
		client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 32}}
		var wg sync.WaitGroup
		errs := make(chan error, tenantsN*writes*2)
		for _, name := range names {
			wg.Go(func() {
				for i := range writes {
					body, _ := json.Marshal(map[string]string{"name": name, "email": fmt.Sprintf("%s-%d@example.com", name, i)})
					status, _, err := call(ctx, client, env.URL1, name+".test:"+port, "POST", body)
					if err != nil || status != http.StatusCreated {
						errs <- fmt.Errorf("%s: POST: %d %v", name, status, err)
					}
					status, page, err := call(ctx, client, env.URL1, name+".test:"+port, "GET", nil)
					if err != nil || status != http.StatusOK {
						errs <- fmt.Errorf("%s: GET: %d %v", name, status, err)
						continue
					}
					for _, u := range page.Users {
						if u.Name != name {
							errs <- fmt.Errorf("tenant %s was shown %s's user %s", name, u.Name, u.Email)
						}
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		for _, name := range names {
			tn, err := env.App.Catalog.Get(ctx, name)
			if err != nil {
				t.Fatal(err)
			}
			conn := servers[env.App.Catalog.DatabaseName(tn)]
			var total, foreign int64
			table := migrations.Quote(name + ".users")
			if err := conn.QueryRowContext(ctx, "SELECT count(*), count(*) FILTER (WHERE name <> $1) FROM "+table, name).Scan(&total, &foreign); err != nil {
				t.Fatal(err)
			}
			if total != writes || foreign != 0 {
				t.Errorf("%s: %d rows (want %d), %d foreign (want 0)", name, total, writes, foreign)
			}
		}
	})

	t.Run("a server down fails only its own tenants", func(t *testing.T) {
		if err := c.Stop(); err != nil {
			t.Fatal(err)
		}
		client := &http.Client{Timeout: 15 * time.Second}
		for _, name := range names {
			tn, err := env.App.Catalog.Get(ctx, name)
			if err != nil {
				t.Fatal(err)
			}
			status, _, err := call(ctx, client, env.URL1, name+".test:"+port, "GET", nil)
			if err != nil {
				t.Fatal(err)
			}
			want := http.StatusOK
			if tn.Database == "c" {
				want = http.StatusServiceUnavailable
			}
			if status != want {
				t.Errorf("%s on %s with c down: %d, want %d", name, env.App.Catalog.DatabaseName(tn), status, want)
			}
		}
		resp, err := client.Get(env.URL1 + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("/readyz with one placement down: %d, want 200 (the catalog's database answers)", resp.StatusCode)
		}
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		// The test's own connections to c died with it.
		servers["c"] = reopenC()
		testenv.Eventually(t, 20*time.Second, func() bool {
			for _, name := range names {
				status, _, err := call(ctx, client, env.URL1, name+".test:"+port, "GET", nil)
				if err != nil || status != http.StatusOK {
					return false
				}
			}
			return true
		}, "tenants on c served again after it restarted")
	})

	t.Run("removal on another server", func(t *testing.T) {
		tn, err := env.App.Catalog.Get(ctx, "onc")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := env.App.Catalog.Remove(ctx, tn.Name, true); err != nil {
			t.Fatal(err)
		}
		if hasSchema(t, servers["c"], "onc") {
			t.Error("schema onc still on c after its tenant was removed with its data")
		}
		if _, err := env.App.Catalog.Get(ctx, "onc"); !errors.Is(err, tenants.ErrNotFound) {
			t.Errorf("removed tenant still in the catalog: %v", err)
		}
	})

	t.Run("an unknown placement is refused, never served from elsewhere", func(t *testing.T) {
		// A schema of the tenant's name on the control database, holding
		// a decoy row: a fall-back to the control database would show it.
		victim := names[0]
		tn, err := env.App.Catalog.Get(ctx, victim)
		if err != nil {
			t.Fatal(err)
		}
		if tn.Database == "" {
			victim = ""
			for _, name := range names {
				if tn, err = env.App.Catalog.Get(ctx, name); err == nil && tn.Database != "" {
					victim = name
					break
				}
			}
		}
		main := servers["main"]
		if _, err := main.ExecContext(ctx, "CREATE SCHEMA IF NOT EXISTS "+migrations.Quote(victim)); err != nil {
			t.Fatal(err)
		}
		if _, err := main.ExecContext(ctx, "CREATE TABLE IF NOT EXISTS "+migrations.Quote(victim)+".users (LIKE tenant1.users INCLUDING ALL)"); err != nil {
			t.Fatal(err)
		}
		if _, err := main.ExecContext(ctx, "INSERT INTO "+migrations.Quote(victim)+".users (name, email, created_at, updated_at) VALUES ('decoy', 'decoy@example.com', now(), now())"); err != nil {
			t.Fatal(err)
		}
		if _, err := main.ExecContext(ctx, "UPDATE tenants SET database = 'ghost' WHERE name = $1", victim); err != nil {
			t.Fatal(err)
		}
		env.App.Resolver.Invalidate()
		client := &http.Client{Timeout: 15 * time.Second}
		status, page, err := call(ctx, client, env.URL1, victim+".test:"+port, "GET", nil)
		if err != nil {
			t.Fatal(err)
		}
		if status != http.StatusServiceUnavailable {
			t.Errorf("tenant on an unknown database: %d, want 503", status)
		}
		for _, u := range page.Users {
			t.Errorf("tenant on an unknown database was served user %s from another database", u.Name)
		}
	})
}

type usersPage struct {
	Users []struct{ Name, Email string } `json:"users"`
}

// call sends method to base+/api/users with Host host and returns the
// status and, for a 200, the page.
func call(ctx context.Context, client *http.Client, base, host, method string, body []byte) (int, usersPage, error) {
	var page usersPage
	req, err := http.NewRequestWithContext(ctx, method, base+"/api/users?limit=500", bytes.NewReader(body))
	if err != nil {
		return 0, page, err
	}
	req.Host = host
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return 0, page, err
	}
	defer resp.Body.Close()
	if method == "GET" && resp.StatusCode == http.StatusOK {
		err = json.NewDecoder(resp.Body).Decode(&page)
	}
	return resp.StatusCode, page, err
}

func openRaw(t *testing.T, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func hasSchema(t *testing.T, db *sql.DB, schema string) bool {
	t.Helper()
	var n int
	if err := db.QueryRow("SELECT count(*) FROM pg_namespace WHERE nspname = $1", schema).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n == 1
}
