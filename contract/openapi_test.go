package contract

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/gin-gonic/gin"

	"tenantry/config"
	"tenantry/database"
	"tenantry/internal/testenv"
	"tenantry/tenants"
)

// loadOpenAPI loads openapi.yaml, the document main embeds, and fails t
// unless it is a valid OpenAPI 3.1 document whose examples match their
// schemas.
func loadOpenAPI(t *testing.T) *openapi3.T {
	t.Helper()
	return loadDocument(t, "openapi.yaml", testenv.OpenAPI(t))
}

// loadDocument loads the OpenAPI document named name from data and fails t
// unless it is a valid OpenAPI 3.1 document whose examples match their
// schemas.
func loadDocument(t *testing.T, name string, data []byte) *openapi3.T {
	t.Helper()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(data)
	if err != nil {
		t.Fatalf("load %s: %v", name, err)
	}
	if err := doc.Validate(loader.Context, openapi3.EnableExamplesValidation(),
		openapi3.EnableSchemaFormatValidation(), openapi3.EnableSchemaPatternValidation()); err != nil {
		t.Fatalf("%s is not valid: %v", name, err)
	}
	if doc.OpenAPI != "3.1.0" || !doc.IsOpenAPI31OrLater() {
		t.Fatalf("%s: openapi = %q, want 3.1.0", name, doc.OpenAPI)
	}
	return doc
}

// operation is one operation of the document.
type operation struct {
	method, path string
	op           *openapi3.Operation
}

func (o operation) String() string { return o.method + " " + o.path }

// operations lists the document's operations in a stable order.
func operations(doc *openapi3.T) []operation {
	var ops []operation
	for _, path := range doc.Paths.InMatchingOrder() {
		for method, op := range doc.Paths.Value(path).Operations() {
			ops = append(ops, operation{method: method, path: path, op: op})
		}
	}
	slices.SortFunc(ops, func(a, b operation) int { return strings.Compare(a.String(), b.String()) })
	return ops
}

// TestOpenAPIDocument checks what a reader of the document relies on
// beyond its validity: every operation is named and tagged, and every
// parameter and every JSON body, sent or received, comes with an example.
func TestOpenAPIDocument(t *testing.T) {
	checkDocument(t, loadOpenAPI(t))
}

// checkDocument fails t for an operation of doc without an operationId, a
// summary or a tag, and for a parameter or a JSON body without an example.
func checkDocument(t *testing.T, doc *openapi3.T) {
	t.Helper()
	ids := map[string]bool{}
	for _, o := range operations(doc) {
		switch {
		case o.op.OperationID == "":
			t.Errorf("%s: no operationId", o)
		case ids[o.op.OperationID]:
			t.Errorf("%s: operationId %q used twice", o, o.op.OperationID)
		}
		ids[o.op.OperationID] = true
		if o.op.Summary == "" || len(o.op.Tags) == 0 {
			t.Errorf("%s: want a summary and a tag", o)
		}
		params := slices.Concat(doc.Paths.Value(o.path).Parameters, o.op.Parameters)
		for _, p := range params {
			if p.Value.Example == nil && len(p.Value.Examples) == 0 {
				t.Errorf("%s: %s parameter %s has no examples", o, p.Value.In, p.Value.Name)
			}
		}
		if rb := o.op.RequestBody; rb != nil {
			for mt, media := range rb.Value.Content {
				if len(media.Examples) == 0 {
					t.Errorf("%s: request body %s has no examples", o, mt)
				}
			}
		}
		for status, resp := range o.op.Responses.Map() {
			for mt, media := range resp.Value.Content {
				if strings.HasSuffix(mt, "json") && len(media.Examples) == 0 && media.Example == nil {
					t.Errorf("%s: response %s %s has no examples", o, status, mt)
				}
			}
		}
	}
}

// TestServerMatchesOpenAPI runs the service and sends requests that cause
// every documented status of every operation, checking each response
// (status, headers and body) against the document with openapi3filter,
// and each request that succeeds against the document's request schemas.
// It fails on a response the document does not describe, on a documented
// status that no request caused, and on a tenant route missing from the
// document or an operation missing from the router.
func TestServerMatchesOpenAPI(t *testing.T) {
	for _, driver := range testenv.Drivers {
		t.Run(driver, func(t *testing.T) {
			t.Parallel()
			doc := loadOpenAPI(t)
			env := testenv.Start(t, driver, func(c *config.Config) {
				// A body that stops arriving is a 408 after this.
				c.Server.ReadTimeout, c.Server.ReadHeaderTimeout = 2*time.Second, 2*time.Second
			})
			c := newChecker(t, doc)

			checkRoutes(t, doc, env.App.Handler)
			exerciseEveryStatus(t, c, env)
			c.checkEveryStatusSeen(t, nil)
		})
	}
}

// checkEveryStatusSeen fails t for a documented status of an operation that
// no request caused, except those listed in excused ("operationId status"
// → why this run cannot cause it).
func (c *checker) checkEveryStatusSeen(t *testing.T, excused map[string]string) {
	t.Helper()
	for _, o := range operations(c.doc) {
		for status := range o.op.Responses.Map() {
			code, err := strconv.Atoi(status)
			if err != nil {
				t.Errorf("%s: response %q is not a status code", o, status)
				continue
			}
			if why, ok := excused[o.op.OperationID+" "+status]; ok {
				t.Logf("%s: status %d not caused here: %s", o, code, why)
				continue
			}
			if !c.seen[o.op.OperationID][code] {
				t.Errorf("%s: documented status %d was never answered", o, code)
			}
		}
	}
}

// checker sends requests and checks the responses against the document.
type checker struct {
	doc    *openapi3.T
	name   string // the document's file, for messages
	router routers.Router
	seen   map[string]map[int]bool // operationId → statuses answered
	// auth checks a request's credentials against the document's security
	// schemes; nil for a document without any.
	auth openapi3filter.AuthenticationFunc
}

func newChecker(t *testing.T, doc *openapi3.T) *checker {
	t.Helper()
	// The servers list real tenant hosts; the checker matches operations
	// by path alone so that it can follow requests to any host.
	doc.Servers = nil
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatalf("router: %v", err)
	}
	return &checker{doc: doc, name: "openapi.yaml", router: router, seen: map[string]map[int]bool{}}
}

// exchange is one request and the status it must get.
type exchange struct {
	method, url string
	host        string // Host header, when not the URL's
	auth        string // Authorization header, when set
	from        string // loopback source address (127.0.0.2, ...), when not the default
	contentType string
	body        string
	key         string // Idempotency-Key header, when set
	want        int
	// stall sends half of body and then nothing more, as a client that
	// stopped sending would, until the answer comes (server.read_timeout).
	stall bool
	// docAllows says that the server refuses the request for a reason the
	// document cannot state (a limit of the database's layout), so the
	// document must allow it rather than reject it.
	docAllows bool
}

func (x exchange) String() string {
	s := x.method + " " + x.url
	if x.host != "" {
		s += " (Host: " + x.host + ")"
	}
	return s
}

// do sends x, checks the status and validates the response against the
// document. It returns the response body.
func (c *checker) do(t *testing.T, x exchange) []byte {
	t.Helper()
	var body io.Reader = strings.NewReader(x.body)
	if x.stall {
		answered := make(chan struct{})
		defer close(answered)
		body = io.MultiReader(strings.NewReader(x.body[:len(x.body)/2]), stalled(answered))
	}
	req, err := http.NewRequest(x.method, x.url, body)
	if err != nil {
		t.Fatalf("%s: %v", x, err)
	}
	if x.stall {
		req.ContentLength = int64(len(x.body))
	}
	if x.host != "" {
		req.Host = x.host
	}
	if x.contentType != "" {
		req.Header.Set("Content-Type", x.contentType)
	}
	if x.auth != "" {
		req.Header.Set("Authorization", x.auth)
	}
	if x.key != "" {
		req.Header.Set("Idempotency-Key", x.key)
	}
	client := http.DefaultClient
	if x.from != "" {
		// A client of its own, so that what the server keys on the
		// caller's address (the admin token throttle) sees another caller.
		tr := &http.Transport{DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(x.from)}}).DialContext}
		defer tr.CloseIdleConnections()
		client = &http.Client{Transport: tr}
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s: %v", x, err)
	}
	respBody, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		t.Fatalf("%s: read body: %v", x, err)
	}
	if resp.StatusCode != x.want {
		t.Errorf("%s: status %d, want %d; body %s", x, resp.StatusCode, x.want, respBody)
	}

	// Validate against a fresh copy of the request, whose body can be read.
	vreq, _ := http.NewRequest(x.method, x.url, strings.NewReader(x.body))
	vreq.Header = req.Header.Clone()
	route, params, err := c.router.FindRoute(vreq)
	if err != nil {
		t.Errorf("%s: no operation in %s: %v", x, c.name, err)
		return respBody
	}
	opts := &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true, AuthenticationFunc: c.auth}
	in := &openapi3filter.RequestValidationInput{Request: vreq, PathParams: params, Route: route, Options: opts}
	ctx := context.Background()
	switch {
	case resp.StatusCode < 300 || x.docAllows:
		if err := openapi3filter.ValidateRequest(ctx, in); err != nil {
			t.Errorf("%s: the server answered %d but the document says the request is invalid: %v", x, resp.StatusCode, err)
		}
	case rejectsRequest(resp.StatusCode):
		if err := openapi3filter.ValidateRequest(ctx, in); err == nil {
			t.Errorf("%s: the server refused the request (%d) but the document allows it", x, resp.StatusCode)
		}
	}
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: resp.StatusCode, Header: resp.Header, Options: opts}
	out.SetBodyBytes(respBody)
	if err := openapi3filter.ValidateResponse(ctx, out); err != nil {
		t.Errorf("%s: response does not match %s: %v\nbody: %s", x, c.name, err, respBody)
	}
	if r := route.Operation.Responses.Status(resp.StatusCode); r != nil && len(r.Value.Content) == 0 && len(respBody) > 0 {
		t.Errorf("%s: the document gives status %d no body, got %q", x, resp.StatusCode, respBody)
	}
	id := route.Operation.OperationID
	if c.seen[id] == nil {
		c.seen[id] = map[int]bool{}
	}
	c.seen[id][resp.StatusCode] = true
	return respBody
}

// stalled is a body that sends nothing more until done is closed.
type stalled <-chan struct{}

func (s stalled) Read([]byte) (int, error) {
	<-s
	return 0, io.EOF
}

// rejectsRequest reports whether status says the request itself breaks the
// operation's contract (its credentials, query, media type or body), which
// the document must then reject too: it may not be looser than the server.
func rejectsRequest(status int) bool {
	switch status {
	case http.StatusBadRequest, http.StatusUnauthorized, http.StatusUnsupportedMediaType, http.StatusUnprocessableEntity:
		return true
	}
	return false
}

// checkRoutes fails t for a tenant API route (/api/..., /healthz, /readyz,
// /openapi.yaml) that the document lacks, and for an operation of the
// document that the router does not serve. Other routes, such as HTML
// pages, are not part of this document.
func checkRoutes(t *testing.T, doc *openapi3.T, h http.Handler) {
	t.Helper()
	for {
		u, ok := h.(interface{ Unwrap() http.Handler })
		if !ok {
			break
		}
		h = u.Unwrap()
	}
	e, ok := h.(*gin.Engine)
	if !ok {
		t.Fatalf("the app's handler is a %T, not a *gin.Engine; list its routes another way", h)
	}
	var api gin.RoutesInfo
	for _, r := range e.Routes() {
		if strings.HasPrefix(r.Path, "/api/") || slices.Contains([]string{"/healthz", "/readyz", "/openapi.yaml"}, r.Path) {
			api = append(api, r)
		}
	}
	compareRoutes(t, doc, "openapi.yaml", api)
}

// compareRoutes fails t for a route that the document named name lacks,
// and for an operation of the document that is not among routes.
func compareRoutes(t *testing.T, doc *openapi3.T, name string, routes gin.RoutesInfo) {
	t.Helper()
	served := map[string]bool{}
	for _, r := range routes {
		path := ginPathToOpenAPI(r.Path)
		served[r.Method+" "+path] = true
		if item := doc.Paths.Value(path); item == nil || item.GetOperation(r.Method) == nil {
			t.Errorf("route %s %s is served but not in %s", r.Method, path, name)
		}
	}
	for _, o := range operations(doc) {
		if !served[o.String()] {
			t.Errorf("%s has %s, which the server does not route", name, o)
		}
	}
}

// ginPathToOpenAPI turns /api/users/:id into /api/users/{id}.
func ginPathToOpenAPI(p string) string {
	parts := strings.Split(p, "/")
	for i, s := range parts {
		if strings.HasPrefix(s, ":") || strings.HasPrefix(s, "*") {
			parts[i] = "{" + s[1:] + "}"
		}
	}
	return strings.Join(parts, "/")
}

// probe is a well-formed request to one tenant operation, used where only
// the tenant's state decides the answer (suspended, migrating, unknown
// host, catalog down).
type probe struct {
	method, path, contentType, body string
}

func probes(userID string) []probe {
	valid := `{"name":"Probe","email":"probe@example.com"}`
	return []probe{
		{http.MethodGet, "/api/tenant", "", ""},
		{http.MethodGet, "/openapi.yaml", "", ""},
		{http.MethodGet, "/api/users", "", ""},
		{http.MethodPost, "/api/users", "application/json", valid},
		{http.MethodGet, "/api/users/" + userID, "", ""},
		{http.MethodPut, "/api/users/" + userID, "application/json", valid},
		{http.MethodPatch, "/api/users/" + userID, "application/merge-patch+json", `{"name":"Probe"}`},
		{http.MethodDelete, "/api/users/" + userID, "", ""},
	}
}

// exerciseEveryStatus walks tenant1 through every documented answer, then
// tenant2 through suspension and a pending migration, and finally closes
// the database to cause the 500s and the readiness 503. It leaves the
// service without a database: it must run last.
func exerciseEveryStatus(t *testing.T, c *checker, env *testenv.Env) {
	u1 := env.URL1
	const (
		js    = "application/json"
		merge = "application/merge-patch+json"
	)
	big := `{"name":"` + strings.Repeat("x", 1<<20) + `","email":"big@example.com"}`

	c.do(t, exchange{method: "GET", url: u1 + "/healthz", want: 200})
	c.do(t, exchange{method: "GET", url: u1 + "/healthz", host: "nobody.invalid", want: 200})
	c.do(t, exchange{method: "GET", url: u1 + "/readyz", want: 200})
	if got := c.do(t, exchange{method: "GET", url: u1 + "/openapi.yaml", want: 200}); !bytes.Equal(got, testenv.OpenAPI(t)) {
		t.Errorf("GET /openapi.yaml does not serve openapi.yaml byte for byte")
	}
	if got := c.do(t, exchange{method: "GET", url: u1 + "/api/tenant", want: 200}); !strings.Contains(string(got), `"name":"tenant1"`) {
		t.Errorf("GET /api/tenant on tenant1: %s", got)
	}

	// Create, with every way to get it wrong.
	ada := parseID(t, c.do(t, exchange{method: "POST", url: u1 + "/api/users", contentType: js,
		body: `{"name":" Ada Lovelace ","email":"Ada@Example.com"}`, want: 201}))
	bob := parseID(t, c.do(t, exchange{method: "POST", url: u1 + "/api/users", contentType: js,
		body: `{"name":"Bob","email":"bob@example.com"}`, want: 201}))
	for _, x := range []exchange{
		{body: `{"name":"Ada again","email":"ada@example.com"}`, contentType: js, want: 409},
		{body: `{"name":"Ada",`, contentType: js, want: 400},
		{body: ``, contentType: js, want: 400},
		{body: `{"name":"Ada","email":"ada2@example.com"}`, contentType: "text/plain", want: 415},
		{body: big, contentType: js, want: 413},
		{body: `{"name":"Slow","email":"slow@example.com"}`, contentType: js, stall: true, want: 408},
		{body: `{}`, contentType: js, want: 422},
		{body: `{"name":"","email":"not-an-email"}`, contentType: js, want: 422},
		{body: `{"name":"Ada","email":"ada3@example.com","admin":true}`, contentType: js, want: 422},
		{body: `{"name":42,"email":"ada4@example.com"}`, contentType: js, want: 422},
	} {
		x.method, x.url = "POST", u1+"/api/users"
		c.do(t, x)
	}

	// List and show.
	for _, x := range []exchange{
		{url: "/api/users", want: 200},
		{url: "/api/users?limit=1&offset=1", want: 200},
		{url: "/api/users?limit=500", want: 200},
		{url: "/api/users?offset=100", want: 200},
		{url: "/api/users?limit=0", want: 400},
		{url: "/api/users?limit=501&offset=-1", want: 400},
		{url: "/api/users?limit=ten", want: 400},
		{url: "/api/users/" + ada, want: 200},
		{url: "/api/users/999999", want: 404},
		{url: "/api/users/0", want: 404},
	} {
		x.method, x.url = "GET", u1+x.url
		c.do(t, x)
	}

	// Replace and update.
	for _, method := range []string{"PUT", "PATCH"} {
		ok := `{"name":"Ada King","email":"ada.king@example.com"}`
		types := []string{js}
		if method == "PATCH" {
			ok, types = `{"name":"Ada K."}`, []string{js, merge}
		}
		for _, ct := range types {
			c.do(t, exchange{method: method, url: u1 + "/api/users/" + ada, contentType: ct, body: ok, want: 200})
		}
		for _, x := range []exchange{
			{url: "/api/users/" + ada, body: `{"name":"Ada","email":"bob@example.com"}`, want: 409},
			{url: "/api/users/" + ada, body: `[1,2]`, want: 400},
			{url: "/api/users/" + ada, body: ok, contentType: "application/xml", want: 415},
			{url: "/api/users/" + ada, body: big, want: 413},
			{url: "/api/users/" + ada, body: ok, stall: true, want: 408},
			{url: "/api/users/" + ada, body: `{"email":"nope"}`, want: 422},
			{url: "/api/users/999999", body: `{"name":"Nobody","email":"nobody@example.com"}`, want: 404},
		} {
			x.method, x.url = method, u1+x.url
			if x.contentType == "" {
				x.contentType = js
			}
			c.do(t, x)
		}
	}

	// Delete.
	c.do(t, exchange{method: "DELETE", url: u1 + "/api/users/" + bob, want: 204})
	c.do(t, exchange{method: "DELETE", url: u1 + "/api/users/" + bob, want: 404})
	exerciseIdempotencyKeys(t, c, env)

	// Another tenant does not see tenant1's user, and an unknown host is
	// no tenant at all.
	c.do(t, exchange{method: "GET", url: env.URL2 + "/api/users/" + ada, want: 404})
	for _, p := range probes(ada) {
		c.do(t, exchange{method: p.method, url: u1 + p.path, host: "nobody.invalid:1", contentType: p.contentType, body: p.body, want: 404})
	}

	ctx := context.Background()
	// A suspended tenant answers 403 on every route.
	if _, err := env.App.Catalog.SetStatus(ctx, "tenant2", tenants.StatusSuspended); err != nil {
		t.Fatal(err)
	}
	for _, p := range probes("1") {
		c.do(t, exchange{method: p.method, url: env.URL2 + p.path, contentType: p.contentType, body: p.body, want: 403})
	}
	if _, err := env.App.Catalog.SetStatus(ctx, "tenant2", tenants.StatusActive); err != nil {
		t.Fatal(err)
	}

	// A tenant over its rate answers 429 on every route: one request every
	// 1,000 s, of which the first is spent at once.
	rate, burst, zero := 0.001, 1, 0.0
	if _, err := env.App.Catalog.SetLimits(ctx, "tenant2", tenants.LimitsChange{Rate: &rate, Burst: &burst}); err != nil {
		t.Fatal(err)
	}
	c.do(t, exchange{method: "GET", url: env.URL2 + "/api/users", want: 200})
	for _, p := range probes("1") {
		c.do(t, exchange{method: p.method, url: env.URL2 + p.path, contentType: p.contentType, body: p.body, want: 429})
	}
	if _, err := env.App.Catalog.SetLimits(ctx, "tenant2", tenants.LimitsChange{Rate: &zero, Burst: new(int)}); err != nil {
		t.Fatal(err)
	}

	// A tenant whose data is behind the code's migrations answers 503.
	setSchemaVersion := func(v int) {
		err := env.App.DB.WithContext(ctx).Model(&tenants.Tenant{}).Where("name = ?", "tenant2").Update("schema_version", v).Error
		if err != nil {
			t.Fatal(err)
		}
		env.App.Resolver.Invalidate()
	}
	t2, err := env.App.Catalog.Get(ctx, "tenant2")
	if err != nil {
		t.Fatal(err)
	}
	setSchemaVersion(0)
	for _, p := range probes("1") {
		c.do(t, exchange{method: p.method, url: env.URL2 + p.path, contentType: p.contentType, body: p.body, want: 503})
	}
	setSchemaVersion(t2.SchemaVersion)
	c.do(t, exchange{method: "GET", url: env.URL2 + "/api/users", want: 200})

	// With the database gone, readiness fails and so does every tenant
	// route whose host must be looked up in the catalog. The cache is
	// dropped after closing, as a catalog change would drop it: while it
	// holds the whole catalog, a host it lacks is unknown (404) without
	// asking, and no reload can fill it again now.
	if err := database.Close(env.App.DB); err != nil {
		t.Fatal(err)
	}
	env.App.Resolver.Invalidate()
	c.do(t, exchange{method: "GET", url: u1 + "/readyz", want: 503})
	for i, p := range probes(ada) {
		c.do(t, exchange{method: p.method, url: u1 + p.path, host: fmt.Sprintf("uncached-%d.invalid", i),
			contentType: p.contentType, body: p.body, want: 500})
	}
}

func parseID(t *testing.T, body []byte) string {
	t.Helper()
	var u struct {
		ID uint64 `json:"id"`
	}
	if err := json.Unmarshal(body, &u); err != nil || u.ID == 0 {
		t.Fatalf("no id in %s", body)
	}
	return strconv.FormatUint(u.ID, 10)
}
