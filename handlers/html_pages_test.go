package handlers_test

import (
	"bytes"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"tenantry/internal/testenv"
)

// browserAccept is the Accept header Chromium sends for a page.
const browserAccept = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/*;q=0.8"

// pageClient talks to the service as a browser does: it keeps cookies per
// host, and so shares them across ports as browsers do, and it does not
// follow redirects, so tests see each 303.
type pageClient struct {
	t *testing.T
	c *http.Client
}

func newPageClient(t *testing.T) *pageClient {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &pageClient{t: t, c: &http.Client{Jar: jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// eachDriver runs test, in parallel, on a service of its own over each
// database, with a fresh page client.
func eachDriver(t *testing.T, test func(t *testing.T, env *testenv.Env, pc *pageClient)) {
	t.Helper()
	for _, driver := range testenv.Drivers {
		t.Run(driver, func(t *testing.T) {
			t.Parallel()
			test(t, testenv.Start(t, driver), newPageClient(t))
		})
	}
}

// pageResponse is a response read whole.
type pageResponse struct {
	status int
	header http.Header
	body   string
}

// do sends a request with browserAccept; hdr holds header name/value
// pairs, where the name "Host" sets the Host header.
func (pc *pageClient) do(method, u string, body io.Reader, hdr ...string) pageResponse {
	pc.t.Helper()
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		pc.t.Fatal(err)
	}
	req.Header.Set("Accept", browserAccept)
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i] == "Host" {
			req.Host = hdr[i+1]
			continue
		}
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := pc.c.Do(req)
	if err != nil {
		pc.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		pc.t.Fatal(err)
	}
	return pageResponse{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

func (pc *pageClient) get(u string, hdr ...string) pageResponse {
	pc.t.Helper()
	return pc.do("GET", u, nil, hdr...)
}

// post sends an urlencoded form the way a browser sends it from a page of
// base's own origin; hdr is added after and may override that.
func (pc *pageClient) post(base, path string, form url.Values, hdr ...string) pageResponse {
	pc.t.Helper()
	h := append([]string{"Content-Type", "application/x-www-form-urlencoded", "Origin", base, "Sec-Fetch-Site", "same-origin"}, hdr...)
	return pc.do("POST", base+path, strings.NewReader(form.Encode()), h...)
}

// postMultipart sends a multipart form from a page of base's own origin.
func (pc *pageClient) postMultipart(base, path string, fields map[string]string) pageResponse {
	pc.t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for k, v := range fields {
		if err := mw.WriteField(k, v); err != nil {
			pc.t.Fatal(err)
		}
	}
	if err := mw.Close(); err != nil {
		pc.t.Fatal(err)
	}
	return pc.do("POST", base+path, &buf, "Content-Type", mw.FormDataContentType(), "Origin", base, "Sec-Fetch-Site", "same-origin")
}

// wantPage checks that r is an HTML page with status holding every string of want.
func wantPage(t *testing.T, r pageResponse, status int, want ...string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status = %d, want %d; body:\n%s", r.status, status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Errorf("Content-Type = %q, want text/html; charset=utf-8", ct)
	}
	for _, w := range want {
		if !strings.Contains(r.body, w) {
			t.Errorf("page lacks %q:\n%s", w, r.body)
		}
	}
}

// wantSeeOther checks a Post/Redirect/Get answer.
func wantSeeOther(t *testing.T, r pageResponse, location string) {
	t.Helper()
	if r.status != http.StatusSeeOther || r.header.Get("Location") != location {
		t.Fatalf("got %d to %q, want 303 to %q; body:\n%s", r.status, r.header.Get("Location"), location, r.body)
	}
}

var addedRe = regexp.MustCompile(`^/users\?page=(\d+)#user-(\d+)$`)

// wantAdded checks the Post/Redirect/Get answer to adding a user: a 303
// to the users page that holds the new user, scrolled to its row. It
// returns that page's number and the user's id.
func wantAdded(t *testing.T, r pageResponse) (page int, id string) {
	t.Helper()
	loc := r.header.Get("Location")
	m := addedRe.FindStringSubmatch(loc)
	if r.status != http.StatusSeeOther || m == nil {
		t.Fatalf("got %d to %q, want 303 to /users?page=N#user-ID; body:\n%s", r.status, loc, r.body)
	}
	page, _ = strconv.Atoi(m[1])
	return page, m[2]
}

// wantProblemJSON checks that r is problem+json with status.
func wantProblemJSON(t *testing.T, r pageResponse, status int) {
	t.Helper()
	if r.status != status || r.header.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("got %d %q, want %d application/problem+json; body:\n%s", r.status, r.header.Get("Content-Type"), status, r.body)
	}
}

var totalRe = regexp.MustCompile(`(\d+) in total`)

// userTotal reads the total from base's users page.
func userTotal(t *testing.T, pc *pageClient, base string) int {
	t.Helper()
	r := pc.get(base + "/users")
	m := totalRe.FindStringSubmatch(r.body)
	if r.status != http.StatusOK || m == nil {
		t.Fatalf("GET %s/users: status %d, no total in:\n%s", base, r.status, r.body)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

var editLinkRe = regexp.MustCompile(`<tr id="user-(\d+)">\s*<td class="name">([^<]*)</td>`)

// userID finds the id of the user called name on base's first users page.
func pageUserID(t *testing.T, pc *pageClient, base, name string) string {
	t.Helper()
	r := pc.get(base + "/users")
	for _, m := range editLinkRe.FindAllStringSubmatch(r.body, -1) {
		if m[2] == name {
			return m[1]
		}
	}
	t.Fatalf("no user %q on %s/users:\n%s", name, base, r.body)
	return ""
}

// addUser adds a user through tenant base's form and returns its id.
func addUser(t *testing.T, pc *pageClient, base, name, email string) string {
	t.Helper()
	_, id := wantAdded(t, pc.post(base, "/users", url.Values{"name": {name}, "email": {email}}))
	return id
}
