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
		Code int    `json:"code"`
		Body string `json:"body"`
	} `json:"response"`
}

type collectionEvent struct {
	Listen string `json:"listen"`
	Script struct {
		Exec []string `json:"exec"`
	} `json:"script"`
}

// script returns the item's script for an event ("test", "prerequest").
func (it collectionItem) script(listen string) string {
	var b strings.Builder
	for _, e := range it.Event {
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
// promises: tests that assert the status, and a saved example response of
// that status.
func TestCollectionCoversOpenAPI(t *testing.T) {
	doc := loadOpenAPI(t)
	c := newChecker(t, doc)
	col, reqs := loadCollection(t)

	if !strings.Contains(strings.Join(col.Event[0].Script.Exec, "\n"), "application/problem+json") {
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
		checkTestsAndExample(t, r, op)
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

// checkTestsAndExample fails t unless r's test script asserts its status in
// a pm.test and r has a saved example of that status, which op documents.
func checkTestsAndExample(t *testing.T, r request, op *openapi3.Operation) {
	t.Helper()
	tests := r.script("test")
	m := wantStatus.FindStringSubmatch(tests)
	switch {
	case !strings.Contains(tests, "pm.test("):
		t.Errorf("%s: no pm.test in its test script", r)
	case m == nil:
		t.Errorf("%s: its test script does not assert the status (pm.response.to.have.status)", r)
	case len(r.Response) == 0:
		t.Errorf("%s: no saved example response", r)
	case strconv.Itoa(r.Response[0].Code) != m[1]:
		t.Errorf("%s: the saved example is a %d, the test wants %s", r, r.Response[0].Code, m[1])
	case op.Responses.Status(r.Response[0].Code) == nil:
		t.Errorf("%s: the saved example's status %d is not documented for %s", r, r.Response[0].Code, op.OperationID)
	}
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
