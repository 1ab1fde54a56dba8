package admin_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"tenantry/config"
	"tenantry/internal/testenv"
	"tenantry/tenants"
)

// withPlacement adds a database called name to the service's
// configuration.
func withPlacement(name, dsn string) testenv.Option {
	return func(c *config.Config) {
		c.Databases = append(c.Databases, config.Placement{Name: name, DSN: dsn})
	}
}

// databases sends GET /admin/databases and returns the list by name,
// failing unless it is a 200 that lists want in that order.
func databases(t *testing.T, f *fixture, want ...string) map[string]tenants.DatabaseStats {
	t.Helper()
	var got struct {
		Databases []tenants.DatabaseStats `json:"databases"`
	}
	f.ok(t, request{method: "GET", path: "/admin/databases"}, http.StatusOK, &got)
	out := map[string]tenants.DatabaseStats{}
	var names []string
	for _, d := range got.Databases {
		out[d.Name] = d
		names = append(names, d.Name)
	}
	if len(names) != len(want) {
		t.Fatalf("GET /admin/databases lists %v, want %v", names, want)
	}
	for i := range want {
		if names[i] != want[i] {
			t.Fatalf("GET /admin/databases lists %v, want %v", names, want)
		}
	}
	return out
}

// tenantsOn counts the admin API's tenants by the database it shows.
func tenantsOn(t *testing.T, f *fixture) map[string]int64 {
	t.Helper()
	var list struct {
		Tenants []tenantView `json:"tenants"`
	}
	f.ok(t, request{method: "GET", path: "/admin/tenants"}, http.StatusOK, &list)
	n := map[string]int64{}
	for _, tv := range list.Tenants {
		if tv.Database == "" {
			t.Errorf("tenant %s shows no database", tv.Name)
		}
		n[tv.Database]++
	}
	return n
}

// TestDatabasesList lists the databases of a one-database service on each
// driver: the control database, named "main", with every tenant, a size
// read from the database and available.
func TestDatabasesList(t *testing.T) {
	for _, driver := range testenv.Drivers {
		t.Run(driver, func(t *testing.T) {
			t.Parallel()
			env := testenv.Start(t, driver, testenv.WithAdmin(token))
			f := &fixture{env: env, url: env.AdminURL}
			main := databases(t, f, "main")["main"]
			if !main.Control || main.Tenants != 2 || !main.Available || main.Error != "" || main.SizeBytes == nil || *main.SizeBytes <= 0 {
				t.Errorf("main = %+v, want the control database, 2 tenants, available with a size", main)
			}
			if got := tenantsOn(t, f); got["main"] != 2 {
				t.Errorf("tenants by database = %v, want both on main", got)
			}
			f.ok(t, request{method: "POST", path: "/admin/tenants", body: `{"name":"acme","hosts":["acme.test"],"database":"main"}`}, http.StatusCreated, nil)
			if got := databases(t, f, "main")["main"].Tenants; got != 3 {
				t.Errorf("after creating acme on main: %d tenants, want 3", got)
			}
			checkProblem(t, f.do(t, request{method: "POST", path: "/admin/tenants", body: `{"name":"bolt","hosts":["bolt.test"],"database":"nope"}`}),
				http.StatusUnprocessableEntity, "unknown-database", "database")
			checkProblem(t, f.do(t, request{method: "GET", path: "/admin/tenants/bolt"}), http.StatusNotFound, "tenant-not-found", "")
			checkProblem(t, f.do(t, request{method: "GET", path: "/admin/databases", auth: "none"}), http.StatusUnauthorized, "unauthorized", "")
		})
	}
}

// TestDatabasesPlacements serves from the shared server's database
// ("main") and a private cluster ("second"): tenants are placed by the
// fewest tenants or by name, the list counts them as the catalog and the
// cluster itself do, and once the cluster is stopped, or stalled, it is
// listed as unavailable while main is listed as before.
func TestDatabasesPlacements(t *testing.T) {
	cluster := testenv.StartCluster(t)
	env := testenv.Start(t, "postgres", testenv.WithAdmin(token), withPlacement("second", cluster.DSN()))
	f := &fixture{env: env, url: env.AdminURL}

	// tenant1 and tenant2 were seeded one on each (the fewest tenants,
	// main first on a tie); acme goes where it is told.
	var acme tenantView
	f.ok(t, request{method: "POST", path: "/admin/tenants", body: `{"name":"acme","hosts":["acme.test"],"database":"second"}`}, http.StatusCreated, &acme)
	if acme.Database != "second" {
		t.Errorf("acme created on %q, want second", acme.Database)
	}
	var bolt tenantView
	f.ok(t, request{method: "POST", path: "/admin/tenants", body: `{"name":"bolt","hosts":["bolt.test"]}`}, http.StatusCreated, &bolt)
	if bolt.Database != "main" {
		t.Errorf("bolt created on %q, want main (1 tenant against 2)", bolt.Database)
	}
	byAPI := tenantsOn(t, f)
	dbs := databases(t, f, "main", "second")
	for _, name := range []string{"main", "second"} {
		if d := dbs[name]; d.Tenants != 2 || d.Tenants != byAPI[name] || !d.Available || d.SizeBytes == nil || d.Control != (name == "main") {
			t.Errorf("%s = %+v, want 2 tenants (the tenants list says %d), available with a size", name, d, byAPI[name])
		}
	}
	// Straight from the cluster: acme's schema is there, bolt's is not.
	if got := schemasOn(t, cluster.DSN(), "acme", "bolt"); got != 1 {
		t.Errorf("the cluster holds %d of acme's and bolt's schemas, want acme's only", got)
	}

	for _, tc := range []struct {
		name       string
		down, back func() error
	}{
		{"stopped", cluster.Stop, cluster.Start},
		{"stalled", cluster.Pause, cluster.Resume},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.down(); err != nil {
				t.Fatal(err)
			}
			dbs := databases(t, f, "main", "second")
			if d := dbs["second"]; d.Available || d.Error == "" || d.SizeBytes != nil || d.Tenants != 2 {
				t.Errorf("second while %s = %+v, want unavailable with a reason, no size, still 2 tenants", tc.name, d)
			}
			if d := dbs["main"]; !d.Available || d.SizeBytes == nil || d.Tenants != 2 {
				t.Errorf("main while second is %s = %+v, want it listed as before", tc.name, d)
			}
			if err := tc.back(); err != nil {
				t.Fatal(err)
			}
			if err := cluster.WaitReady(30 * time.Second); err != nil {
				t.Fatal(err)
			}
			testenv.Eventually(t, 30*time.Second, func() bool { return databases(t, f, "main", "second")["second"].Available },
				"second is listed as available again")
		})
	}

	// Moves are refused before they start when they cannot be right;
	// the move itself is tenants' business (tenants/move_test.go).
	checkProblem(t, f.do(t, request{method: "POST", path: "/admin/tenants/acme/move", body: `{"to":"second"}`}), http.StatusConflict, "same-database", "")
	checkProblem(t, f.do(t, request{method: "POST", path: "/admin/tenants/bolt/move", body: `{"to":"main"}`}), http.StatusConflict, "same-database", "")
	checkProblem(t, f.do(t, request{method: "POST", path: "/admin/tenants/acme/move", body: `{"to":"third"}`}), http.StatusUnprocessableEntity, "unknown-database", "to")
}

// schemasOn counts the schemas among names that the database at dsn has.
func schemasOn(t *testing.T, dsn string, names ...string) int {
	t.Helper()
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	n := 0
	for _, name := range names {
		var found bool
		err := db.QueryRowContext(context.Background(), "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)", name).Scan(&found)
		if err != nil {
			t.Fatal(err)
		}
		if found {
			n++
		}
	}
	return n
}

// TestTenantMoveValidation sends every kind of wrong move on each
// driver; each is refused before anything moves, with the problem that
// names it, and the tenant stays where it was.
func TestTenantMoveValidation(t *testing.T) {
	for _, driver := range testenv.Drivers {
		t.Run(driver, func(t *testing.T) {
			t.Parallel()
			env := testenv.Start(t, driver, testenv.WithAdmin(token))
			f := &fixture{env: env, url: env.AdminURL}
			for _, tc := range []struct {
				name        string
				req         request
				status      int
				slug, field string
			}{
				{"malformed JSON", request{body: `{"to":`}, http.StatusBadRequest, "malformed-json", ""},
				{"no body", request{contentType: "application/json"}, http.StatusBadRequest, "malformed-json", ""},
				{"not JSON", request{body: `to=second`, contentType: "text/plain"}, http.StatusUnsupportedMediaType, "unsupported-media-type", ""},
				{"no to", request{body: `{}`}, http.StatusUnprocessableEntity, "validation", "to"},
				{"to of the wrong type", request{body: `{"to":5}`}, http.StatusUnprocessableEntity, "validation", "to"},
				{"unknown field", request{body: `{"to":"main","database":"x"}`}, http.StatusUnprocessableEntity, "validation", "database"},
				{"negative copy rate", request{body: `{"to":"main","copy_rate":-1}`}, http.StatusUnprocessableEntity, "validation", "copy_rate"},
				{"unknown database", request{body: `{"to":"nope"}`}, http.StatusUnprocessableEntity, "unknown-database", "to"},
				{"the database it is on", request{body: `{"to":"main","drop_source":true}`}, http.StatusConflict, "same-database", ""},
				{"unknown tenant", request{path: "/admin/tenants/nobody/move", body: `{"to":"main"}`}, http.StatusNotFound, "tenant-not-found", ""},
				{"no token", request{body: `{"to":"main"}`, auth: "none"}, http.StatusUnauthorized, "unauthorized", ""},
				{"GET", request{method: "GET"}, http.StatusMethodNotAllowed, "method-not-allowed", ""},
			} {
				t.Run(tc.name, func(t *testing.T) {
					r := tc.req
					if r.method == "" {
						r.method = "POST"
					}
					if r.path == "" {
						r.path = "/admin/tenants/tenant1/move"
					}
					checkProblem(t, f.do(t, r), tc.status, tc.slug, tc.field)
				})
			}
			var tv tenantView
			f.ok(t, request{method: "GET", path: "/admin/tenants/tenant1"}, http.StatusOK, &tv)
			if tv.Database != "main" {
				t.Errorf("tenant1 is on %q after refused moves, want main", tv.Database)
			}
		})
	}
}

// TestDatabaseStatsJSON pins the names of the list's fields, which the
// CLI's --json and openapi-admin.yaml share.
func TestDatabaseStatsJSON(t *testing.T) {
	size := int64(8192)
	for _, tc := range []struct {
		in   tenants.DatabaseStats
		want string
	}{
		{tenants.DatabaseStats{Name: "main", Control: true, Tenants: 2, SizeBytes: &size, Available: true},
			`{"name":"main","control":true,"tenants":2,"size_bytes":8192,"available":true}`},
		{tenants.DatabaseStats{Name: "second", Tenants: 1, Error: "did not answer within 2s"},
			`{"name":"second","control":false,"tenants":1,"size_bytes":null,"available":false,"error":"did not answer within 2s"}`},
	} {
		b, err := json.Marshal(tc.in)
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != tc.want {
			t.Errorf("json = %s, want %s", b, tc.want)
		}
	}
}
