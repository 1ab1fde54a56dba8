package handlers_test

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"tenantry/internal/testenv"
	"tenantry/migrations"
	"tenantry/tenants"
)

// TestPageErrors sends bad requests to tenant1 as a browser would: each
// gets a readable HTML page with the right status, and the API and its
// neighbours keep problem+json.
func TestPageErrors(t *testing.T) {
	echo := hostEcho(t)
	eachDriver(t, func(t *testing.T, env *testenv.Env, pc *pageClient) {
		base := env.URL1
		big := strings.Repeat("x", int(env.App.Config.Server.MaxBodyBytes)+1)
		sameOrigin := []string{"Origin", base, "Sec-Fetch-Site", "same-origin"}
		form := func(hdr ...string) []string {
			return append(append([]string{"Content-Type", "application/x-www-form-urlencoded"}, sameOrigin...), hdr...)
		}

		tests := []struct {
			name   string
			method string
			path   string
			body   io.Reader
			hdr    []string
			status int
			want   []string // on the HTML page; nil means problem+json
		}{
			{"unknown user", "GET", "/users/999/edit", nil, nil, 404, []string{"User not found", "<title>User not found · tenant1</title>"}},
			{"id not a number", "GET", "/users/abc/edit", nil, nil, 404, []string{"User not found"}},
			{"id zero", "GET", "/users/0/delete", nil, nil, 404, []string{"User not found"}},
			{"id too large", "POST", "/users/99999999999999999999999", strings.NewReader("name=a"), form(), 404, []string{"User not found"}},
			{"bad page", "GET", "/users?page=0", nil, nil, 400, []string{"Invalid query parameters", "page", "must be a whole number"}},
			{"page not a number", "GET", "/users?page=two", nil, nil, 400, []string{"Invalid query parameters"}},
			{"JSON to a form", "POST", "/users", strings.NewReader(`{"name":"a"}`), append([]string{"Content-Type", "application/json"}, sameOrigin...),
				415, []string{"Unsupported media type", "application/x-www-form-urlencoded"}},
			{"no content type", "POST", "/users", strings.NewReader("name=a"), sameOrigin, 415, []string{"Unsupported media type"}},
			{"malformed multipart", "POST", "/users", strings.NewReader("garbage"), append([]string{"Content-Type", "multipart/form-data; boundary=zzz"}, sameOrigin...),
				400, []string{"Malformed form"}},
			{"malformed urlencoded", "POST", "/users", strings.NewReader("name=%zz"), form(), 400, []string{"Malformed form"}},
			{"body too large", "POST", "/users", strings.NewReader("name=" + big), form(), 413,
				[]string{"<title>Request body too large · tenant1</title>"}},
			{"body too large, chunked, no Accept", "POST", "/users", io.MultiReader(strings.NewReader("name=" + big)), form("Accept", ""),
				413, []string{"<title>Request body too large · tenant1</title>"}},
			// curl -d @big: the Content-Length alone is over the limit.
			{"body too large, no Accept", "POST", "/users", strings.NewReader("name=" + big), form("Accept", ""), 413,
				[]string{"<title>Request body too large · tenant1</title>", "Back to the users of tenant1"}},
			{"update body too large, JSON Accept", "POST", "/users/1", strings.NewReader("name=" + big), form("Accept", "application/json"), 413,
				[]string{"<title>Request body too large · tenant1</title>"}},
			{"API body too large from a browser", "POST", "/api/users", strings.NewReader(`{"name":"` + big + `"}`),
				append([]string{"Content-Type", "application/json"}, sameOrigin...), 413, nil},
			{"method not allowed", "PUT", "/users", nil, nil, 405, []string{"Method not allowed"}},
			// A page's path answers with a page whatever the Accept header.
			{"method not allowed, no Accept", "PUT", "/users", nil, []string{"Accept", ""}, 405, []string{"Method not allowed"}},
			{"method not allowed on an edit page, JSON Accept", "DELETE", "/users/1/edit", nil, []string{"Accept", "application/json"}, 405, []string{"Method not allowed"}},
			{"method not allowed on the API", "PUT", "/api/users", nil, nil, 405, nil},
			{"unknown path", "GET", "/nope", nil, nil, 404, []string{"<h1>Not found</h1>", "Back to the users of tenant1"}},
			{"unknown path, no Accept", "GET", "/nope", nil, []string{"Accept", ""}, 404, nil},
			{"API path from a browser", "GET", "/api/nope", nil, nil, 404, nil},
			{"API user from a browser", "GET", "/api/users/999", nil, nil, 404, nil},
			{"unknown host", "GET", "/users", nil, []string{"Host", "nobody.example:1234"}, 404,
				[]string{"<title>Unknown host · tenantry</title>", "No workspace is served on this host."}},
			// Hosts that reach the tenant middleware (see TestHosts), which
			// refuses them; net/http refuses a Host with a space itself.
			{"malformed host", "GET", "/users", nil, []string{"Host", "bad!host"}, 404,
				[]string{"<title>Unknown host · tenantry</title>", "The Host header is not a valid host name."}},
			{"malformed host, empty label", "POST", "/users", strings.NewReader("name=a"), form("Host", "a..b:1234"), 404,
				[]string{"The Host header is not a valid host name."}},
			{"malformed host, port out of range", "GET", "/users", nil, []string{"Host", "localhost:99999"}, 404,
				[]string{"The Host header is not a valid host name."}},
			{"malformed host, API", "GET", "/api/users", nil, []string{"Host", "-x.test"}, 404, nil},
			{"unknown host, unknown path", "GET", "/favicon.ico", nil, []string{"Host", "nobody.example"}, 404, []string{"Unknown host"}},
			{"unknown host, API", "GET", "/api/users", nil, []string{"Host", "nobody.example"}, 404, nil},
			{"unknown static file", "GET", "/static/nope.css", nil, nil, 404, []string{"Not found"}},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				for i := 0; i+1 < len(tc.hdr); i += 2 {
					if host := tc.hdr[i+1]; tc.hdr[i] == "Host" && sentHost(t, echo, host) != host {
						t.Fatalf("net/http does not deliver Host %q as it is, so this case does not test it", host)
					}
				}
				r := pc.do(tc.method, base+tc.path, tc.body, tc.hdr...)
				if tc.want == nil {
					wantProblemJSON(t, r, tc.status)
					return
				}
				wantPage(t, r, tc.status, tc.want...)
				if !strings.Contains(r.body, `<meta name="viewport"`) || strings.Contains(r.body, "urn:tenantry") {
					t.Errorf("error page is not a full page or shows the problem type:\n%s", r.body)
				}
			})
		}
	})
}

// TestErrorNegotiation checks how the Accept header picks the error format
// on a path that is neither a page nor the API.
func TestErrorNegotiation(t *testing.T) {
	env := testenv.Start(t, "sqlite")
	pc := newPageClient(t)
	tests := []struct {
		accept string
		html   bool
	}{
		{browserAccept, true},
		{"text/html", true},
		{"text/*", true},
		{"text/html, application/json;q=0.9", true},
		{"", false},
		{"*/*", false},
		{"application/json", false},
		{"application/problem+json", false},
		{"text/html, application/json", false},
		{"text/html;q=0.5, application/*", false},
		{"text/html;q=0", false},
		{"text/html;q=abc", false},
		{"garbage;;;, text/html", true},
	}
	for _, tc := range tests {
		t.Run(tc.accept, func(t *testing.T) {
			r := pc.get(env.URL1+"/nope", "Accept", tc.accept)
			if tc.html {
				wantPage(t, r, http.StatusNotFound, "Not found")
			} else {
				wantProblemJSON(t, r, http.StatusNotFound)
			}
		})
	}
}

// TestStylesheetOnAnyHost serves the stylesheet on tenant hosts and on
// hosts that name no tenant, whose error page needs it as well.
func TestStylesheetOnAnyHost(t *testing.T) {
	env := testenv.Start(t, "sqlite")
	pc := newPageClient(t)
	for _, host := range []string{"", "nobody.example"} {
		r := pc.get(env.URL1+"/static/style.css", "Host", host)
		if r.status != http.StatusOK || r.header.Get("Content-Type") != "text/css; charset=utf-8" || !strings.Contains(r.body, "font:") {
			t.Errorf("host %q: got %d %q, want 200 text/css", host, r.status, r.header.Get("Content-Type"))
		}
	}
}

// TestPagesSuspendedTenant shows a suspended workspace's visitors a page,
// while its API keeps problem+json and the other workspace is unaffected.
func TestPagesSuspendedTenant(t *testing.T) {
	eachDriver(t, func(t *testing.T, env *testenv.Env, pc *pageClient) {
		if _, err := env.App.Catalog.SetStatus(context.Background(), "tenant2", tenants.StatusSuspended); err != nil {
			t.Fatal(err)
		}
		wantPage(t, pc.get(env.URL2+"/users"), http.StatusForbidden, "<h1>Workspace suspended</h1>", "This workspace is suspended.")
		wantPage(t, pc.post(env.URL2, "/users", url.Values{"name": {"A"}, "email": {"a@example.com"}}), http.StatusForbidden, "Workspace suspended")
		wantProblemJSON(t, pc.get(env.URL2+"/api/users"), http.StatusForbidden)
		wantPage(t, pc.get(env.URL1+"/users"), http.StatusOK, "<title>Users · tenant1</title>")
	})
}

// TestPagesInternalError breaks tenant1's table: people get a 500 page that
// says nothing about the database.
func TestPagesInternalError(t *testing.T) {
	eachDriver(t, func(t *testing.T, env *testenv.Env, pc *pageClient) {
		layout, err := tenants.NewLayout(tenants.Strategy(env.App.Config.Tenancy.Strategy), migrations.Dialect(env.App.Config.Database.Driver))
		if err != nil {
			t.Fatal(err)
		}
		// A renamed column is a fault of ours (schema drift), not the
		// client's and not a tenant gone missing: a dropped table would be
		// answered 404, as for a tenant removed mid-request.
		if err := env.App.DB.Exec("ALTER TABLE " + layout.Table("tenant1", "users") + " RENAME COLUMN email TO email_gone").Error; err != nil {
			t.Fatal(err)
		}
		for _, r := range []pageResponse{
			pc.get(env.URL1 + "/users"),
			pc.post(env.URL1, "/users", url.Values{"name": {"A"}, "email": {"a@example.com"}}),
		} {
			wantPage(t, r, http.StatusInternalServerError, "<h1>Internal server error</h1>", "it has been logged")
			for _, secret := range []string{"no such column", "does not exist", "SQLSTATE", "email_gone", layout.Table("tenant1", "users")} {
				if strings.Contains(r.body, secret) {
					t.Errorf("500 page mentions %q:\n%s", secret, r.body)
				}
			}
		}
		wantPage(t, pc.get(env.URL2+"/users"), http.StatusOK, "0 in total")
	})
}

// TestCrossOriginPosts forges posts the way other pages would send them.
// Only same-origin posts and requests from programs, which send neither
// Sec-Fetch-Site nor Origin, change anything.
func TestCrossOriginPosts(t *testing.T) {
	eachDriver(t, func(t *testing.T, env *testenv.Env, pc *pageClient) {
		base := env.URL1
		localhost1 := strings.Replace(env.URL1, "127.0.0.1", "localhost", 1)
		victim := addUser(t, pc, base, "Victim", "victim@example.com")

		tests := []struct {
			name    string
			path    string // under /users
			headers []string
			allowed bool
		}{
			{"same origin", "", []string{"Sec-Fetch-Site", "same-origin", "Origin", base}, true},
			{"no browser headers (curl)", "", []string{"Sec-Fetch-Site", "", "Origin", ""}, true},
			{"old browser, same origin", "", []string{"Sec-Fetch-Site", "", "Origin", base}, true},
			{"tenant2's page (same site)", "", []string{"Sec-Fetch-Site", "same-site", "Origin", env.URL2}, false},
			{"another site", "", []string{"Sec-Fetch-Site", "cross-site", "Origin", "https://evil.example"}, false},
			{"cross-site claiming our origin", "", []string{"Sec-Fetch-Site", "cross-site", "Origin", base}, false},
			{"old browser, tenant2's origin", "", []string{"Sec-Fetch-Site", "", "Origin", env.URL2}, false},
			{"old browser, tenant1's other host", "", []string{"Sec-Fetch-Site", "", "Origin", localhost1}, false},
			{"opaque origin", "", []string{"Sec-Fetch-Site", "", "Origin", "null"}, false},
			{"forged update", "/" + victim, []string{"Sec-Fetch-Site", "same-site", "Origin", env.URL2}, false},
			{"forged delete", "/" + victim + "/delete", []string{"Sec-Fetch-Site", "cross-site", "Origin", "https://evil.example"}, false},
		}
		allowed := 1 // the victim
		for i, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				name := "Forged " + string(rune('A'+i))
				r := pc.post(base, "/users"+tc.path, url.Values{"name": {name}, "email": {strings.ReplaceAll(strings.ToLower(name), " ", "") + "@example.com"}}, tc.headers...)
				if tc.allowed {
					wantAdded(t, r)
					allowed++
					return
				}
				wantPage(t, r, http.StatusForbidden, "<h1>Request refused</h1>", "another site or workspace")
			})
		}
		if total := userTotal(t, pc, base); total != allowed {
			t.Errorf("total = %d, want %d: a refused post changed data", total, allowed)
		}
		wantPage(t, pc.get(base+"/users/"+victim+"/edit"), http.StatusOK, `value="Victim"`)

		// The JSON API: programs pass, cross-origin browsers get problem+json.
		api := func(hdr ...string) pageResponse {
			return pc.do("POST", base+"/api/users", strings.NewReader(`{"name":"Api","email":"api`+hdr[len(hdr)-1][:0]+`@example.com"}`),
				append([]string{"Content-Type", "application/json", "Accept", ""}, hdr...)...)
		}
		if r := api("Origin", ""); r.status != http.StatusCreated {
			t.Errorf("API POST without browser headers: status %d, want 201: %s", r.status, r.body)
		}
		wantProblemJSON(t, api("Sec-Fetch-Site", "same-site", "Origin", env.URL2), http.StatusForbidden)
	})
}
