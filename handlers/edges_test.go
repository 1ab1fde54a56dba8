package handlers_test

import (
	"encoding/json"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"

	"tenantry/config"
	"tenantry/internal/testenv"
)

// TestRoutingOrder: the tenant is resolved before Gin's own answers, so an
// unknown host is 404 unknown-host whatever the method and path (never 405
// or a redirect), and no request is ever redirected, so X-Forwarded-Prefix,
// which Gin's trailing-slash redirect would have put into Location, shapes
// nothing. A known host keeps its 405 for a wrong method; a stray slash is
// its 404. Routing reads the catalog only to resolve the host, which
// TestHosts covers on both databases; SQLite is enough here.
func TestRoutingOrder(t *testing.T) {
	env := testenv.Start(t, "sqlite")
	const unknown = "nobody.example"
	known := strings.TrimPrefix(env.URL1, "http://")
	const (
		unknownHost = "unknown-host"
		notFound    = "not-found"
		noMethod    = "method-not-allowed"
	)
	for _, tc := range []struct {
		method, path string
		page         bool   // a browser's Accept; otherwise none
		host         string // known or unknown
		status       int
		slug         string // the problem's type, or on a page the slug's title
	}{
		{"PUT", "/api/users", false, unknown, 404, unknownHost},
		{"PUT", "/api/users", false, known, 405, noMethod},
		{"POST", "/api/users/1", false, unknown, 404, unknownHost},
		{"POST", "/api/users/1", false, known, 405, noMethod},
		{"POST", "/healthz", false, unknown, 404, unknownHost},
		{"POST", "/healthz", false, known, 405, noMethod},
		{"DELETE", "/users", true, unknown, 404, unknownHost},
		{"DELETE", "/users", true, known, 405, noMethod},
		{"POST", "/static/style.css", true, unknown, 404, unknownHost},
		{"GET", "/users/", true, unknown, 404, unknownHost},
		{"GET", "/users/", true, known, 404, notFound},
		{"GET", "/users/", false, known, 404, notFound},
		{"POST", "/users/", true, unknown, 404, unknownHost},
		{"POST", "/users/", true, known, 404, notFound},
		{"GET", "/api/users/", false, unknown, 404, unknownHost},
		{"GET", "/api/users/", false, known, 404, notFound},
		{"GET", "/api/tenant/", false, known, 404, notFound},
		{"GET", "/USERS", true, known, 404, notFound},
		{"GET", "/api//users", false, known, 404, notFound},
		{"GET", "/api/users", false, unknown, 404, unknownHost},
		{"GET", "/api/users", false, known, 200, ""},
		{"GET", "/healthz", false, unknown, 200, ""},
	} {
		for _, prefix := range []string{"", "/evil", "https://evil.example"} {
			name := tc.method + " " + tc.path + " on " + tc.host
			if prefix != "" {
				name += " with X-Forwarded-Prefix " + prefix
			}
			t.Run(name, func(t *testing.T) {
				hdr := []string{"X-Forwarded-Prefix", prefix}
				if tc.page {
					hdr = append(hdr, "Accept", browserAccept)
				}
				r := apiDo(t, tc.method, env.URL1+tc.path, tc.host, "", nil, hdr...)
				if r.status != tc.status {
					t.Fatalf("status = %d, want %d; Location %q; body %s", r.status, tc.status, r.header.Get("Location"), r.body)
				}
				if loc := r.header.Get("Location"); loc != "" {
					t.Errorf("Location = %q, want none", loc)
				}
				if allow := r.header.Get("Allow"); (allow != "") != (tc.status == 405) {
					t.Errorf("Allow = %q with status %d: want one exactly on a 405", allow, r.status)
				}
				switch {
				case tc.slug == "":
				case r.header.Get("Content-Type") == "application/problem+json":
					var p struct{ Type string }
					if err := json.Unmarshal(r.body, &p); err != nil || p.Type != "urn:tenantry:problem:"+tc.slug {
						t.Errorf("problem type %q (%v), want the %s problem: %s", p.Type, err, tc.slug, r.body)
					}
				case !tc.page:
					t.Errorf("Content-Type = %q, want application/problem+json", r.header.Get("Content-Type"))
				default:
					title := map[string]string{unknownHost: "Unknown host", notFound: "Not found", noMethod: "Method not allowed"}[tc.slug]
					if !strings.Contains(string(r.body), "<h1>"+title+"</h1>") {
						t.Errorf("page lacks <h1>%s</h1>:\n%s", title, r.body)
					}
				}
			})
		}
	}
}

// TestTrustedProxyOrigin: behind a TLS-terminating proxy listed in
// server.trusted_proxies (here 127.0.0.1), the client's origin is the one
// the proxy forwards. A form posted from the page the browser saw
// (https://tenant.example) passes the same-origin check and its flash
// cookie is Secure; the backend's own origin no longer passes, and the
// same headers from an untrusted peer (127.0.0.2) change nothing.
func TestTrustedProxyOrigin(t *testing.T) {
	for _, driver := range testenv.Drivers {
		t.Run(driver, func(t *testing.T) {
			t.Parallel()
			env := testenv.Start(t, driver, func(c *config.Config) {
				c.Server.TrustedProxies = []string{"127.0.0.1"}
				c.Tenants[0].Hosts = append(c.Tenants[0].Hosts, "tenant.example")
			})
			backend := env.URL1
			tenant2Host := "localhost:" + testenv.Port(env.Addr2)
			proxy := newPageClient(t)
			untrusted := newPageClient(t)
			untrusted.c.Transport = &http.Transport{
				DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}).DialContext,
			}
			t.Cleanup(untrusted.c.CloseIdleConnections)
			forwarded := []string{"X-Forwarded-Proto", "https", "X-Forwarded-Host", "tenant.example"}

			cases := []struct {
				name    string
				client  *pageClient
				hdr     []string
				allowed bool
				secure  bool // the flash cookie of an allowed post
			}{
				{"trusted proxy, forwarded origin", proxy, append([]string{"Origin", "https://tenant.example"}, forwarded...), true, true},
				{"trusted proxy, forwarded origin, default port spelt out", proxy,
					[]string{"Origin", "https://tenant.example", "X-Forwarded-Proto", "https", "X-Forwarded-Host", "tenant.example:443"}, true, true},
				{"trusted proxy, modern browser", proxy, append([]string{"Sec-Fetch-Site", "same-origin", "Origin", "https://tenant.example"}, forwarded...), true, true},
				{"trusted proxy passing Host through, TLS only forwarded", proxy,
					[]string{"Origin", "https://" + strings.TrimPrefix(backend, "http://"), "X-Forwarded-Proto", "https"}, true, true},
				{"trusted peer without forwarding headers", proxy, []string{"Origin", backend}, true, false},
				{"untrusted peer, own origin", untrusted, []string{"Origin", backend}, true, false},
				{"untrusted peer claiming TLS", untrusted, []string{"Origin", backend, "X-Forwarded-Proto", "https"}, true, false},
				{"untrusted peer, forwarded origin", untrusted, append([]string{"Origin", "https://tenant.example"}, forwarded...), false, false},
				{"trusted proxy, the backend's origin", proxy, append([]string{"Origin", backend}, forwarded...), false, false},
				{"trusted proxy, http instead of https", proxy, append([]string{"Origin", "http://tenant.example"}, forwarded...), false, false},
				{"trusted proxy, another port", proxy, append([]string{"Origin", "https://tenant.example:8443"}, forwarded...), false, false},
				{"trusted proxy, another site", proxy, append([]string{"Origin", "https://evil.example"}, forwarded...), false, false},
				{"trusted proxy, opaque origin", proxy, append([]string{"Origin", "null"}, forwarded...), false, false},
				{"trusted proxy, cross-site browser", proxy, append([]string{"Sec-Fetch-Site", "cross-site", "Origin", "https://tenant.example"}, forwarded...), false, false},
				{"trusted proxy, tenant2's host with tenant1's origin", proxy,
					[]string{"Origin", "https://tenant.example", "X-Forwarded-Proto", "https", "X-Forwarded-Host", tenant2Host}, false, false},
			}
			allowed := 0
			for i, tc := range cases {
				if tc.allowed {
					allowed++
				}
				t.Run(tc.name, func(t *testing.T) {
					email := "proxy" + string(rune('a'+i)) + "@example.com"
					body := url.Values{"name": {"Proxy " + tc.name}, "email": {email}}.Encode()
					// Sec-Fetch-Site is empty unless the case sends one: an
					// older browser, so Origin decides.
					hdr := append([]string{"Content-Type", "application/x-www-form-urlencoded", "Sec-Fetch-Site", ""}, tc.hdr...)
					r := tc.client.do("POST", backend+"/users", strings.NewReader(body), hdr...)
					if !tc.allowed {
						wantPage(t, r, http.StatusForbidden, "<h1>Request refused</h1>")
						return
					}
					wantAdded(t, r)
					var flash *http.Cookie
					for _, c := range (&http.Response{Header: r.header}).Cookies() {
						if strings.HasPrefix(c.Name, "flash_") {
							flash = c
						}
					}
					if flash == nil {
						t.Fatalf("no flash cookie in %v", r.header["Set-Cookie"])
					}
					if flash.Secure != tc.secure {
						t.Errorf("flash cookie Secure = %v, want %v", flash.Secure, tc.secure)
					}
				})
			}

			// Count what the posts did, from tenant1's own listing: only
			// the allowed ones added a user, and none reached tenant2.
			jar, _ := cookiejar.New(nil)
			pc := &pageClient{t: t, c: &http.Client{Jar: jar}}
			if got := userTotal(t, pc, backend); got != allowed {
				t.Errorf("tenant1 has %d users, want %d: a refused post changed data", got, allowed)
			}
			if got := userTotal(t, pc, env.URL2); got != 0 {
				t.Errorf("tenant2 has %d users, want 0", got)
			}
		})
	}
}
