package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"tenantry/admin"
	"tenantry/internal/testenv"
	"tenantry/tenants"
)

// TestTenantsLimits drives `tenantry tenants limits` on each database:
// showing, setting some flags while the others keep their value, 0 going
// back to the default, refusing bad values and unknown tenants, and
// leaving other tenants alone.
func TestTenantsLimits(t *testing.T) {
	for _, driver := range testenv.Drivers {
		t.Run(driver, func(t *testing.T) {
			t.Parallel()
			dbc := testenv.Database(t, driver)
			mustCLI(t, dbc, "tenants", "add", "--name", "acme", "--host", "acme.test")
			mustCLI(t, dbc, "tenants", "add", "--name", "bolt", "--host", "bolt.test")
			// The pool of 16 the test databases have: half of it per tenant.
			for _, step := range []struct {
				args []string
				want string
			}{
				{nil, `^acme\s+unlimited \(default\)\s+-\s+8 \(default\)$`},
				{[]string{"--rate", "2.5", "--concurrency", "3"}, `^acme\s+2\.5 \(own\)\s+3 \(default\)\s+3 \(own\)$`},
				{[]string{"--burst", "10"}, `^acme\s+2\.5 \(own\)\s+10 \(own\)\s+3 \(own\)$`},
				{[]string{"--rate", "0"}, `^acme\s+unlimited \(default\)\s+-\s+3 \(own\)$`},
				{[]string{"--concurrency", "0", "--burst", "0"}, `^acme\s+unlimited \(default\)\s+-\s+8 \(default\)$`},
			} {
				out := mustCLI(t, dbc, append([]string{"tenants", "limits", "acme"}, step.args...)...)
				lines := strings.Split(strings.TrimSpace(out), "\n")
				if len(lines) != 2 || !strings.HasPrefix(lines[0], "NAME") || !regexp.MustCompile(step.want).MatchString(lines[1]) {
					t.Errorf("tenants limits acme %s:\n%s\nwant a header and a line matching %s", strings.Join(step.args, " "), out, step.want)
				}
			}
			mustCLI(t, dbc, "tenants", "limits", "acme", "--rate", "1")
			for _, bad := range []struct {
				args []string
				want string
			}{
				{[]string{"acme", "--rate", "-1"}, "must be 0 (the configured default)"},
				{[]string{"acme", "--concurrency", "1000000"}, "up to 100000"},
				{[]string{"acme", "--rate", "NaN"}, "must be 0 (the configured default)"},
				{[]string{"acme", "--burst", "many"}, "invalid argument"},
				{[]string{}, "accepts 1 arg"},
			} {
				_, _, err := cli(t, dbc, append([]string{"tenants", "limits"}, bad.args...)...)
				if err == nil || !strings.Contains(strings.ToLower(err.Error()), strings.ToLower(bad.want)) {
					t.Errorf("tenants limits %s: err = %v, want one containing %q", strings.Join(bad.args, " "), err, bad.want)
				}
			}
			if _, _, err := cli(t, dbc, "tenants", "limits", "nobody", "--rate", "1"); !errors.Is(err, tenants.ErrNotFound) {
				t.Errorf("tenants limits nobody: err = %v, want ErrNotFound", err)
			}
			if out := mustCLI(t, dbc, "tenants", "limits", "acme"); !strings.Contains(out, "1 (own)") {
				t.Errorf("a refused change was stored:\n%s", out)
			}
			if out := mustCLI(t, dbc, "tenants", "limits", "bolt"); !regexp.MustCompile(`(?m)^bolt\s+unlimited \(default\)\s+-\s+8 \(default\)$`).MatchString(out) {
				t.Errorf("bolt's limits changed with acme's:\n%s", out)
			}
		})
	}
}

// TestTenantsStats drives `tenantry tenants stats` against a running
// instance on each database: the table and the JSON show the instance's
// request figures for the named tenant only and its rows from the
// database; with no instance to ask, or a wrong token, the command says
// why, prints the rows all the same and exits 3; an unknown tenant is an
// error either way.
func TestTenantsStats(t *testing.T) {
	const token = "cli-stats-token-0123456789"
	for _, driver := range testenv.Drivers {
		t.Run(driver, func(t *testing.T) {
			t.Parallel()
			env := testenv.Start(t, driver, testenv.WithAdmin(token))
			dbc := env.App.Config.Database
			// tenant1: 2 users created and 4 reads, one of them a 404.
			for i, r := range []struct{ method, path, body string }{
				{"POST", "/api/users", `{"name":"A","email":"cli-a@example.com"}`},
				{"POST", "/api/users", `{"name":"B","email":"cli-b@example.com"}`},
				{"GET", "/api/users", ""},
				{"GET", "/api/users", ""},
				{"GET", "/api/tenant", ""},
				{"GET", "/api/users/999999", ""},
			} {
				req, err := http.NewRequest(r.method, env.URL1+r.path, strings.NewReader(r.body))
				if err != nil {
					t.Fatal(err)
				}
				req.Header.Set("Content-Type", "application/json")
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatalf("request %d: %v", i, err)
				}
				_ = resp.Body.Close()
			}
			online := []string{"--admin-url", env.AdminURL, "--token", token}

			// Each request is counted once answered: poll until all six are.
			var st admin.TenantStats
			testenv.Eventually(t, 10*time.Second, func() bool {
				out := mustCLI(t, dbc, append([]string{"tenants", "stats", "tenant1", "--json"}, online...)...)
				if err := json.Unmarshal([]byte(out), &st); err != nil {
					t.Fatalf("--json: %v\n%s", err, out)
				}
				return len(st.Requests) == 3 && st.Requests[0].Requests == 6
			}, "the CLI shows tenant1's 6 requests")
			if w := st.Requests[2]; w.Minutes != 15 || w.Requests != 6 || w.ClientErrors != 1 || w.Errors != 0 {
				t.Errorf("15-minute window %+v, want 6 requests with 1 client error", w)
			}
			if got := usersRows(st.Storage); got != 2 {
				t.Errorf("tenant1 users rows = %d, want 2", got)
			}

			out := mustCLI(t, dbc, append([]string{"tenants", "stats", "tenant1"}, online...)...)
			for _, want := range []string{
				`(?m)^tenant tenant1$`,
				`(?m)^WINDOW\s+FROM\s+REQUESTS\s+REQ/S\s+ERRORS\s+CLIENT ERRORS\s+P50 MS\s+P99 MS$`,
				`(?m)^1m\s+\S+\s+6\s+[0-9.]+\s+0\s+1\s+[0-9.]+\s+[0-9.]+$`,
				`(?m)^15m\s+\S+\s+6\s+`,
				`(?m)^users\s+2\s+\S+$`,
				`(?m)^total\s+\d+\s+\S+$`,
			} {
				if !regexp.MustCompile(want).MatchString(out) {
					t.Errorf("tenants stats tenant1: no line matching %s in\n%s", want, out)
				}
			}
			// tenant2 had none of tenant1's requests or rows.
			out = mustCLI(t, dbc, append([]string{"tenants", "stats", "tenant2", "--json"}, online...)...)
			var other admin.TenantStats
			if err := json.Unmarshal([]byte(out), &other); err != nil {
				t.Fatal(err)
			}
			if len(other.Requests) != 3 || other.Requests[2].Requests != 0 || usersRows(other.Storage) != 0 {
				t.Errorf("tenant2 shows tenant1's figures: %s", out)
			}

			// No instance to ask, or one that refuses the token: the rows
			// are read from the database, and the exit status says so.
			for _, tc := range []struct {
				name string
				args []string
				why  string
			}{
				{"no admin.listen", nil, "admin.listen is not set"},
				{"nothing listening", []string{"--admin-url", "http://" + testenv.FreeAddr(t)}, "no tenantry instance answered at"},
				{"wrong token", []string{"--admin-url", env.AdminURL, "--token", "wrong"}, "refused the admin token (401)"},
			} {
				for _, asJSON := range []bool{false, true} {
					args := append([]string{"tenants", "stats", "tenant1"}, tc.args...)
					if asJSON {
						args = append(args, "--json")
					}
					out, _, err := cli(t, dbc, args...)
					if exitCode(err) != exitStorageOnly || err == nil || !strings.Contains(err.Error(), tc.why) ||
						!strings.Contains(err.Error(), "only rows and bytes") {
						t.Errorf("%s (json %v): exit %d, err %v; want %d and a message saying %q", tc.name, asJSON, exitCode(err), err, exitStorageOnly, tc.why)
					}
					if asJSON {
						var got admin.TenantStats
						if err := json.Unmarshal([]byte(out), &got); err != nil || got.Requests != nil || usersRows(got.Storage) != 2 ||
							!strings.Contains(out, `"requests": null`) {
							t.Errorf("%s --json: %v\n%s\nwant null requests and tenant1's 2 users", tc.name, err, out)
						}
					} else if !strings.Contains(out, "requests: not available (only a serving instance has them)") || !regexp.MustCompile(`(?m)^users\s+2\s`).MatchString(out) {
						t.Errorf("%s: the rows are not shown without the requests:\n%s", tc.name, out)
					}
				}
			}

			// An unknown tenant is an error, with or without an instance.
			for _, args := range [][]string{online, nil} {
				_, _, err := cli(t, dbc, append([]string{"tenants", "stats", "nobody"}, args...)...)
				if !errors.Is(err, tenants.ErrNotFound) || exitCode(err) != 1 {
					t.Errorf("tenants stats nobody %v: err %v (exit %d), want ErrNotFound and exit 1", args, err, exitCode(err))
				}
			}
		})
	}
}

// usersRows is the users table's row count in st, or -1 without one.
func usersRows(st *tenants.Storage) int64 {
	if st == nil {
		return -1
	}
	for _, ts := range st.Tables {
		if ts.Table == "users" {
			return ts.Rows
		}
	}
	return -1
}

// TestDatabasesCLI drives `tenantry databases list` and the --database
// and move commands on each database, with one database configured and,
// on PostgreSQL, two: the list counts each database's tenants as the
// catalog places them, `tenants add --database` puts a tenant where it
// is told and refuses an unknown name, `tenants list` shows the
// DATABASE column, and wrong moves are refused before anything moves.
func TestDatabasesCLI(t *testing.T) {
	for _, driver := range testenv.Drivers {
		t.Run(driver, func(t *testing.T) {
			t.Parallel()
			dbc := testenv.Database(t, driver)
			var extra []string // a config naming a second database, on PostgreSQL
			if driver == "postgres" {
				cfg := filepath.Join(t.TempDir(), "two.yaml")
				body := fmt.Sprintf("tenants: []\nadmin:\n  listen: \"\"\ndatabases:\n  - name: second\n    dsn: %q\n", testenv.Postgres(t).DSN)
				if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
					t.Fatal(err)
				}
				extra = []string{"--config", cfg}
			}
			run := func(args ...string) (string, error) {
				out, _, err := cli(t, dbc, append(args, extra...)...)
				return out, err
			}
			must := func(args ...string) string {
				t.Helper()
				out, err := run(args...)
				if err != nil {
					t.Fatalf("tenantry %s: %v\n%s", strings.Join(args, " "), err, out)
				}
				return out
			}
			must("tenants", "add", "--name", "acme", "--host", "acme.test", "--database", "main")
			must("tenants", "create", "--name", "bolt", "--host", "bolt.test")
			if _, err := run("tenants", "add", "--name", "cargo", "--host", "cargo.test", "--database", "nope"); !errors.Is(err, tenants.ErrUnknownDatabase) {
				t.Errorf("tenants add --database nope: err = %v, want ErrUnknownDatabase", err)
			}

			// bolt went to the database with the fewest tenants: second
			// when there is one.
			boltOn := "main"
			want := map[string]int64{"main": 2}
			if driver == "postgres" {
				boltOn, want = "second", map[string]int64{"main": 1, "second": 1}
			}
			list := must("tenants", "list")
			for _, re := range []string{`(?m)^NAME\s+SCHEMA\s+STATUS\s+DATABASE\s+VERSION\s+HOSTS$`, `(?m)^acme\s+acme\s+active\s+main\s+`, `(?m)^bolt\s+bolt\s+active\s+` + boltOn + `\s+`} {
				if !regexp.MustCompile(re).MatchString(list) {
					t.Errorf("tenants list: no line matching %s in\n%s", re, list)
				}
			}
			var rows []struct{ Name, Database string }
			if err := json.Unmarshal([]byte(must("tenants", "list", "--json")), &rows); err != nil || len(rows) != 2 || rows[1].Database != boltOn {
				t.Errorf("tenants list --json: %+v (%v), want bolt on %s", rows, err, boltOn)
			}

			var got struct{ Databases []tenants.DatabaseStats }
			if err := json.Unmarshal([]byte(must("databases", "list", "--json")), &got); err != nil {
				t.Fatal(err)
			}
			if len(got.Databases) != len(want) || got.Databases[0].Name != "main" || !got.Databases[0].Control {
				t.Fatalf("databases list --json = %+v, want main (control) first, %d in all", got.Databases, len(want))
			}
			for _, d := range got.Databases {
				if d.Tenants != want[d.Name] || !d.Available || d.SizeBytes == nil {
					t.Errorf("%s = %+v, want %d tenants, available, with a size", d.Name, d, want[d.Name])
				}
			}
			table := must("databases", "list")
			for _, re := range []string{`(?m)^NAME\s+TENANTS\s+SIZE\s+STATUS$`, `(?m)^main \(control\)\s+\d+\s+[0-9.]+ [KMG]iB\s+available$`} {
				if !regexp.MustCompile(re).MatchString(table) {
					t.Errorf("databases list: no line matching %s in\n%s", re, table)
				}
			}

			for _, tc := range []struct {
				args []string
				want error
			}{
				{[]string{"acme", "--to", "main"}, tenants.ErrAlreadyOnDatabase},
				{[]string{"acme", "--to", "nope"}, tenants.ErrUnknownDatabase},
				{[]string{"nobody", "--to", "main"}, tenants.ErrNotFound},
			} {
				if _, err := run(append([]string{"tenants", "move"}, tc.args...)...); !errors.Is(err, tc.want) {
					t.Errorf("tenants move %s: err = %v, want %v", strings.Join(tc.args, " "), err, tc.want)
				}
			}
			if _, err := run("tenants", "move", "acme"); err == nil || !strings.Contains(err.Error(), `"to" not set`) {
				t.Errorf("tenants move without --to: err = %v, want the flag required", err)
			}
		})
	}
}

// TestHumanBytes pins the sizes `databases list` prints.
func TestHumanBytes(t *testing.T) {
	for _, tc := range []struct {
		n    int64
		want string
	}{{0, "0 B"}, {1023, "1023 B"}, {1024, "1.0 KiB"}, {8134271, "7.8 MiB"}, {3 << 30, "3.0 GiB"}} {
		if got := humanBytes(tc.n); got != tc.want {
			t.Errorf("humanBytes(%d) = %q, want %q", tc.n, got, tc.want)
		}
	}
}
