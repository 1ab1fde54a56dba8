package deploy_test

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"tenantry/internal/testenv"
)

// TestMain builds the tenantry binary at most once for the package
// (testenv.Binary) and removes it afterwards.
func TestMain(m *testing.M) { testenv.Main(m) }

// propagationLimit is the live catalog's promise (README, "Live
// catalog"): a change made through one instance is served by the others
// within it.
const propagationLimit = time.Second

// deployment is deploy/nginx run as README describes: two instances on
// one database with the same secrets, nginx in front.
type deployment struct {
	a, b  *instance
	nginx *nginx
	// port is nginx's port, which the tenants' hosts name.
	port  string
	token string
}

// front is the tenant deploy/nginx/tenantry.yaml seeds, on nginx's
// address.
func (d *deployment) front() string { return "localhost:" + d.port }

// TestTwoInstancesBehindNginx runs deploy/nginx: nginx spreads requests
// over both instances, the catalog changed through one is served by the
// other within a second, and a flash message survives a switch of
// instance.
func TestTwoInstancesBehindNginx(t *testing.T) {
	nginxBin, err := exec.LookPath("nginx")
	if err != nil {
		// Debian installs it in /usr/sbin, which a non-root PATH lacks.
		nginxBin, err = exec.LookPath("/usr/sbin/nginx")
	}
	testenv.RequireTool(t, "nginx", err == nil)
	d := deploy(t, nginxBin)

	t.Run("both instances serve through nginx", func(t *testing.T) { testSpread(t, d) })
	t.Run("oversized body answered by tenantry", func(t *testing.T) { testOversized(t, d) })
	t.Run("catalog change through A served by B", func(t *testing.T) { testCatalog(t, d) })
	t.Run("flash message across instances", func(t *testing.T) { testFlash(t, d) })
}

// deploy starts the deployment on a fresh database. Only what a test must
// choose for itself differs from the examples: the ports (nginx's in the
// tenants' hosts too), nginx's log and temporary paths, and the database.
func deploy(t *testing.T, nginxBin string) *deployment {
	t.Helper()
	bin := testenv.Binary(t)
	db := testenv.Postgres(t)
	d := &deployment{port: testenv.Port(testenv.FreeAddr(t)), token: testenv.Unique("admin-token")}
	config := filepath.Join(t.TempDir(), "tenantry.yaml")
	write(t, config, substitute(t, "deploy/nginx/tenantry.yaml", exampleFile(t, "tenantry.yaml"),
		"localhost:8080", d.front(), "127.0.0.1:8080", "127.0.0.1:"+d.port))
	// The secrets come from the environment, as deploy/README.md says,
	// and are the same for both instances.
	env := []string{
		"TENANTRY_WEB_SESSION_KEY=" + testenv.Unique("session-key"),
		"TENANTRY_ADMIN_TOKEN=" + d.token,
		"TENANTRY_DATABASE_DSN=" + db.DSN,
	}
	d.a = startInstance(t, bin, config, "A", d.front(), env)
	d.b = startInstance(t, bin, config, "B", d.front(), env)
	for _, in := range []*instance{d.a, d.b} {
		if strings.Contains(in.log.String(), "web.session_key is not set") {
			t.Fatalf("instance %s signs with a random key: TENANTRY_WEB_SESSION_KEY did not reach it", in.name)
		}
	}
	d.nginx = startNginx(t, nginxBin, "127.0.0.1:"+d.port, [2]string{d.a.addr, d.b.addr})
	// Before nginx stops, so that it has no client connection to wait for.
	t.Cleanup(client.CloseIdleConnections)
	return d
}

// testSpread sends requests through nginx, each with its own request id,
// and finds each id in exactly one instance's access lines, with both
// instances among them; nginx's access line names the same instance.
func testSpread(t *testing.T, d *deployment) {
	const n = 20
	ids := make([]string, n)
	for i := range ids {
		ids[i] = testenv.Unique("spread")
		r := send(t, d.nginx.addr, d.front(), http.MethodGet, "/api/tenant", nil, "X-Request-ID", ids[i])
		if r.status != http.StatusOK || tenantName(r.body) != "front" {
			t.Fatalf("GET /api/tenant through nginx = %d %s, want 200 from tenant front", r.status, r.body)
		}
		if got := r.header.Get("X-Request-ID"); got != ids[i] {
			t.Fatalf("X-Request-ID through nginx = %q, want the client's %q", got, ids[i])
		}
	}
	served := map[string]int{}
	for _, id := range ids {
		in := servedBy(t, d, id)
		served[in.name]++
		if got, want := nginxUpstream(t, d.nginx, id), in.addr; got != want {
			t.Errorf("request %s: nginx's access line names upstream %q, tenantry's access line instance %s (%s)", id, got, in.name, want)
		}
	}
	t.Logf("%d requests through nginx: %d served by A, %d by B", n, served["A"], served["B"])
	if served["A"] == 0 || served["B"] == 0 {
		t.Errorf("served by A %d times and by B %d times, want both", served["A"], served["B"])
	}

	// Without an id from the client, nginx makes one, and both logs
	// carry it.
	r := send(t, d.nginx.addr, d.front(), http.MethodGet, "/api/tenant", nil)
	id := r.header.Get("X-Request-ID")
	if !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(id) {
		t.Fatalf("X-Request-ID without a client id = %q, want nginx's $request_id (32 hex digits)", id)
	}
	in := servedBy(t, d, id)
	if got := nginxUpstream(t, d.nginx, id); got != in.addr {
		t.Errorf("request %s: nginx's access line names upstream %q, want %s (%s)", id, got, in.name, in.addr)
	}
}

// testOversized sends a body over server.max_body_bytes through nginx:
// client_max_body_size lets it through, nginx's worker buffers it in a
// temporary file, and the answer is tenantry's 413 problem+json, not
// nginx's own page.
func testOversized(t *testing.T, d *deployment) {
	body := `{"name":"` + strings.Repeat("x", 3<<19) + `"}` // 1.5 MiB
	r := send(t, d.nginx.addr, d.front(), http.MethodPost, "/api/users", strings.NewReader(body), "Content-Type", "application/json")
	if ct := r.header.Get("Content-Type"); r.status != http.StatusRequestEntityTooLarge || !strings.HasPrefix(ct, "application/problem+json") {
		t.Fatalf("POST of 1.5 MiB through nginx = %d %s, want tenantry's 413 problem+json: %.300s", r.status, ct, r.body)
	}
}

// testCatalog adds a tenant through A's admin API, with a host on nginx's
// address, and moves that host to another tenant, each time polling B
// until it serves the change.
func testCatalog(t *testing.T, d *deployment) {
	host := "north.localhost:" + d.port
	steps := []struct {
		name   string
		change func()
		want   string // the tenant B must serve host as
	}{
		{"add tenant north", func() {
			admin(t, d.a, d.token, http.MethodPost, "/admin/tenants", `{"name":"north","hosts":["`+host+`"]}`, http.StatusCreated)
		}, "north"},
		{"move the host to south", func() {
			admin(t, d.a, d.token, http.MethodPost, "/admin/tenants", `{"name":"south","hosts":["south.localhost:`+d.port+`"]}`, http.StatusCreated)
			admin(t, d.a, d.token, http.MethodDelete, "/admin/tenants/north/hosts/"+url.PathEscape(host), "", http.StatusNoContent)
			admin(t, d.a, d.token, http.MethodPost, "/admin/tenants/south/hosts", `{"host":"`+host+`"}`, http.StatusOK)
		}, "south"},
	}
	for _, s := range steps {
		s.change()
		// Polled for longer than the promise, so that a slow propagation
		// is reported with its delay rather than as a timeout.
		took := testenv.Eventually(t, 5*time.Second, func() bool {
			r, ok := trySend(d.b.addr, host, http.MethodGet, "/api/tenant", nil)
			return ok && r.status == http.StatusOK && tenantName(r.body) == s.want
		}, "B serving ", host, " as ", s.want, " after ", s.name, " through A")
		t.Logf("%s through A: served by B %v after A acknowledged it", s.name, took.Round(time.Millisecond))
		if took > propagationLimit {
			t.Errorf("%s through A: B served it %v after A acknowledged it, want under %v", s.name, took, propagationLimit)
		}
		// And through nginx, from whichever instance it picks: twice,
		// since it takes turns.
		for range 2 {
			r := send(t, d.nginx.addr, host, http.MethodGet, "/api/tenant", nil)
			if r.status != http.StatusOK || tenantName(r.body) != s.want {
				t.Errorf("after %s, GET /api/tenant through nginx with Host %s = %d %s, want 200 from %s", s.name, host, r.status, r.body, s.want)
			}
		}
	}
}

// testFlash adds a user with the form on one instance and follows the
// redirect on the other, carrying the cookies as a browser would: the
// page shows the message. First straight to A then B, with nginx's Host;
// then through nginx, until it has sent the two requests to different
// instances.
func testFlash(t *testing.T, d *deployment) {
	t.Run("A then B", func(t *testing.T) {
		flashAcross(t, d, d.a.addr, d.b.addr)
	})
	t.Run("through nginx", func(t *testing.T) {
		for attempt := 1; ; attempt++ {
			post, get := flashAcross(t, d, d.nginx.addr, d.nginx.addr)
			from, to := servedBy(t, d, post), servedBy(t, d, get)
			if from != to {
				t.Logf("through nginx: the form post was served by %s, the page by %s (attempt %d)", from.name, to.name, attempt)
				return
			}
			// nginx takes turns, so a second pair switches; allow for
			// the odd retry all the same.
			if attempt == 5 {
				t.Fatalf("nginx sent the form post and the page to the same instance %d times", attempt)
			}
		}
	})
}

// flashAcross posts the add-user form to postAddr and follows the
// redirect on getAddr with the cookies the post set, both with the front
// tenant's Host; the page must show the message. It returns the two
// requests' ids.
func flashAcross(t *testing.T, d *deployment, postAddr, getAddr string) (postID, getID string) {
	t.Helper()
	name := testenv.Unique("Ada")
	form := url.Values{"name": {name}, "email": {strings.ToLower(name) + "@example.com"}}
	postID, getID = testenv.Unique("post"), testenv.Unique("get")
	r := send(t, postAddr, d.front(), http.MethodPost, "/users", strings.NewReader(form.Encode()),
		"Content-Type", "application/x-www-form-urlencoded", "X-Request-ID", postID)
	loc := r.header.Get("Location")
	if r.status != http.StatusSeeOther || loc == "" {
		t.Fatalf("POST /users = %d (Location %q), want 303 with a Location: %s", r.status, loc, r.body)
	}
	var cookies []string
	for _, c := range r.cookies {
		cookies = append(cookies, c.Name+"="+c.Value)
	}
	if len(cookies) == 0 {
		t.Fatal("POST /users set no cookie, want the flash cookie")
	}
	r = send(t, getAddr, d.front(), http.MethodGet, loc, nil, "Cookie", strings.Join(cookies, "; "), "X-Request-ID", getID)
	want := "User " + name + " added"
	if r.status != http.StatusOK || !strings.Contains(r.body, want) {
		t.Fatalf("GET %s after the post = %d, want 200 showing %q; page:\n%.1500s", loc, r.status, want, r.body)
	}
	return postID, getID
}

// servedBy is the instance whose access line carries the request id,
// waiting for the line: it is written after the answer is sent. An id in
// both instances' logs fails t: nginx sent the request twice.
func servedBy(t *testing.T, d *deployment, id string) *instance {
	t.Helper()
	var found []*instance
	testenv.Eventually(t, 5*time.Second, func() bool {
		found = found[:0]
		for _, in := range []*instance{d.a, d.b} {
			if strings.Contains(in.log.String(), "msg=request server=tenants request_id="+id+" ") {
				found = append(found, in)
			}
		}
		return len(found) > 0
	}, "an access line with request_id=", id)
	if len(found) > 1 {
		t.Fatalf("request %s was served by both instances", id)
	}
	return found[0]
}

// nginxUpstream is the upstream address nginx's access line for the
// request id names, waiting for the line.
func nginxUpstream(t *testing.T, n *nginx, id string) string {
	t.Helper()
	var upstream string
	testenv.Eventually(t, 5*time.Second, func() bool {
		f, err := os.Open(n.accessLog)
		if err != nil {
			return false
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			line := sc.Text()
			if !strings.Contains(line, " request_id="+id+" ") {
				continue
			}
			if m := regexp.MustCompile(` upstream=(\S+) `).FindStringSubmatch(line); m != nil {
				upstream = m[1]
				return true
			}
		}
		return false
	}, "nginx's access line with request_id=", id)
	return upstream
}

// admin sends one request to in's admin API and fails t unless it is
// answered want.
func admin(t *testing.T, in *instance, token, method, path, body string, want int) {
	t.Helper()
	var r io.Reader
	header := []string{"Authorization", "Bearer " + token}
	if body != "" {
		r = strings.NewReader(body)
		header = append(header, "Content-Type", "application/json")
	}
	if got := send(t, in.admin, in.admin, method, path, r, header...); got.status != want {
		t.Fatalf("%s %s on %s's admin API = %d, want %d: %s", method, path, in.name, got.status, want, got.body)
	}
}

// response is what send read of an answer.
type response struct {
	status  int
	header  http.Header
	cookies []*http.Cookie
	body    string
}

// client follows no redirects: the tests look at the 303 themselves.
var client = &http.Client{
	Timeout:       5 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// send sends one request to addr with the Host header host and the
// header names and values given in pairs, failing t if it gets no answer.
func send(t *testing.T, addr, host, method, path string, body io.Reader, header ...string) response {
	t.Helper()
	r, err := request(addr, host, method, path, body, header...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// trySend is send for polling: ok is false when there was no answer.
func trySend(addr, host, method, path string, body io.Reader, header ...string) (r response, ok bool) {
	r, err := request(addr, host, method, path, body, header...)
	return r, err == nil
}

func request(addr, host, method, path string, body io.Reader, header ...string) (response, error) {
	req, err := http.NewRequest(method, "http://"+addr+path, body)
	if err != nil {
		return response{}, err
	}
	req.Host = host
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return response{}, err
	}
	return response{status: resp.StatusCode, header: resp.Header, cookies: resp.Cookies(), body: string(b)}, nil
}

// tenantName is the name in a GET /api/tenant answer, or "".
func tenantName(body string) string {
	var v struct {
		Name string `json:"name"`
	}
	_ = json.Unmarshal([]byte(body), &v)
	return v.Name
}
