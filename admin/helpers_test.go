package admin_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"tenantry/admin"
	"tenantry/internal/testenv"
)

const token = "test-admin-token-0123456789"

// fixture is a running service (two tenants on two real listeners) with
// the admin API served over the same catalog, as app.Serve wires it.
type fixture struct {
	env   *testenv.Env
	admin *admin.Server
	url   string
}

func start(t *testing.T, driver string) *fixture {
	t.Helper()
	env := testenv.Start(t, driver)
	srv, err := admin.NewServer(admin.Deps{Log: testenv.Logger(t), Catalog: env.App.Catalog, Token: token})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	return &fixture{env: env, admin: srv, url: hs.URL}
}

// request is one admin call. An empty auth sends the right token and
// "none" sends no Authorization header; an empty contentType sends
// application/json when there is a body and "none" sends no Content-Type.
type request struct {
	method, path, body string
	contentType        string
	auth               string
}

type response struct {
	status int
	header http.Header
	body   []byte
}

var client = &http.Client{Timeout: 30 * time.Second}

func (f *fixture) do(t *testing.T, r request) response {
	t.Helper()
	var body io.Reader
	if r.body != "" {
		body = strings.NewReader(r.body)
	}
	req, err := http.NewRequest(r.method, f.url+r.path, body)
	if err != nil {
		t.Fatal(err)
	}
	switch {
	case r.contentType == "none":
	case r.contentType != "":
		req.Header.Set("Content-Type", r.contentType)
	case r.body != "":
		req.Header.Set("Content-Type", "application/json")
	}
	switch r.auth {
	case "":
		req.Header.Set("Authorization", "Bearer "+token)
	case "none":
	default:
		req.Header.Set("Authorization", r.auth)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", r.method, r.path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

// ok sends r and decodes the answer into v (when not nil), failing unless
// the status is want.
func (f *fixture) ok(t *testing.T, r request, want int, v any) {
	t.Helper()
	resp := f.do(t, r)
	if resp.status != want {
		t.Fatalf("%s %s = %d, want %d: %s", r.method, r.path, resp.status, want, resp.body)
	}
	if v != nil {
		if err := json.Unmarshal(resp.body, v); err != nil {
			t.Fatalf("%s %s: decode %s: %v", r.method, r.path, resp.body, err)
		}
	}
}

// problem is the problem+json body the admin API sends on errors.
type problem struct {
	Type     string `json:"type"`
	Title    string `json:"title"`
	Status   int    `json:"status"`
	Detail   string `json:"detail"`
	Instance string `json:"instance"`
	Errors   []struct {
		Field   string `json:"field"`
		Message string `json:"message"`
	} `json:"errors"`
}

// checkProblem fails unless resp is a problem+json of status and type
// urn:tenantry:problem:slug, naming field among its errors when field is
// set.
func checkProblem(t *testing.T, resp response, status int, slug, field string) problem {
	t.Helper()
	if resp.status != status {
		t.Fatalf("status = %d, want %d: %s", resp.status, status, resp.body)
	}
	if ct := resp.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("Content-Type = %q, want application/problem+json", ct)
	}
	var p problem
	if err := json.Unmarshal(resp.body, &p); err != nil {
		t.Fatalf("decode problem %s: %v", resp.body, err)
	}
	if want := "urn:tenantry:problem:" + slug; p.Type != want {
		t.Errorf("type = %q, want %q (%s)", p.Type, want, resp.body)
	}
	if p.Status != status || p.Title == "" || p.Detail == "" || p.Instance == "" {
		t.Errorf("problem %+v: want status %d and a title, detail and instance", p, status)
	}
	if field != "" {
		found := false
		for _, e := range p.Errors {
			found = found || (e.Field == field && e.Message != "")
		}
		if !found {
			t.Errorf("errors %+v: want one for field %q", p.Errors, field)
		}
	}
	return p
}

// tenantView is the admin API's tenant.
type tenantView struct {
	Name          string   `json:"name"`
	Schema        string   `json:"schema"`
	Status        string   `json:"status"`
	SchemaVersion int      `json:"schema_version"`
	Hosts         []string `json:"hosts"`
	Database      string   `json:"database"`
}

// tenantGet sends GET /api/tenant to a tenant listener with the given
// Host and returns the status.
func tenantGet(t *testing.T, addr, host string) int {
	t.Helper()
	code, err := testenv.TenantStatus(addr, host, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return code
}

// port returns the port of a host:port address.
