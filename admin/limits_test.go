package admin_test

import (
	"net/http"
	"strconv"
	"testing"
	"time"

	"tenantry/internal/testenv"
)

// limitsOf is the limits member of the admin API's tenant.
type limitsOf struct {
	Limits struct {
		Rate        *float64 `json:"rate"`
		Burst       *int     `json:"burst"`
		Concurrency *int     `json:"concurrency"`
	} `json:"limits"`
	Status string `json:"status"`
}

func (l limitsOf) String() string {
	show := func(set bool, v func() string) string {
		if !set {
			return "null"
		}
		return v()
	}
	return l.Status + " " +
		show(l.Limits.Rate != nil, func() string { return strconv.FormatFloat(*l.Limits.Rate, 'f', -1, 64) }) + " " +
		show(l.Limits.Burst != nil, func() string { return strconv.Itoa(*l.Limits.Burst) }) + " " +
		show(l.Limits.Concurrency != nil, func() string { return strconv.Itoa(*l.Limits.Concurrency) })
}

// TestTenantLimits: PATCH /admin/tenants/{name} merges a limits object
// as RFC 7396 says (a member left out is kept, null and 0 go back to the
// default), refuses bad values naming each field, and changes only the
// tenant it names; the live service applies the change at once.
func TestTenantLimits(t *testing.T) {
	for _, driver := range testenv.Drivers {
		t.Run(driver, func(t *testing.T) {
			t.Parallel()
			f := start(t, driver)
			path := "/admin/tenants/tenant1"
			var got limitsOf
			f.ok(t, request{method: "GET", path: path}, 200, &got)
			if got.String() != "active null null null" {
				t.Fatalf("a new tenant's limits: %s, want every one null", got)
			}
			for _, step := range []struct {
				body, contentType, want string
			}{
				{`{"limits":{"rate":5}}`, "application/merge-patch+json", "active 5 null null"},
				{`{"limits":{"burst":10,"concurrency":3}}`, "", "active 5 10 3"},
				{`{"limits":{}}`, "", "active 5 10 3"},
				{`{"limits":{"rate":0.25,"concurrency":null}}`, "", "active 0.25 10 null"},
				{`{"status":"suspended","limits":{"burst":0}}`, "", "suspended 0.25 null null"},
				{`{"status":"active"}`, "", "active 0.25 null null"},
				{`{"limits":null}`, "application/merge-patch+json", "active null null null"},
				{`{}`, "", "active null null null"},
			} {
				var got limitsOf
				f.ok(t, request{method: "PATCH", path: path, body: step.body, contentType: step.contentType}, 200, &got)
				if got.String() != step.want {
					t.Errorf("PATCH %s: %s, want %s", step.body, got, step.want)
				}
				f.ok(t, request{method: "GET", path: path}, 200, &got)
				if got.String() != step.want {
					t.Errorf("GET after PATCH %s: %s, want %s", step.body, got, step.want)
				}
			}

			for _, bad := range []struct {
				body   string
				fields []string
			}{
				{`{"limits":{"rate":-1}}`, []string{"limits.rate"}},
				{`{"limits":{"rate":1e12,"burst":-2,"concurrency":1000000}}`, []string{"limits.rate", "limits.burst", "limits.concurrency"}},
				{`{"status":"gone","limits":{"concurrency":-1}}`, []string{"status", "limits.concurrency"}},
				{`{"limits":{"burst":1.5}}`, []string{"limits.burst"}},
				{`{"limits":{"concurrency":"many"}}`, []string{"limits.concurrency"}},
				// The decoder names an unknown member by its own name.
				{`{"limits":{"rates":5}}`, []string{"rates"}},
				{`{"limits":5}`, []string{"limits"}},
			} {
				resp := f.do(t, request{method: "PATCH", path: path, body: bad.body})
				for _, field := range bad.fields {
					checkProblem(t, resp, http.StatusUnprocessableEntity, "validation", field)
				}
			}
			f.ok(t, request{method: "GET", path: path}, 200, &got)
			if got.String() != "active null null null" {
				t.Errorf("after refused patches: %s, want nothing changed", got)
			}
			checkProblem(t, f.do(t, request{method: "PATCH", path: "/admin/tenants/nobody", body: `{"limits":{"rate":1}}`}),
				http.StatusNotFound, "tenant-not-found", "")

			// The live service: tenant1 limited at once, tenant2 not.
			f.ok(t, request{method: "PATCH", path: path, body: `{"limits":{"rate":0.1,"burst":1}}`}, 200, nil)
			host1 := "127.0.0.1:" + testenv.Port(f.env.Addr1)
			host2 := "127.0.0.1:" + testenv.Port(f.env.Addr2)
			testenv.Eventually(t, time.Second, func() bool {
				return tenantGet(t, f.env.Addr1, host1) == http.StatusTooManyRequests
			}, "tenant1 limited")
			for range 10 {
				if got := tenantGet(t, f.env.Addr2, host2); got != http.StatusOK {
					t.Fatalf("tenant2 while tenant1 is limited: %d", got)
				}
			}
			var other limitsOf
			f.ok(t, request{method: "GET", path: "/admin/tenants/tenant2"}, 200, &other)
			if other.String() != "active null null null" {
				t.Errorf("tenant2's limits: %s, want every one null", other)
			}
		})
	}
}
