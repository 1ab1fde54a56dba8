package contract

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"tenantry/internal/testenv"
)

// TestAdminNewman runs the admin collection with newman against a freshly
// started service with its admin listener, on PostgreSQL and on SQLite,
// twice, to show that runs repeat against a database that already holds
// data: besides the two tenants of testenv, a third is created before the
// runs. Any failed assertion fails the test, and so does a run that leaves
// a tenant or an archive behind or changes the tenants it did not create.
func TestAdminNewman(t *testing.T) {
	root := testenv.ModuleRoot(t)
	newman := filepath.Join(root, "postman", "node_modules", ".bin", "newman")
	_, err := os.Stat(newman)
	testenv.RequireTool(t, "newman (cd postman && npm ci)", err == nil)

	_, reqs := loadCollectionFile(t, adminCollectionFile)
	for _, driver := range testenv.Drivers {
		t.Run(driver, func(t *testing.T) {
			t.Parallel()
			env := testenv.Start(t, driver, testenv.WithAdmin(adminToken))
			c := newAdminChecker(t, loadAdminOpenAPI(t))
			adminExchange(t, c, exchange{method: http.MethodPost, url: env.AdminURL + "/admin/tenants", contentType: "application/json",
				body: `{"name":"already-here","hosts":["already-here.test"]}`, want: http.StatusCreated})
			before := tenantSummaries(t, c, env)

			for _, run := range []string{"first", "again"} {
				t.Run(run, func(t *testing.T) {
					rep := runNewman(t, newman, filepath.Join(root, adminCollectionFile), filepath.Join(root, adminEnvironmentFile),
						"adminUrl="+env.AdminURL, "adminToken="+adminToken, "tenantUrl="+env.URL1)
					checkNewmanRun(t, rep, len(reqs))
				})
			}

			// The collection removes every tenant it creates, with its data,
			// and leaves the others as they were.
			if after := tenantSummaries(t, c, env); !slices.Equal(after, before) {
				t.Errorf("tenants after the runs:\n%v\nwant those before:\n%v", after, before)
			}
			archives := `SELECT count(*) FROM information_schema.schemata WHERE schema_name LIKE 'archived\_%'`
			if driver == "sqlite" {
				archives = `SELECT count(*) FROM sqlite_master WHERE name LIKE 'archived\_%' ESCAPE '\'`
			}
			var n int
			if err := env.App.DB.Raw(archives).Scan(&n).Error; err != nil || n != 0 {
				t.Errorf("archives after the runs: %d (%v), want none: the collection drops the data it creates", n, err)
			}
		})
	}
}

// tenantSummaries lists the tenants through the admin API as
// "name status [hosts]", without their timestamps.
func tenantSummaries(t *testing.T, c *checker, env *testenv.Env) []string {
	t.Helper()
	var list struct {
		Tenants []struct {
			Name   string   `json:"name"`
			Status string   `json:"status"`
			Hosts  []string `json:"hosts"`
		} `json:"tenants"`
	}
	body := adminExchange(t, c, exchange{method: http.MethodGet, url: env.AdminURL + "/admin/tenants", want: http.StatusOK})
	if err := json.Unmarshal(body, &list); err != nil {
		t.Fatalf("GET /admin/tenants: %v", err)
	}
	var out []string
	for _, tn := range list.Tenants {
		out = append(out, fmt.Sprintf("%s %s %v", tn.Name, tn.Status, tn.Hosts))
	}
	return out
}
