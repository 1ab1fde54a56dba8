package contract

import (
	"net/http"
	"strings"
	"testing"

	"tenantry/config"
)

// The admin API's Postman files, relative to the module root.
const (
	adminCollectionFile  = "postman/tenantry-admin.postman_collection.json"
	adminEnvironmentFile = "postman/admin.postman_environment.json"
)

// TestAdminCollectionCoversOpenAPI fails when an operation of
// openapi-admin.yaml has no request in the admin collection, when the
// collection calls an admin route that the document lacks or a tenant
// route that openapi.yaml lacks, and when a request lacks what the
// collection promises: tests that assert the status, the headers and the
// body, and a saved example of that status with its headers. It also checks what makes the collection safe to run: the
// admin token goes to the admin listener only, every tenant it creates is
// removed with its data, and the auth and error cases are there.
func TestAdminCollectionCoversOpenAPI(t *testing.T) {
	// Requests go to the admin listener, or to a tenant listener to show
	// the effect of a change.
	checkers := map[string]*checker{
		"adminUrl":  newAdminChecker(t, loadAdminOpenAPI(t)),
		"tenantUrl": newChecker(t, loadOpenAPI(t)),
	}
	col, reqs := loadCollectionFile(t, adminCollectionFile)

	if col.Auth == nil || col.Auth.Type != "bearer" || col.Auth.token() != "{{adminToken}}" {
		t.Errorf("%s: the collection does not authenticate with the bearer token {{adminToken}}", adminCollectionFile)
	}
	colTests := col.script("test")
	if !strings.Contains(colTests, "application/problem+json") || !strings.Contains(colTests, "no-store") {
		t.Errorf("the collection-level test script no longer checks that errors are problems and answers are not cached")
	}

	covered := map[string]bool{}       // admin operationId → has a request
	codes := map[string]map[int]bool{} // folder → statuses of its saved examples
	creates, drops := 0, 0
	noToken, wrongToken := false, false
	for _, r := range reqs {
		base, op, ok := operationOf(t, r, checkers)
		if !ok {
			continue
		}
		raw := r.Request.URL.Raw
		checkTestsAndExample(t, r, op, colTests)
		if len(r.Response) == 0 {
			continue // reported above
		}
		code := r.Response[0].Code
		if codes[r.folder] == nil {
			codes[r.folder] = map[int]bool{}
		}
		codes[r.folder][code] = true

		if base == "tenantUrl" {
			// The admin token never goes to a tenant host.
			if r.Request.Auth == nil || r.Request.Auth.Type != "noauth" {
				t.Errorf("%s: a request to {{tenantUrl}} must not inherit the admin token (auth noauth)", r)
			}
			if r.header("Host") == "" {
				t.Errorf("%s: a request to {{tenantUrl}} needs the Host header of the tenant whose change it shows", r)
			}
			continue
		}
		covered[op.OperationID] = true
		switch {
		case op.OperationID == "createTenant" && code == http.StatusCreated:
			creates++
		case op.OperationID == "deleteTenant" && code == http.StatusOK:
			if !strings.Contains(raw, "drop_data=true") {
				t.Errorf("%s: removes a tenant without drop_data=true, leaving an archive behind on every run", r)
			}
			drops++
		}
		if code == http.StatusUnauthorized {
			switch a := r.Request.Auth; {
			case a != nil && a.Type == "noauth":
				noToken = true
			case a != nil && a.Type == "bearer" && a.token() != "" && a.token() != "{{adminToken}}":
				wrongToken = true
			}
		}
	}
	for _, o := range operations(checkers["adminUrl"].doc) {
		if !covered[o.op.OperationID] {
			t.Errorf("openapi-admin.yaml operation %s (%s) has no request in %s", o.op.OperationID, o, adminCollectionFile)
		}
	}
	if creates == 0 || drops != creates {
		t.Errorf("%s: %d tenants created, %d removed; want every tenant it creates removed again", adminCollectionFile, creates, drops)
	}
	if !noToken || !wrongToken {
		t.Errorf("%s: want a 401 request without a token (%v) and one with a wrong token (%v)", adminCollectionFile, noToken, wrongToken)
	}
	for folder, want := range map[string][]int{
		"Auth":             {401},
		"Service":          {200},
		"Tenant lifecycle": {200, 201, 202, 204, 403, 404},
		"Error cases":      {400, 404, 409, 415, 422},
	} {
		for _, code := range want {
			if !codes[folder][code] {
				t.Errorf("%s: folder %q has no request answered %d", adminCollectionFile, folder, code)
			}
		}
	}
}

// TestAdminPostmanEnvironment checks that the admin environment points at
// what `go run .` serves by default and ships no token.
func TestAdminPostmanEnvironment(t *testing.T) {
	vals := environmentValues(t, adminEnvironmentFile)
	def := config.Default()
	if got, want := vals["adminUrl"], "http://"+def.Admin.Listen; got != want {
		t.Errorf("%s: adminUrl = %q, want %q (admin.listen of config.Default)", adminEnvironmentFile, got, want)
	}
	if token, ok := vals["adminToken"]; !ok || token != "" {
		t.Errorf("%s: adminToken = %q (present: %v), want an empty variable for the operator to fill in", adminEnvironmentFile, token, ok)
	}
	if got, want := vals["tenantUrl"], "http://"+def.Tenants[0].Hosts[0]; got != want {
		t.Errorf("%s: tenantUrl = %q, want %q (tenant %s of config.Default)", adminEnvironmentFile, got, want, def.Tenants[0].Name)
	}
}
