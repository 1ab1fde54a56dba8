package contract

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"testing"

	"tenantry/database"
	"tenantry/internal/testenv"
)

// TestAdminNewman runs the admin collection with newman against the
// tenantry binary, freshly started on free loopback ports with its admin
// listener, on PostgreSQL and on SQLite. The process serves the default
// tenants (localhost1 and localhost2) on their default hosts with other
// ports, so that admin.postman_environment.json runs as shipped with only
// the ports of its URLs and adminToken changed. It runs twice, to show that
// runs repeat against a database that already holds data: besides the two
// default tenants, a third is created before the runs. Any failed
// assertion fails the test, and so does a run that leaves a tenant or an
// archive behind or changes the tenants it did not create, or a process
// that does not exit 0 on SIGTERM.
func TestAdminNewman(t *testing.T) {
	root, newman := newmanCommand(t)

	_, reqs := loadCollectionFile(t, adminCollectionFile)
	bin := testenv.Binary(t)
	for _, driver := range testenv.Drivers {
		t.Run(driver, func(t *testing.T) {
			t.Parallel()
			db := testenv.Database(t, driver)
			svc := startService(t, bin, db, adminToken)
			c := newAdminChecker(t, loadAdminOpenAPI(t))
			adminExchange(t, c, exchange{method: http.MethodPost, url: svc.AdminURL + "/admin/tenants", contentType: "application/json",
				body: `{"name":"already-here","hosts":["already-here.test"]}`, want: http.StatusCreated})
			before := tenantSummaries(t, c, svc.AdminURL)

			for _, run := range []string{"first", "again"} {
				t.Run(run, func(t *testing.T) {
					vars := append(svc.envVars(t, adminEnvironmentFile), "adminToken="+adminToken)
					rep := runNewman(t, newman, filepath.Join(root, adminCollectionFile), filepath.Join(root, adminEnvironmentFile), vars...)
					checkNewmanRun(t, rep, len(reqs))
				})
			}

			// The collection removes every tenant it creates, with its data,
			// and leaves the others as they were.
			if after := tenantSummaries(t, c, svc.AdminURL); !slices.Equal(after, before) {
				t.Errorf("tenants after the runs:\n%v\nwant those before:\n%v", after, before)
			}
			svc.stop(t)

			archives := `SELECT count(*) FROM information_schema.schemata WHERE schema_name LIKE 'archived\_%'`
			if driver == "sqlite" {
				archives = `SELECT count(*) FROM sqlite_master WHERE name LIKE 'archived\_%' ESCAPE '\'`
			}
			gdb, _, err := database.Open(context.Background(), db, testenv.Logger(t))
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = database.Close(gdb) }()
			var n int
			if err := gdb.Raw(archives).Scan(&n).Error; err != nil || n != 0 {
				t.Errorf("archives after the runs: %d (%v), want none: the collection drops the data it creates", n, err)
			}
		})
	}
}

// tenantSummaries lists the tenants through the admin API as
// "name status [hosts]", without their timestamps.
func tenantSummaries(t *testing.T, c *checker, adminURL string) []string {
	t.Helper()
	var list struct {
		Tenants []struct {
			Name   string   `json:"name"`
			Status string   `json:"status"`
			Hosts  []string `json:"hosts"`
		} `json:"tenants"`
	}
	body := adminExchange(t, c, exchange{method: http.MethodGet, url: adminURL + "/admin/tenants", want: http.StatusOK})
	if err := json.Unmarshal(body, &list); err != nil {
		t.Fatalf("GET /admin/tenants: %v", err)
	}
	var out []string
	for _, tn := range list.Tenants {
		out = append(out, fmt.Sprintf("%s %s %v", tn.Name, tn.Status, tn.Hosts))
	}
	return out
}
