package contract

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver to lock the catalog from outside the service

	"tenantry/admin"
	"tenantry/config"
	"tenantry/database"
	"tenantry/internal/testenv"
)

// adminToken is the admin token of the services these tests start.
const adminToken = "contract-admin-token"

// loadAdminOpenAPI loads openapi-admin.yaml, the admin API's document that
// main embeds, and fails t unless it is a valid OpenAPI 3.1 document whose
// examples match their schemas.
func loadAdminOpenAPI(t *testing.T) *openapi3.T {
	t.Helper()
	return loadDocument(t, "openapi-admin.yaml", testenv.AdminOpenAPI(t))
}

// newAdminChecker returns a checker for openapi-admin.yaml whose security
// check accepts exactly the bearer token adminToken, as the server does.
func newAdminChecker(t *testing.T, doc *openapi3.T) *checker {
	t.Helper()
	c := newChecker(t, doc)
	c.name = "openapi-admin.yaml"
	c.auth = func(_ context.Context, in *openapi3filter.AuthenticationInput) error {
		scheme, token, _ := strings.Cut(in.RequestValidationInput.Request.Header.Get("Authorization"), " ")
		if !strings.EqualFold(scheme, "Bearer") || token != adminToken {
			return errors.New("no bearer token, or a wrong one")
		}
		return nil
	}
	return c
}

// TestAdminOpenAPIDocument checks what a reader of the admin document
// relies on beyond its validity: every operation is named, tagged and
// exemplified, needs the bearer token, and documents the 401 it gets
// without it.
func TestAdminOpenAPIDocument(t *testing.T) {
	doc := loadAdminOpenAPI(t)
	checkDocument(t, doc)
	scheme := doc.Components.SecuritySchemes["adminToken"]
	if scheme == nil || scheme.Value.Type != "http" || scheme.Value.Scheme != "bearer" {
		t.Fatalf("openapi-admin.yaml: want an http bearer security scheme named adminToken")
	}
	if len(doc.Security) != 1 || doc.Security[0]["adminToken"] == nil {
		t.Errorf("openapi-admin.yaml: security = %v, want adminToken for every operation", doc.Security)
	}
	for _, o := range operations(doc) {
		if o.op.Security != nil {
			t.Errorf("%s: overrides the document's security; every admin route needs the token", o)
		}
		if o.op.Responses.Status(http.StatusUnauthorized) == nil {
			t.Errorf("%s: does not document 401", o)
		}
	}
}

// TestAdminServerMatchesOpenAPI runs the service with its admin listener
// and sends requests that cause every documented status of every admin
// operation, checking each response (status, headers and body) against
// openapi-admin.yaml, each request that succeeds against the document's
// request schemas and each one refused for its credentials, query, media
// type or body against the document, which must refuse it too. It fails on
// a response the document does not describe, on a documented status that
// no request caused, and on an admin route missing from the document or an
// operation missing from the admin router.
func TestAdminServerMatchesOpenAPI(t *testing.T) {
	doc := loadAdminOpenAPI(t)
	srv, err := admin.NewServer(admin.Deps{Log: testenv.Logger(t), Token: adminToken, OpenAPI: testenv.AdminOpenAPI(t)})
	if err != nil {
		t.Fatal(err)
	}
	compareRoutes(t, doc, "openapi-admin.yaml", srv.Routes())

	for _, driver := range testenv.Drivers {
		t.Run(driver, func(t *testing.T) {
			t.Parallel()
			c := newAdminChecker(t, loadAdminOpenAPI(t))
			opts := []testenv.Option{testenv.WithAdmin(adminToken)}
			if driver == "postgres" {
				// A second database on the same server, for a move.
				second := testenv.Postgres(t).DSN
				opts = append(opts, func(c *config.Config) {
					c.Databases = append(c.Databases, config.Placement{Name: "second", DSN: second})
				})
			}
			env := testenv.Start(t, driver, opts...)
			exerciseAdmin(t, c, env, driver)
			excused := map[string]string{"moveTenant 503": "a move that fails part-way needs a database stopped under it: tenants/move_test.go"}
			if driver == "sqlite" {
				excused["startMigration 409"] = "holding a run in progress needs a lock from outside, done on PostgreSQL"
				excused["deleteTenant 503"] = "blocking a removal needs a lock from outside, done on PostgreSQL"
				excused["moveTenant 200"] = "a move needs PostgreSQL and a second database, done on PostgreSQL"
			}
			c.checkEveryStatusSeen(t, excused)
		})
	}
}

// adminExchange sends x to the admin API with the right token unless x.auth
// says otherwise ("none" sends no Authorization header).
func adminExchange(t *testing.T, c *checker, x exchange) []byte {
	t.Helper()
	switch x.auth {
	case "":
		x.auth = "Bearer " + adminToken
	case "none":
		x.auth = ""
	}
	return c.do(t, x)
}

// exerciseAdmin causes every documented answer of the admin API: the
// tenant lifecycle, every way to get a request wrong, a migration run held
// in progress (PostgreSQL), and finally the 500s, by closing the database.
// It leaves the service without a database: it must run last.
func exerciseAdmin(t *testing.T, c *checker, env *testenv.Env, driver string) {
	a := env.AdminURL
	if a == "" {
		t.Fatal("testenv.Start with WithAdmin: no admin listener")
	}
	p1, p2 := testenv.Port(env.Addr1), testenv.Port(env.Addr2)
	const (
		js    = "application/json"
		merge = "application/merge-patch+json"
	)
	do := func(x exchange) []byte {
		t.Helper()
		x.url = a + x.url
		return adminExchange(t, c, x)
	}
	big := `{"name":"` + strings.Repeat("a", admin.DefaultMaxBody) + `"}`

	// Nothing without the token, on every operation. The wrong tokens are
	// fewer than admin.FailedAuthBurst, so none is throttled, though all
	// loopback addresses share one budget.
	for i, o := range operations(c.doc) {
		path := strings.NewReplacer("{name}", "tenant1", "{host}", "localhost:"+p1).Replace(o.path)
		for _, auth := range []string{"none", "Bearer wrong-token", "Basic " + adminToken} {
			do(exchange{method: o.method, url: path, auth: auth, from: fmt.Sprintf("127.0.1.%d", i+1), want: http.StatusUnauthorized})
		}
	}

	if got := do(exchange{method: "GET", url: "/admin/openapi.yaml", want: 200}); !bytes.Equal(got, testenv.AdminOpenAPI(t)) {
		t.Errorf("GET /admin/openapi.yaml does not serve openapi-admin.yaml byte for byte")
	}
	do(exchange{method: "GET", url: "/admin/migrate", want: 200})
	do(exchange{method: "GET", url: "/admin/tenants", want: 200})
	do(exchange{method: "GET", url: "/admin/databases", want: 200})

	// The lifecycle of two tenants.
	do(exchange{method: "POST", url: "/admin/tenants", contentType: js,
		body: `{"name":"acme","hosts":["ACME.test.","acme.test:` + p1 + `"]}`, want: 201})
	do(exchange{method: "POST", url: "/admin/tenants", contentType: js,
		body: `{"name":"beta-corp","schema":"beta","hosts":["beta.test"]}`, want: 201})
	do(exchange{method: "GET", url: "/admin/tenants", want: 200})
	do(exchange{method: "GET", url: "/admin/tenants/acme", want: 200})
	do(exchange{method: "PATCH", url: "/admin/tenants/acme", contentType: merge, body: `{"status":"suspended"}`, want: 200})
	do(exchange{method: "PATCH", url: "/admin/tenants/acme", contentType: js, body: `{"status":"active"}`, want: 200})
	do(exchange{method: "PATCH", url: "/admin/tenants/acme", contentType: merge, body: `{}`, want: 200})
	do(exchange{method: "POST", url: "/admin/tenants/acme/suspend", want: 200})
	do(exchange{method: "POST", url: "/admin/tenants/acme/suspend", want: 200})
	do(exchange{method: "POST", url: "/admin/tenants/acme/resume", want: 200})
	do(exchange{method: "POST", url: "/admin/tenants/acme/hosts", contentType: js, body: `{"host":"WWW.acme.test"}`, want: 200})
	do(exchange{method: "POST", url: "/admin/tenants/acme/hosts", contentType: js, body: `{"host":"www.acme.test"}`, want: 200})
	do(exchange{method: "DELETE", url: "/admin/tenants/acme/hosts/WWW.acme.test.", want: 204})
	do(exchange{method: "GET", url: "/admin/tenants/acme/stats", want: 200})
	do(exchange{method: "GET", url: "/admin/tenants/tenant1/stats", want: 200})

	// Databases: a tenant created on the control database by name, and,
	// on PostgreSQL, moved to the second one and back.
	do(exchange{method: "POST", url: "/admin/tenants", contentType: js,
		body: `{"name":"mover","hosts":["mover.test"],"database":"main"}`, want: 201})
	if driver == "postgres" {
		do(exchange{method: "POST", url: "/admin/tenants/mover/move", contentType: js, body: `{"to":"second"}`, want: 200})
		do(exchange{method: "GET", url: "/admin/databases", want: 200})
		do(exchange{method: "POST", url: "/admin/tenants/mover/move", contentType: js, body: `{"to":"main","drop_source":true}`, want: 200})
	}

	// Migration runs, followed to their end.
	do(exchange{method: "POST", url: "/admin/migrate", want: 202})
	followRun(t, do)
	do(exchange{method: "POST", url: "/admin/migrate", contentType: js, body: `{"tenant":"acme","jobs":2}`, want: 202})
	followRun(t, do)
	do(exchange{method: "POST", url: "/admin/migrate", contentType: js, body: `{}`, want: 202})
	followRun(t, do)

	// Every way to get a request wrong.
	for _, x := range []exchange{
		// Creating.
		{method: "POST", url: "/admin/tenants", body: `{"name":`, want: 400},
		{method: "POST", url: "/admin/tenants", contentType: js, want: 400},
		{method: "POST", url: "/admin/tenants", body: `[]`, want: 400},
		{method: "POST", url: "/admin/tenants", body: `{} {}`, want: 400},
		{method: "POST", url: "/admin/tenants", body: `{"name":"tenant1","hosts":["new.test"]}`, want: 409},
		{method: "POST", url: "/admin/tenants", body: `{"name":"other","schema":"tenant1","hosts":["new.test"]}`, want: 409},
		{method: "POST", url: "/admin/tenants", body: `{"name":"thief","hosts":["127.0.0.1:` + p1 + `"]}`, want: 409},
		{method: "POST", url: "/admin/tenants", body: big, want: 413},
		{method: "POST", url: "/admin/tenants", body: `{"name":"ok","hosts":["new.test"]}`, contentType: "text/plain", want: 415},
		{method: "POST", url: "/admin/tenants", body: `{"name":"Not A Name","hosts":["new.test"]}`, want: 422},
		{method: "POST", url: "/admin/tenants", body: `{"hosts":["new.test"]}`, want: 422},
		{method: "POST", url: "/admin/tenants", body: `{"name":"ok"}`, want: 422},
		{method: "POST", url: "/admin/tenants", body: `{"name":"ok","hosts":[]}`, want: 422},
		{method: "POST", url: "/admin/tenants", body: `{"name":"ok","schema":"pg_catalog","hosts":["new.test"]}`, want: 422},
		{method: "POST", url: "/admin/tenants", body: `{"name":"ok","schema":"archived_x","hosts":["new.test"]}`, want: 422},
		{method: "POST", url: "/admin/tenants", body: `{"name":"ok","schema":"Bad-Schema","hosts":["new.test"]}`, want: 422},
		{method: "POST", url: "/admin/tenants", body: `{"name":"ok","hosts":["new.test","not a host"]}`, want: 422},
		{method: "POST", url: "/admin/tenants", body: `{"name":"ok","hosts":["new.test:0"]}`, want: 422},
		{method: "POST", url: "/admin/tenants", body: `{"name":5,"hosts":["new.test"]}`, want: 422},
		{method: "POST", url: "/admin/tenants", body: `{"name":"ok","hosts":["new.test"],"plan":"gold"}`, want: 422},
		{method: "POST", url: "/admin/tenants", body: `{"name":"ok","hosts":["new.test"],"database":"nope"}`, want: 422, docAllows: true},
		{method: "POST", url: "/admin/tenants", body: `{"name":"ok","hosts":["new.test"],"database":"Not A Name"}`, want: 422},
		// Showing, changing and removing.
		{method: "GET", url: "/admin/tenants/nobody", want: 404},
		{method: "GET", url: "/admin/tenants/Not%20A%20Name", want: 404},
		{method: "GET", url: "/admin/tenants/nobody/stats", want: 404},
		{method: "PATCH", url: "/admin/tenants/acme", body: `{"status"`, want: 400},
		{method: "PATCH", url: "/admin/tenants/nobody", body: `{"status":"suspended"}`, want: 404},
		{method: "PATCH", url: "/admin/tenants/acme", body: big, want: 413},
		{method: "PATCH", url: "/admin/tenants/acme", body: `{"status":"suspended"}`, contentType: "text/plain", want: 415},
		{method: "PATCH", url: "/admin/tenants/acme", body: `{"status":"paused"}`, want: 422},
		{method: "PATCH", url: "/admin/tenants/acme", body: `{"hosts":["x.test"]}`, want: 422},
		{method: "PATCH", url: "/admin/tenants/acme", body: `{"name":"renamed"}`, want: 422},
		{method: "DELETE", url: "/admin/tenants/acme?drop_data=maybe", want: 400},
		{method: "DELETE", url: "/admin/tenants/nobody", want: 404},
		{method: "POST", url: "/admin/tenants/nobody/suspend", want: 404},
		{method: "POST", url: "/admin/tenants/nobody/resume", want: 404},
		// Hosts.
		{method: "POST", url: "/admin/tenants/acme/hosts", body: `{"host":`, want: 400},
		{method: "POST", url: "/admin/tenants/nobody/hosts", body: `{"host":"new.test"}`, want: 404},
		{method: "POST", url: "/admin/tenants/tenant2/hosts", body: `{"host":"LOCALHOST:` + p1 + `"}`, want: 409},
		{method: "POST", url: "/admin/tenants/acme/hosts", body: big, want: 413},
		{method: "POST", url: "/admin/tenants/acme/hosts", body: `host=new.test`, contentType: "application/x-www-form-urlencoded", want: 415},
		{method: "POST", url: "/admin/tenants/acme/hosts", body: `{"host":"new.test:99999"}`, want: 422},
		{method: "POST", url: "/admin/tenants/acme/hosts", body: `{"host":"new.test","tenant":"acme"}`, want: 422},
		{method: "DELETE", url: "/admin/tenants/tenant1/hosts/localhost:" + p2, want: 404},
		{method: "DELETE", url: "/admin/tenants/tenant1/hosts/bad%20host", want: 404},
		{method: "DELETE", url: "/admin/tenants/nobody/hosts/new.test", want: 404},
		// Moves.
		{method: "POST", url: "/admin/tenants/mover/move", body: `{"to":`, want: 400},
		{method: "POST", url: "/admin/tenants/nobody/move", body: `{"to":"main"}`, want: 404},
		{method: "POST", url: "/admin/tenants/mover/move", body: `{"to":"main"}`, want: 409},
		{method: "POST", url: "/admin/tenants/mover/move", body: big, want: 413},
		{method: "POST", url: "/admin/tenants/mover/move", body: `to=main`, contentType: "text/plain", want: 415},
		{method: "POST", url: "/admin/tenants/mover/move", body: `{}`, want: 422},
		{method: "POST", url: "/admin/tenants/mover/move", body: `{"to":"main","now":true}`, want: 422},
		{method: "POST", url: "/admin/tenants/mover/move", body: `{"to":"nope"}`, want: 422, docAllows: true},
		// Migrations.
		{method: "POST", url: "/admin/migrate", body: `{"jobs":`, want: 400},
		{method: "POST", url: "/admin/migrate", body: `{"tenant":"nobody"}`, want: 404},
		{method: "POST", url: "/admin/migrate", body: big, want: 413},
		{method: "POST", url: "/admin/migrate", body: `jobs=2`, contentType: "text/plain", want: 415},
		{method: "POST", url: "/admin/migrate", body: `{"jobs":-1}`, want: 422},
		{method: "POST", url: "/admin/migrate", body: `{"jobs":65}`, want: 422},
		{method: "POST", url: "/admin/migrate", body: `{"dry_run":true}`, want: 422},
	} {
		if x.contentType == "" && x.body != "" {
			x.contentType = js
		}
		do(x)
	}
	if driver == "sqlite" {
		// The prefix strategy bounds schemas more tightly than the naming
		// rule: the catalog refuses what the document allows.
		do(exchange{method: "POST", url: "/admin/tenants", contentType: js,
			body: `{"name":"` + strings.Repeat("a", 50) + `","hosts":["long.test"]}`, want: 422, docAllows: true})
	}

	// Removal keeps the data under an archive name, or drops it.
	var removed struct {
		ArchivedAs string `json:"archived_as"`
	}
	if err := json.Unmarshal(do(exchange{method: "DELETE", url: "/admin/tenants/beta-corp", want: 200}), &removed); err != nil || removed.ArchivedAs == "" {
		t.Errorf("DELETE beta-corp: archived_as = %q (%v), want the archive's name", removed.ArchivedAs, err)
	}
	do(exchange{method: "DELETE", url: "/admin/tenants/acme?drop_data=true", want: 200})
	do(exchange{method: "DELETE", url: "/admin/tenants/acme", want: 404})
	do(exchange{method: "DELETE", url: "/admin/tenants/mover?drop_data=true", want: 200})

	if driver == "postgres" {
		holdMigrationRun(t, env, do)
		blockRemoval(t, env, do)
	}

	// With the database gone, every operation that reads the catalog is a
	// 500 that shows none of the cause, and a run stops with an error.
	if err := database.Close(env.App.DB); err != nil {
		t.Fatal(err)
	}
	for _, x := range []exchange{
		{method: "GET", url: "/admin/tenants"},
		{method: "POST", url: "/admin/tenants", body: `{"name":"gamma","hosts":["gamma.test"]}`},
		{method: "GET", url: "/admin/tenants/tenant1"},
		{method: "GET", url: "/admin/tenants/tenant1/stats"},
		{method: "PATCH", url: "/admin/tenants/tenant1", body: `{"status":"suspended"}`},
		{method: "DELETE", url: "/admin/tenants/tenant1?drop_data=true"},
		{method: "POST", url: "/admin/tenants/tenant1/suspend"},
		{method: "POST", url: "/admin/tenants/tenant1/resume"},
		{method: "POST", url: "/admin/tenants/tenant1/hosts", body: `{"host":"gamma.test"}`},
		{method: "DELETE", url: "/admin/tenants/tenant1/hosts/localhost:" + p1},
		{method: "POST", url: "/admin/migrate", body: `{"tenant":"tenant1"}`},
		{method: "GET", url: "/admin/databases"},
		{method: "POST", url: "/admin/tenants/tenant1/move", body: `{"to":"main"}`},
	} {
		x.want = http.StatusInternalServerError
		if x.body != "" {
			x.contentType = js
		}
		if body := do(x); strings.Contains(string(body), "sql") {
			t.Errorf("%s: the 500 shows its cause: %s", x, body)
		}
	}
	do(exchange{method: "POST", url: "/admin/migrate", want: 202})
	if st := followRun(t, do); st.Error == "" {
		t.Errorf("run without a database: %+v, want the error that stopped it", st)
	}

	// A client that sent too many wrong tokens is refused on every
	// operation, even with the right token. All loopback addresses are one
	// client (admin/throttle.go): 127.0.0.1 guesses, 127.0.0.2 is refused.
	// exhaust empties the budget before each operation below: it guesses
	// until a 429, then on until a guess is let through again (401) and
	// spends the one guess that refilled. A first 429 alone only says
	// that less than one guess is left, which may be a moment from
	// refilling (one per admin.FailedAuthEvery): on a loaded machine the
	// operation's request could then be let through. Spending the guess
	// that just refilled leaves it a whole FailedAuthEvery.
	exhaust := func() {
		throttled := false
		deadline := time.Now().Add(2*admin.FailedAuthEvery + 10*time.Second)
		for i := 0; ; i++ {
			if time.Now().After(deadline) || i > 10*admin.FailedAuthBurst+1000 {
				t.Fatalf("no 429 then 401 after %d wrong tokens", i)
			}
			req, err := http.NewRequest("GET", a+"/admin/tenants", nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Authorization", "Bearer guess")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			_ = resp.Body.Close()
			switch resp.StatusCode {
			case http.StatusTooManyRequests:
				throttled = true
				time.Sleep(5 * time.Millisecond)
			case http.StatusUnauthorized:
				if throttled {
					return
				}
			}
		}
	}
	const guesser = "127.0.0.2"
	for _, o := range operations(c.doc) {
		path := strings.NewReplacer("{name}", "tenant1", "{host}", "localhost:"+p1).Replace(o.path)
		exhaust()
		do(exchange{method: o.method, url: path, from: guesser, want: http.StatusTooManyRequests})
	}
}

// migrationRun is the part of GET /admin/migrate the tests read.
type migrationRun struct {
	Running bool   `json:"running"`
	Error   string `json:"error"`
	Report  *struct {
		Total int `json:"total"`
	} `json:"report"`
}

// followRun polls GET /admin/migrate until the run has finished.
func followRun(t *testing.T, do func(exchange) []byte) migrationRun {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var st migrationRun
		if err := json.Unmarshal(do(exchange{method: "GET", url: "/admin/migrate", want: 200}), &st); err != nil {
			t.Fatalf("GET /admin/migrate: %v", err)
		}
		if !st.Running {
			if st.Report == nil {
				t.Errorf("finished run %+v has no report", st)
			}
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("migration still running after 20s: %+v", st)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// holdMigrationRun keeps a run in progress by locking the catalog table
// from outside the service, to cause the 409 of a second run.
func holdMigrationRun(t *testing.T, env *testenv.Env, do func(exchange) []byte) {
	t.Helper()
	db, err := sql.Open("pgx", env.App.Config.Database.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback() }()
	if _, err := tx.ExecContext(ctx, "LOCK TABLE public.tenants IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	do(exchange{method: "POST", url: "/admin/migrate", want: 202})
	do(exchange{method: "POST", url: "/admin/migrate", want: 409})
	do(exchange{method: "POST", url: "/admin/migrate", contentType: "application/json", body: `{"jobs":2}`, want: 409})
	var st migrationRun
	if err := json.Unmarshal(do(exchange{method: "GET", url: "/admin/migrate", want: 200}), &st); err != nil || !st.Running {
		t.Errorf("while the catalog is locked: %+v (%v), want a run in progress", st, err)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	followRun(t, do)
}

// port returns the port of a host:port address.
