package admin_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"tenantry/internal/testenv"
)

// eventually polls a tenant listener with host until it answers want and
// returns how long that took, failing past limit.
func eventually(t *testing.T, addr, host string, want int, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		got := tenantGet(t, addr, host)
		if got == want {
			return time.Since(start)
		}
		if time.Since(start) > limit {
			t.Fatalf("Host %s: status %d after %v, want %d", host, got, limit, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestLifecycleOnSameInstance drives a tenant through its life with the
// admin API and checks, on the same instance's tenant listener, that each
// change is served by the very next request, while the other tenants are
// untouched.
func TestLifecycleOnSameInstance(t *testing.T) {
	for _, driver := range testenv.Drivers {
		t.Run(driver, func(t *testing.T) {
			t.Parallel()
			f := start(t, driver)
			addr, other := f.env.Addr1, "127.0.0.1:"+testenv.Port(f.env.Addr1)
			// An unknown host is remembered as unknown for a while
			// (tenancy.negative_cache_ttl): ask first, so the change must
			// clear that memory to be seen.
			if got := tenantGet(t, addr, "acme.test"); got != http.StatusNotFound {
				t.Fatalf("before create: %d, want 404", got)
			}

			var created tenantView
			resp := f.do(t, request{method: "POST", path: "/admin/tenants",
				body: `{"name":"acme","hosts":["ACME.test.","acme.test"]}`})
			if resp.status != http.StatusCreated {
				t.Fatalf("create = %d: %s", resp.status, resp.body)
			}
			if loc := resp.header.Get("Location"); loc != "/admin/tenants/acme" {
				t.Errorf("Location = %q", loc)
			}
			f.ok(t, request{method: "GET", path: "/admin/tenants/acme"}, 200, &created)
			if created.Name != "acme" || created.Schema != "acme" || created.Status != "active" ||
				created.SchemaVersion < 1 || strings.Join(created.Hosts, ",") != "acme.test" {
				t.Errorf("created = %+v; want acme, schema acme, active, migrated, one normalized host", created)
			}
			if got := tenantGet(t, addr, "acme.test"); got != http.StatusOK {
				t.Errorf("right after create: %d, want 200", got)
			}

			var v tenantView
			f.ok(t, request{method: "POST", path: "/admin/tenants/acme/suspend"}, 200, &v)
			if v.Status != "suspended" {
				t.Errorf("suspend answered %+v", v)
			}
			if got := tenantGet(t, addr, "acme.test"); got != http.StatusForbidden {
				t.Errorf("right after suspend: %d, want 403", got)
			}
			if got := tenantGet(t, addr, other); got != http.StatusOK {
				t.Errorf("another tenant after suspending acme: %d, want 200", got)
			}

			f.ok(t, request{method: "POST", path: "/admin/tenants/acme/resume"}, 200, &v)
			if got := tenantGet(t, addr, "acme.test"); got != http.StatusOK || v.Status != "active" {
				t.Errorf("right after resume: %d (%s), want 200", got, v.Status)
			}
			f.ok(t, request{method: "PATCH", path: "/admin/tenants/acme", body: `{"status":"suspended"}`,
				contentType: "application/merge-patch+json"}, 200, &v)
			if got := tenantGet(t, addr, "acme.test"); got != http.StatusForbidden {
				t.Errorf("right after PATCH suspended: %d, want 403", got)
			}
			f.ok(t, request{method: "PATCH", path: "/admin/tenants/acme", body: `{}`}, 200, &v)
			if v.Status != "suspended" {
				t.Errorf("an empty patch changed the status to %q", v.Status)
			}
			f.ok(t, request{method: "PATCH", path: "/admin/tenants/acme", body: `{"status":"active"}`}, 200, &v)
			if got := tenantGet(t, addr, "acme.test"); got != http.StatusOK {
				t.Errorf("right after PATCH active: %d, want 200", got)
			}

			if got := tenantGet(t, addr, "www.acme.test"); got != http.StatusNotFound {
				t.Fatalf("host before adding it: %d, want 404", got)
			}
			f.ok(t, request{method: "POST", path: "/admin/tenants/acme/hosts", body: `{"host":"WWW.acme.test"}`}, 200, &v)
			if strings.Join(v.Hosts, ",") != "acme.test,www.acme.test" {
				t.Errorf("hosts after adding = %v", v.Hosts)
			}
			took := eventually(t, addr, "www.acme.test", http.StatusOK, 2*time.Second)
			t.Logf("added host served after %v", took)
			if took > time.Second {
				t.Errorf("added host took %v to work, want under 1s", took)
			}
			f.ok(t, request{method: "POST", path: "/admin/tenants/acme/hosts", body: `{"host":"www.acme.test"}`}, 200, &v)
			if len(v.Hosts) != 2 {
				t.Errorf("adding a host twice: hosts = %v", v.Hosts)
			}
			f.ok(t, request{method: "DELETE", path: "/admin/tenants/acme/hosts/www.acme.test"}, 204, nil)
			if got := tenantGet(t, addr, "www.acme.test"); got != http.StatusNotFound {
				t.Errorf("right after removing the host: %d, want 404", got)
			}

			var list struct{ Tenants []tenantView }
			f.ok(t, request{method: "GET", path: "/admin/tenants"}, 200, &list)
			if len(list.Tenants) != 3 || list.Tenants[0].Name != "acme" {
				t.Errorf("list = %+v, want acme, tenant1, tenant2", list.Tenants)
			}

			var removed struct {
				Name        string `json:"name"`
				DataDropped bool   `json:"data_dropped"`
				ArchivedAs  string `json:"archived_as"`
			}
			f.ok(t, request{method: "DELETE", path: "/admin/tenants/acme"}, 200, &removed)
			if removed.Name != "acme" || removed.DataDropped || !strings.HasPrefix(removed.ArchivedAs, "archived_") {
				t.Errorf("remove = %+v, want the data archived", removed)
			}
			if got := tenantGet(t, addr, "acme.test"); got != http.StatusNotFound {
				t.Errorf("right after remove: %d, want 404 unknown host", got)
			}
			checkProblem(t, f.do(t, request{method: "GET", path: "/admin/tenants/acme"}), 404, "tenant-not-found", "")

			// The archive frees the name and schema; drop_data really drops.
			f.ok(t, request{method: "POST", path: "/admin/tenants", body: `{"name":"acme","hosts":["acme.test"]}`}, 201, nil)
			removed.ArchivedAs = "" // absent from the answer when data is dropped
			f.ok(t, request{method: "DELETE", path: "/admin/tenants/acme?drop_data=true"}, 200, &removed)
			if !removed.DataDropped || removed.ArchivedAs != "" {
				t.Errorf("remove with drop_data = %+v", removed)
			}
			if got := tenantGet(t, addr, other); got != http.StatusOK {
				t.Errorf("another tenant after all that: %d, want 200", got)
			}
		})
	}
}
