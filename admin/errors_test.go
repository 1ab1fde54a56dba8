package admin_test

import (
	"reflect"
	"strings"
	"testing"

	"tenantry/internal/testenv"
)

// TestProblemDetails holds the admin API to the exact problems it showed
// before errors became typed (openapi-admin.yaml's examples, the Postman
// collection), and to a 422 for a schema starting with "sqlite", which
// SQLite keeps for itself (it was a 500 there), on both databases.
func TestProblemDetails(t *testing.T) {
	type fe = struct {
		Field   string `json:"field"`
		Message string `json:"message"`
	}
	type problemCase struct {
		name                string
		req                 request
		status              int
		slug, title, detail string
		errors              []fe
	}
	for _, driver := range testenv.Drivers {
		t.Run(driver, func(t *testing.T) {
			t.Parallel()
			f := start(t, driver)
			p1 := testenv.Port(f.env.Addr1)
			sqliteMsg := `schema "sqlite_x" is reserved: names starting with sqlite belong to SQLite`
			cases := []problemCase{
				{"unknown tenant", request{method: "GET", path: "/admin/tenants/nobody"},
					404, "tenant-not-found", "Tenant not found", "No tenant has this name.", nil},
				{"duplicate name", request{method: "POST", path: "/admin/tenants", body: `{"name":"tenant1","hosts":["new.test"]}`},
					409, "tenant-exists", "Tenant already exists", `Conflicts with an existing tenant: "tenant1".`, nil},
				{"duplicate schema", request{method: "POST", path: "/admin/tenants", body: `{"name":"other","schema":"tenant1","hosts":["new.test"]}`},
					409, "tenant-exists", "Tenant already exists", `Conflicts with an existing tenant: schema "tenant1" is used by another tenant.`, nil},
				{"host of another tenant", request{method: "POST", path: "/admin/tenants", body: `{"name":"thief","hosts":["127.0.0.1:` + p1 + `"]}`},
					409, "host-taken", "Host taken", "Host 127.0.0.1:" + p1 + " already belongs to another tenant.", nil},
				{"invalid name and host", request{method: "POST", path: "/admin/tenants", body: `{"name":"Not A Name","hosts":["not a host"]}`},
					422, "validation", "Invalid input", "One or more fields are invalid.", []fe{
						{"name", `tenant name "Not A Name" must match ^[a-z0-9][a-z0-9_-]{0,62}$`},
						{"hosts[0]", `"not a host": bad host name`}}},
				{"name starting with sqlite_", request{method: "POST", path: "/admin/tenants", body: `{"name":"sqlite_x","hosts":["sq.test"]}`},
					422, "invalid-name", "Invalid name", sqliteMsg + ".", []fe{{"schema", sqliteMsg}}},
				{"name starting with sqlite", request{method: "POST", path: "/admin/tenants", body: `{"name":"sqlitefoo","hosts":["sq.test"]}`},
					422, "invalid-name", "Invalid name", strings.ReplaceAll(sqliteMsg, "sqlite_x", "sqlitefoo") + ".",
					[]fe{{"schema", strings.ReplaceAll(sqliteMsg, "sqlite_x", "sqlitefoo")}}},
				{"schema starting with sqlite", request{method: "POST", path: "/admin/tenants", body: `{"name":"fine","schema":"sqlite_x","hosts":["sq.test"]}`},
					422, "validation", "Invalid input", "One or more fields are invalid.", []fe{{"schema", sqliteMsg}}},
				{"host the tenant lacks", request{method: "DELETE", path: "/admin/tenants/tenant1/hosts/nobody.test"},
					404, "host-not-found", "Host not found", `Tenant "tenant1" does not answer on host "nobody.test".`, nil},
			}
			if driver == "sqlite" {
				long := strings.Repeat("a", 50)
				cases = append(cases, problemCase{"schema too long for the prefix strategy", request{method: "POST", path: "/admin/tenants", body: `{"name":"` + long + `","hosts":["long.test"]}`},
					422, "invalid-name", "Invalid name", `schema "` + long + `" is too long for the prefix strategy (at most 45 characters).`,
					[]fe{{"schema", `schema "` + long + `" is too long for the prefix strategy (at most 45 characters)`}}})
			}
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					p := checkProblem(t, f.do(t, tc.req), tc.status, tc.slug, "")
					var got []fe
					for _, e := range p.Errors {
						got = append(got, fe{e.Field, e.Message})
					}
					if p.Title != tc.title || p.Detail != tc.detail || !reflect.DeepEqual(got, tc.errors) {
						t.Errorf("got title %q detail %q errors %v\nwant title %q detail %q errors %v", p.Title, p.Detail, got, tc.title, tc.detail, tc.errors)
					}
				})
			}
			// The refused tenants were not created; the others are intact.
			var list struct{ Tenants []tenantView }
			f.ok(t, request{method: "GET", path: "/admin/tenants"}, 200, &list)
			if len(list.Tenants) != 2 || list.Tenants[0].Name != "tenant1" || list.Tenants[1].Name != "tenant2" {
				t.Errorf("tenants after the refused requests = %+v, want tenant1 and tenant2 only", list.Tenants)
			}
		})
	}
}
