package contract

import (
	"encoding/json"
	"maps"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/routers"

	"tenantry/config"
	"tenantry/internal/testenv"
)

// The Postman files, relative to the module root.
const (
	collectionFile = "postman/tenantry.postman_collection.json"
	collectionV21  = "https://schema.getpostman.com/json/collection/v2.1.0/collection.json"
)

// environmentFiles maps each Postman environment to the default tenant
// (config.Default) whose URL it holds in baseUrl.
var environmentFiles = map[string]string{
	"postman/localhost1.postman_environment.json": "localhost1",
	"postman/localhost2.postman_environment.json": "localhost2",
}

// collection is the part of a Postman v2.1 collection the tests read.
type collection struct {
	Info struct {
		Name   string `json:"name"`
		Schema string `json:"schema"`
	} `json:"info"`
	Item  []collectionItem  `json:"item"`
	Event []collectionEvent `json:"event"`
	Auth  *collectionAuth   `json:"auth"`
}

// collectionAuth is how a collection or a request authenticates: "bearer"
// with a token, "noauth", or absent to inherit.
type collectionAuth struct {
	Type   string `json:"type"`
	Bearer []struct {
		Key   string `json:"key"`
		Value string `json:"value"`
	} `json:"bearer"`
}

// token returns the bearer token, or "".
func (a *collectionAuth) token() string {
	if a == nil {
		return ""
	}
	for _, kv := range a.Bearer {
		if kv.Key == "token" {
			return kv.Value
		}
	}
	return ""
}

// collectionItem is a folder (Item set) or a request (Request set).
type collectionItem struct {
	Name    string           `json:"name"`
	Item    []collectionItem `json:"item"`
	Request *struct {
		Method string `json:"method"`
		URL    struct {
			Raw string `json:"raw"`
		} `json:"url"`
		Header []struct {
			Key   string `json:"key"`
			Value string `json:"value"`
		} `json:"header"`
		Auth *collectionAuth `json:"auth"`
	} `json:"request"`
	Event    []collectionEvent `json:"event"`
	Response []struct {
		Code   int    `json:"code"`
		Body   string `json:"body"`
		Header []struct {
			Key   string `json:"key"`
			Value string `json:"value"`
		} `json:"header"`
	} `json:"response"`
}

type collectionEvent struct {
	Listen string `json:"listen"`
	Script struct {
		Exec []string `json:"exec"`
	} `json:"script"`
}

// script returns the item's script for an event ("test", "prerequest").
func (it collectionItem) script(listen string) string { return eventScript(it.Event, listen) }

// script returns the collection-level script for an event, which runs
// for every request.
func (c collection) script(listen string) string { return eventScript(c.Event, listen) }

func eventScript(events []collectionEvent, listen string) string {
	var b strings.Builder
	for _, e := range events {
		if e.Listen == listen {
			b.WriteString(strings.Join(e.Script.Exec, "\n"))
		}
	}
	return b.String()
}

// header returns the value of the request header key, or "".
func (it collectionItem) header(key string) string {
	for _, h := range it.Request.Header {
		if strings.EqualFold(h.Key, key) {
			return h.Value
		}
	}
	return ""
}

// request is one request of the collection with the folder it is in.
type request struct {
	folder string
	collectionItem
}

func (r request) String() string { return r.folder + " / " + r.Name }

func loadCollection(t *testing.T) (collection, []request) {
	t.Helper()
	return loadCollectionFile(t, collectionFile)
}

// loadCollectionFile reads the Postman v2.1 collection at collectionFile
// (relative to the module root) and lists its requests.
func loadCollectionFile(t *testing.T, collectionFile string) (collection, []request) {
	t.Helper()
	var c collection
	readJSON(t, collectionFile, &c)
	if c.Info.Schema != collectionV21 {
		t.Fatalf("%s: schema %q, want the v2.1 schema %q", collectionFile, c.Info.Schema, collectionV21)
	}
	var reqs []request
	var walk func(folder string, items []collectionItem)
	walk = func(folder string, items []collectionItem) {
		for _, it := range items {
			switch {
			case it.Request != nil:
				reqs = append(reqs, request{folder: folder, collectionItem: it})
			case len(it.Item) > 0:
				walk(strings.TrimPrefix(folder+" / "+it.Name, " / "), it.Item)
			default:
				t.Errorf("%s: %q is neither a request nor a folder with requests", collectionFile, it.Name)
			}
		}
	}
	walk("", c.Item)
	if len(reqs) == 0 {
		t.Fatalf("%s: no requests", collectionFile)
	}
	return c, reqs
}

func readJSON(t *testing.T, rel string, v any) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testenv.ModuleRoot(t), rel))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", rel, err)
	}
}

var (
	// leadingVar is the base URL variable a request's URL starts with.
	leadingVar = regexp.MustCompile(`^\{\{([A-Za-z]+)\}\}`)
	anyVar     = regexp.MustCompile(`\{\{[^}]*\}\}`)
	// wantStatus finds the status a test script asserts.
	wantStatus = regexp.MustCompile(`pm\.response\.to\.have\.status\((\d{3})\)`)
)

// TestCollectionCoversOpenAPI fails when an operation of openapi.yaml has
// no request in the Postman collection, when the collection calls a route
// that the document lacks, and when a request lacks what the collection
// promises: tests that assert the status, the headers and the body, and a
// saved example response of that status with its headers.
func TestCollectionCoversOpenAPI(t *testing.T) {
	doc := loadOpenAPI(t)
	c := newChecker(t, doc)
	col, reqs := loadCollection(t)

	if !strings.Contains(col.script("test"), "application/problem+json") {
		t.Errorf("the collection-level test script no longer checks that errors are problems")
	}

	covered := map[string]bool{} // operationId → has a request
	opOf := map[string]string{}  // request → operationId
	for _, r := range reqs {
		_, op, ok := operationOf(t, r, map[string]*checker{"baseUrl": c, "otherBaseUrl": c})
		if !ok {
			continue
		}
		covered[op.OperationID], opOf[r.String()] = true, op.OperationID
		checkTestsAndExample(t, r, op, col.script("test"))
	}
	for _, o := range operations(doc) {
		if !covered[o.op.OperationID] {
			t.Errorf("openapi.yaml operation %s (%s) has no request in %s", o.op.OperationID, o, collectionFile)
		}
	}

	// The folders the issue asks for, each doing what its name says.
	byFolder := map[string][]request{}
	for _, r := range reqs {
		byFolder[r.folder] = append(byFolder[r.folder], r)
	}
	for _, f := range []string{"Users CRUD", "Validation errors", "Error cases", "Cross-tenant isolation"} {
		if len(byFolder[f]) == 0 {
			t.Errorf("%s: no folder %q", collectionFile, f)
		}
	}
	codes := map[int]bool{}
	unknownHost := false
	for _, r := range byFolder["Error cases"] {
		if len(r.Response) == 0 {
			continue // reported above
		}
		codes[r.Response[0].Code] = true
		unknownHost = unknownHost || (r.header("Host") != "" && r.Response[0].Code == http.StatusNotFound)
	}
	for _, code := range []int{404, 409, 413, 415} {
		if !codes[code] {
			t.Errorf("folder Error cases: no request answered %d", code)
		}
	}
	if !unknownHost {
		t.Errorf("folder Error cases: no request with a Host header that no tenant has")
	}
	// Isolation: tenant B is asked to list A's user (and must not show it)
	// and to show, replace, update and delete it (and must answer 404).
	askedB := map[string]string{} // operationId → the status asserted
	for _, r := range byFolder["Cross-tenant isolation"] {
		if m := wantStatus.FindStringSubmatch(r.script("test")); m != nil && strings.HasPrefix(r.Request.URL.Raw, "{{otherBaseUrl}}") {
			if id := opOf[r.String()]; askedB[id] != "404" {
				askedB[id] = m[1]
			}
		}
	}
	for id, status := range map[string]string{"listUsers": "200", "getUser": "404", "replaceUser": "404", "updateUser": "404", "deleteUser": "404"} {
		if askedB[id] != status {
			t.Errorf("folder Cross-tenant isolation: no %s request to {{otherBaseUrl}} that wants %s", id, status)
		}
	}
}

// operationOf returns the base URL variable that r's URL starts with and
// the operation it calls in the document of that variable's checker. When
// there is none, it says why on t and returns false.
func operationOf(t *testing.T, r request, checkers map[string]*checker) (string, *openapi3.Operation, bool) {
	t.Helper()
	raw := r.Request.URL.Raw
	base := leadingVar.FindStringSubmatch(raw)
	if base == nil || checkers[base[1]] == nil {
		t.Errorf("%s: URL %q does not start with one of %v", r, raw, slices.Sorted(maps.Keys(checkers)))
		return "", nil, false
	}
	c := checkers[base[1]]
	// Stand a value in for each variable: the router matches paths only.
	path, _, _ := strings.Cut(anyVar.ReplaceAllString(strings.TrimPrefix(raw, base[0]), "1"), "?")
	hreq, err := http.NewRequest(r.Request.Method, "http://tenant.invalid"+path, nil)
	if err == nil {
		var route *routers.Route
		if route, _, err = c.router.FindRoute(hreq); err == nil {
			return base[1], route.Operation, true
		}
	}
	t.Errorf("%s: %s %s is not an operation of %s: %v", r, r.Request.Method, raw, c.name, err)
	return "", nil, false
}

// checkTestsAndExample fails t unless r's tests assert its status, its
// headers and, when it has one, its body, each in a pm.test, and r has a
// saved example of that status, which op documents, with the headers the
// service sends. colTests is the collection-level test script: its checks
// of the headers of every error response count for r's errors.
func checkTestsAndExample(t *testing.T, r request, op *openapi3.Operation, colTests string) {
	t.Helper()
	a := assertionsOf(r.script("test"))
	switch {
	case a.status == "":
		t.Errorf("%s: its test script does not assert the status in a pm.test (pm.response.to.have.status)", r)
		return
	case len(r.Response) == 0:
		t.Errorf("%s: no saved example response", r)
		return
	}
	ex := r.Response[0]
	switch {
	case strconv.Itoa(ex.Code) != a.status:
		t.Errorf("%s: the saved example is a %d, the test wants %s", r, ex.Code, a.status)
	case op.Responses.Status(ex.Code) == nil:
		t.Errorf("%s: the saved example's status %d is not documented for %s", r, ex.Code, op.OperationID)
	}
	if !a.header && !(ex.Code >= 400 && checksErrorHeaders(colTests)) {
		t.Errorf("%s: its test script asserts no header in a pm.test (pm.response.headers, pm.response.to.have.header)", r)
	}
	if ex.Body != "" && !a.body {
		t.Errorf("%s: the response has a body, and its test script asserts nothing about it in a pm.test", r)
	}
	if ex.Code == http.StatusNoContent && ex.Body != "" {
		t.Errorf("%s: the saved 204 example has a body", r)
	}
	var keys []string
	for _, h := range ex.Header {
		keys = append(keys, strings.ToLower(h.Key))
	}
	switch {
	case len(keys) == 0:
		t.Errorf("%s: the saved example has no headers", r)
	case ex.Body != "" && !slices.Contains(keys, "content-type"):
		t.Errorf("%s: the saved example has a body but no Content-Type", r)
	}
}

var (
	// assertsHeader finds an assertion about a response header.
	assertsHeader = regexp.MustCompile(`pm\.response\.headers\.|pm\.response\.to\.(?:not\.)?have\.header\(`)
	// readsBody finds a read of the response body.
	readsBody = regexp.MustCompile(`pm\.response\.(?:json|text)\(\)`)
	// bodyVar finds a variable that holds the response body.
	bodyVar = regexp.MustCompile(`(?:const|let|var)\s+(\w+)\s*=\s*pm\.response\.(?:json|text)\(\)`)
)

// assertions is what the pm.tests of a test script assert about the
// response: the status (as a string, "" if none), headers and the body.
type assertions struct {
	status       string
	header, body bool
}

// assertionsOf reads the pm.test calls of a test script. A pm.test asserts
// the body when it reads it, or uses a variable that holds it.
func assertionsOf(script string) assertions {
	var a assertions
	var vars []*regexp.Regexp
	for _, m := range bodyVar.FindAllStringSubmatch(script, -1) {
		vars = append(vars, regexp.MustCompile(`\b`+m[1]+`\b`))
	}
	for _, test := range pmTests(script) {
		if m := wantStatus.FindStringSubmatch(test); m != nil && a.status == "" {
			a.status = m[1]
		}
		a.header = a.header || assertsHeader.MatchString(test)
		a.body = a.body || readsBody.MatchString(test) ||
			slices.ContainsFunc(vars, func(v *regexp.Regexp) bool { return v.MatchString(test) })
	}
	return a
}

// pmTests returns the source of each pm.test(...) call in script, from
// "pm.test(" to its closing parenthesis, skipping parentheses in strings.
func pmTests(script string) []string {
	var tests []string
	for rest := script; ; {
		i := strings.Index(rest, "pm.test(")
		if i < 0 {
			return tests
		}
		rest = rest[i:]
		depth, quote, end := 0, byte(0), len(rest)
	scan:
		for j := 0; j < len(rest); j++ {
			switch c := rest[j]; {
			case quote != 0 && c == '\\':
				j++
			case quote != 0:
				if c == quote {
					quote = 0
				}
			case c == '\'' || c == '"' || c == '`':
				quote = c
			case c == '(':
				depth++
			case c == ')':
				if depth--; depth == 0 {
					end = j + 1
					break scan
				}
			}
		}
		tests = append(tests, rest[:end])
		rest = rest[end:]
	}
}

// TestAssertionsOf checks the reading of test scripts that
// checkTestsAndExample relies on, so that a request whose tests skip the
// status, the headers or the body is caught.
func TestAssertionsOf(t *testing.T) {
	for _, tc := range []struct {
		name, script string
		want         assertions
	}{
		{"status only", "pm.test('status is 204', () => pm.response.to.have.status(204));", assertions{status: "204"}},
		{"status outside a pm.test", "pm.response.to.have.status(200);", assertions{}},
		{"header and body", `pm.test('status is 200', () => pm.response.to.have.status(200));
pm.test('Content-Type (is) "json"', () => {
    pm.expect(pm.response.headers.get('Content-Type')).to.match(/^application\/json\b/);
});
pm.test('body is ok', () => pm.expect(pm.response.json()).to.eql({ status: 'ok' }));`, assertions{"200", true, true}},
		{"no header, body through a variable", `pm.test('status is 404', () => pm.response.to.have.status(404));
const problem = pm.response.json();
pm.test('problem type', () => pm.expect(problem.type).to.eql('x'));`, assertions{"404", false, true}},
		{"body read but not asserted", `pm.test('status is 201', () => pm.response.to.have.status(201));
pm.test('Location', () => pm.response.to.have.header('Location'));
pm.collectionVariables.set('id', pm.response.json().id);`, assertions{"201", true, false}},
		{"an absent header", "pm.test('no Content-Type', () => pm.response.to.not.have.header('Content-Type'));", assertions{header: true}},
	} {
		if got := assertionsOf(tc.script); got != tc.want {
			t.Errorf("%s: assertionsOf = %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

// checksErrorHeaders reports whether a collection-level test script checks
// the Content-Type and Cache-Control of every error response.
func checksErrorHeaders(colTests string) bool {
	_, errs, ok := strings.Cut(colTests, "if (pm.response.code >= 400) {")
	return ok && strings.Contains(errs, "pm.response.to.have.header('Content-Type', 'application/problem+json')") &&
		strings.Contains(errs, "pm.response.to.have.header('Cache-Control', 'no-store')")
}

// environmentValues returns the enabled variables of a Postman environment.
func environmentValues(t *testing.T, file string) map[string]string {
	t.Helper()
	var env struct {
		Values []struct {
			Key     string `json:"key"`
			Value   string `json:"value"`
			Enabled bool   `json:"enabled"`
		} `json:"values"`
	}
	readJSON(t, file, &env)
	vals := map[string]string{}
	for _, v := range env.Values {
		if v.Enabled {
			vals[v.Key] = v.Value
		}
	}
	return vals
}

// TestPostmanEnvironments checks that the environments point at the
// tenants that `go run .` serves by default.
func TestPostmanEnvironments(t *testing.T) {
	tenantURL := map[string]string{}
	for _, s := range config.Default().Tenants {
		tenantURL[s.Name] = "http://" + s.Hosts[0]
	}
	for file, tenant := range environmentFiles {
		vals := environmentValues(t, file)
		if got, want := vals["baseUrl"], tenantURL[tenant]; got != want || want == "" {
			t.Errorf("%s: baseUrl = %q, want %q (tenant %s of config.Default)", file, got, want, tenant)
		}
		if got := vals["tenantName"]; got != tenant {
			t.Errorf("%s: tenantName = %q, want %q", file, got, tenant)
		}
		other, err := url.Parse(vals["otherBaseUrl"])
		if err != nil || vals["otherBaseUrl"] == vals["baseUrl"] || !slices.Contains(slices.Collect(maps.Values(tenantURL)), vals["otherBaseUrl"]) {
			t.Errorf("%s: otherBaseUrl = %q (%v), want the URL of the other default tenant", file, other, err)
		}
	}
}
