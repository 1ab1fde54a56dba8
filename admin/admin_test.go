package admin_test

import (
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"tenantry/admin"
	"tenantry/internal/testenv"
)

func TestNewServerRefusesEmptyToken(t *testing.T) {
	if _, err := admin.NewServer(admin.Deps{Log: testenv.Logger(t), Token: ""}); err == nil {
		t.Fatal("NewServer with an empty token = nil error, want a refusal")
	}
}

func TestNewToken(t *testing.T) {
	a, err := admin.NewToken()
	if err != nil {
		t.Fatal(err)
	}
	b, err := admin.NewToken()
	if err != nil {
		t.Fatal(err)
	}
	if len(a) < 40 || a == b {
		t.Errorf("NewToken = %q, %q; want two different tokens of 256 bits", a, b)
	}
}

// TestAuth checks that nothing, not even a 404, is answered without the
// token, and that wrong tokens are refused whatever their length (the
// comparison is over fixed-size digests, so length cannot shortcut it).
func TestAuth(t *testing.T) {
	f := start(t, "sqlite")
	sameLength := strings.Repeat("x", len(token))
	for _, tc := range []struct {
		name      string
		auth      string
		path      string
		want      int
		challenge string // expected WWW-Authenticate on a 401
	}{
		{"no header", "none", "/admin/tenants", 401, `Bearer realm="tenantry-admin"`},
		{"other scheme", "Basic " + token, "/admin/tenants", 401, `Bearer realm="tenantry-admin"`},
		{"scheme only", "Bearer", "/admin/tenants", 401, `Bearer realm="tenantry-admin"`},
		{"empty token", "Bearer ", "/admin/tenants", 401, `Bearer realm="tenantry-admin"`},
		{"wrong token, same length", "Bearer " + sameLength, "/admin/tenants", 401, `Bearer realm="tenantry-admin", error="invalid_token"`},
		{"wrong token, shorter", "Bearer " + token[:len(token)-1], "/admin/tenants", 401, `Bearer realm="tenantry-admin", error="invalid_token"`},
		{"wrong token, longer", "Bearer " + token + "x", "/admin/tenants", 401, `Bearer realm="tenantry-admin", error="invalid_token"`},
		{"unknown path without token", "none", "/admin/nothing", 401, `Bearer realm="tenantry-admin"`},
		{"migrate without token", "none", "/admin/migrate", 401, `Bearer realm="tenantry-admin"`},
		{"right token", "", "/admin/tenants", 200, ""},
		{"scheme is case-insensitive", "bearer " + token, "/admin/tenants", 200, ""},
		{"unknown path with token", "", "/admin/nothing", 404, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := f.do(t, request{method: http.MethodGet, path: tc.path, auth: tc.auth})
			if resp.status != tc.want {
				t.Fatalf("status = %d, want %d: %s", resp.status, tc.want, resp.body)
			}
			if got := resp.header.Get("WWW-Authenticate"); got != tc.challenge {
				t.Errorf("WWW-Authenticate = %q, want %q", got, tc.challenge)
			}
			if tc.want == 401 {
				checkProblem(t, resp, 401, "unauthorized", "")
				if strings.Contains(string(resp.body), "tenant1") {
					t.Errorf("401 body leaks catalog data: %s", resp.body)
				}
			}
		})
	}
}

// TestErrors sends every kind of bad request through the real router over
// a real catalog and checks the problem it gets: never a 500.
func TestErrors(t *testing.T) {
	for _, driver := range testenv.Drivers {
		t.Run(driver, func(t *testing.T) {
			t.Parallel()
			f := start(t, driver)
			p1, p2 := testenv.Port(f.env.Addr1), testenv.Port(f.env.Addr2)
			type tc struct {
				name   string
				req    request
				status int
				slug   string
				field  string
			}
			cases := []tc{
				{"unknown tenant", request{method: "GET", path: "/admin/tenants/nobody"}, 404, "tenant-not-found", ""},
				{"unknown tenant, invalid name", request{method: "GET", path: "/admin/tenants/Not%20A%20Name"}, 404, "tenant-not-found", ""},
				{"duplicate name", request{method: "POST", path: "/admin/tenants",
					body: `{"name":"tenant1","hosts":["new.test"]}`}, 409, "tenant-exists", ""},
				{"duplicate schema", request{method: "POST", path: "/admin/tenants",
					body: `{"name":"other","schema":"tenant1","hosts":["new.test"]}`}, 409, "tenant-exists", ""},
				{"invalid name", request{method: "POST", path: "/admin/tenants",
					body: `{"name":"Not A Name","hosts":["new.test"]}`}, 422, "validation", "name"},
				{"missing name", request{method: "POST", path: "/admin/tenants",
					body: `{"hosts":["new.test"]}`}, 422, "validation", "name"},
				{"reserved schema", request{method: "POST", path: "/admin/tenants",
					body: `{"name":"ok","schema":"pg_catalog","hosts":["new.test"]}`}, 422, "validation", "schema"},
				{"invalid schema", request{method: "POST", path: "/admin/tenants",
					body: `{"name":"ok","schema":"Bad-Schema","hosts":["new.test"]}`}, 422, "validation", "schema"},
				{"invalid host", request{method: "POST", path: "/admin/tenants",
					body: `{"name":"ok","hosts":["new.test","not a host"]}`}, 422, "validation", "hosts[1]"},
				{"no hosts", request{method: "POST", path: "/admin/tenants", body: `{"name":"ok"}`}, 422, "validation", "hosts"},
				{"field of the wrong type", request{method: "POST", path: "/admin/tenants",
					body: `{"name":5,"hosts":["new.test"]}`}, 422, "validation", "name"},
				{"unknown field", request{method: "POST", path: "/admin/tenants",
					body: `{"name":"ok","hosts":["new.test"],"plan":"gold"}`}, 422, "validation", "plan"},
				{"malformed JSON", request{method: "POST", path: "/admin/tenants", body: `{"name":`}, 400, "malformed-json", ""},
				{"two JSON objects", request{method: "POST", path: "/admin/tenants", body: `{} {}`}, 400, "malformed-json", ""},
				{"JSON array", request{method: "POST", path: "/admin/tenants", body: `[]`}, 400, "malformed-json", ""},
				{"empty body", request{method: "POST", path: "/admin/tenants", contentType: "application/json"}, 400, "malformed-json", ""},
				{"wrong content type", request{method: "POST", path: "/admin/tenants",
					body: `{"name":"ok","hosts":["new.test"]}`, contentType: "text/plain"}, 415, "unsupported-media-type", ""},
				{"no content type", request{method: "POST", path: "/admin/tenants",
					body: `{"name":"ok","hosts":["new.test"]}`, contentType: "none"}, 415, "unsupported-media-type", ""},
				{"body too large", request{method: "POST", path: "/admin/tenants",
					body: `{"name":"` + strings.Repeat("a", admin.DefaultMaxBody) + `"}`}, 413, "body-too-large", ""},
				{"new tenant on a host another tenant owns", request{method: "POST", path: "/admin/tenants",
					body: `{"name":"thief","hosts":["127.0.0.1:` + p1 + `"]}`}, 409, "host-taken", ""},
				{"add a host another tenant owns", request{method: "POST", path: "/admin/tenants/tenant1/hosts",
					body: `{"host":"LOCALHOST:` + p2 + `"}`}, 409, "host-taken", ""},
				{"add a host to an unknown tenant", request{method: "POST", path: "/admin/tenants/nobody/hosts",
					body: `{"host":"new.test"}`}, 404, "tenant-not-found", ""},
				{"add an invalid host", request{method: "POST", path: "/admin/tenants/tenant1/hosts",
					body: `{"host":"new.test:99999"}`}, 422, "validation", "host"},
				{"add a host, wrong content type", request{method: "POST", path: "/admin/tenants/tenant1/hosts",
					body: `host=new.test`, contentType: "application/x-www-form-urlencoded"}, 415, "unsupported-media-type", ""},
				{"remove a host the tenant lacks", request{method: "DELETE", path: "/admin/tenants/tenant1/hosts/localhost:" + p2}, 404, "host-not-found", ""},
				{"remove an unparsable host", request{method: "DELETE", path: "/admin/tenants/tenant1/hosts/bad%20host"}, 404, "host-not-found", ""},
				{"remove a host of an unknown tenant", request{method: "DELETE", path: "/admin/tenants/nobody/hosts/new.test"}, 404, "tenant-not-found", ""},
				{"patch an unknown tenant", request{method: "PATCH", path: "/admin/tenants/nobody", body: `{"status":"suspended"}`}, 404, "tenant-not-found", ""},
				{"patch an invalid status", request{method: "PATCH", path: "/admin/tenants/tenant1", body: `{"status":"paused"}`}, 422, "validation", "status"},
				{"patch the hosts", request{method: "PATCH", path: "/admin/tenants/tenant1", body: `{"hosts":["x.test"]}`}, 422, "validation", "hosts"},
				{"patch the name", request{method: "PATCH", path: "/admin/tenants/tenant1", body: `{"name":"renamed"}`}, 422, "validation", "name"},
				{"patch, wrong content type", request{method: "PATCH", path: "/admin/tenants/tenant1",
					body: `{"status":"suspended"}`, contentType: "text/plain"}, 415, "unsupported-media-type", ""},
				{"patch, malformed JSON", request{method: "PATCH", path: "/admin/tenants/tenant1", body: `{"status"`}, 400, "malformed-json", ""},
				{"delete an unknown tenant", request{method: "DELETE", path: "/admin/tenants/nobody"}, 404, "tenant-not-found", ""},
				{"delete with a bad drop_data", request{method: "DELETE", path: "/admin/tenants/tenant1?drop_data=maybe"}, 400, "invalid-query", "drop_data"},
				{"suspend an unknown tenant", request{method: "POST", path: "/admin/tenants/nobody/suspend"}, 404, "tenant-not-found", ""},
				{"resume an unknown tenant", request{method: "POST", path: "/admin/tenants/nobody/resume"}, 404, "tenant-not-found", ""},
				{"wrong method", request{method: "PUT", path: "/admin/tenants/tenant1", body: `{}`}, 405, "method-not-allowed", ""},
				{"wrong method on a collection", request{method: "DELETE", path: "/admin/tenants"}, 405, "method-not-allowed", ""},
				{"unknown path", request{method: "GET", path: "/admin/tenant"}, 404, "not-found", ""},
				{"trailing slash", request{method: "GET", path: "/admin/tenants/"}, 404, "not-found", ""},
				{"migrate an unknown tenant", request{method: "POST", path: "/admin/migrate", body: `{"tenant":"nobody"}`}, 404, "tenant-not-found", ""},
				{"migrate with bad jobs", request{method: "POST", path: "/admin/migrate", body: `{"jobs":-1}`}, 422, "validation", "jobs"},
				{"migrate, wrong content type", request{method: "POST", path: "/admin/migrate", body: `jobs=2`, contentType: "text/plain"}, 415, "unsupported-media-type", ""},
			}
			if driver == "sqlite" {
				// The prefix strategy bounds schema names more tightly than
				// the general rule that Valid checks; the catalog's own
				// check must still be a 422, not a 500.
				long := strings.Repeat("a", 50)
				cases = append(cases, tc{"schema too long for the prefix strategy", request{method: "POST", path: "/admin/tenants",
					body: `{"name":"` + long + `","hosts":["long.test"]}`}, 422, "invalid-name", ""})
			}
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					checkProblem(t, f.do(t, c.req), c.status, c.slug, c.field)
				})
			}

			// None of the refused requests changed the catalog.
			var list struct{ Tenants []tenantView }
			f.ok(t, request{method: "GET", path: "/admin/tenants"}, 200, &list)
			if len(list.Tenants) != 2 || list.Tenants[0].Name != "tenant1" || list.Tenants[1].Name != "tenant2" {
				t.Errorf("tenants after the refused requests = %+v, want tenant1 and tenant2 only", list.Tenants)
			}
			for _, tn := range list.Tenants {
				if tn.Status != "active" || len(tn.Hosts) != 2 {
					t.Errorf("tenant %+v changed", tn)
				}
			}
		})
	}
}

// TestWrongTokensAreThrottled: past admin.FailedAuthBurst wrong tokens an
// address is refused with 429 even with the right token, while requests
// without any token never count and other addresses go on.
func TestWrongTokensAreThrottled(t *testing.T) {
	f := start(t, "sqlite")
	for range 3 * admin.FailedAuthBurst {
		if r := f.do(t, request{method: "GET", path: "/admin/tenants", auth: "none"}); r.status != 401 {
			t.Fatalf("no token: %d, want 401", r.status)
		}
	}
	if r := f.do(t, request{method: "GET", path: "/admin/tenants"}); r.status != 200 {
		t.Fatalf("right token after requests without one: %d, want 200 (they must not count)", r.status)
	}

	for i := range admin.FailedAuthBurst {
		if r := f.do(t, request{method: "GET", path: "/admin/tenants", auth: "Bearer guess"}); r.status != 401 {
			t.Fatalf("wrong token %d: %d, want 401", i+1, r.status)
		}
	}
	r := f.do(t, request{method: "GET", path: "/admin/tenants"})
	if r.status != http.StatusTooManyRequests {
		t.Fatalf("right token after %d wrong ones: %d, want 429: %s", admin.FailedAuthBurst, r.status, r.body)
	}
	checkProblem(t, r, 429, "too-many-wrong-tokens", "")
	want := strconv.Itoa(int(admin.FailedAuthEvery / time.Second))
	if got := r.header.Get("Retry-After"); got != want {
		t.Errorf("Retry-After = %q, want %q", got, want)
	}
	if strings.Contains(string(r.body), "tenant1") {
		t.Errorf("429 body leaks catalog data: %s", r.body)
	}

	// Another loopback address, 127.0.0.2: all of loopback is one client,
	// so it shares the exhausted budget (throttle.go, budgetKey; other
	// networks' budgets are TestThrottle's).
	other := &http.Client{Transport: &http.Transport{
		DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}).DialContext,
	}}
	req, _ := http.NewRequest("GET", f.url+"/admin/tenants", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := other.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Errorf("another loopback address with the right token: %d, want 429", resp.StatusCode)
	}
}
