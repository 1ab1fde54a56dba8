package contract

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"tenantry/internal/testenv"
)

// newmanReport is the part of newman's JSON report the test reads.
type newmanReport struct {
	Run struct {
		Stats map[string]struct {
			Total  int `json:"total"`
			Failed int `json:"failed"`
		} `json:"stats"`
		Failures []struct {
			Error struct {
				Name    string `json:"name"`
				Message string `json:"message"`
			} `json:"error"`
			Source struct {
				Name string `json:"name"`
			} `json:"source"`
		} `json:"failures"`
	} `json:"run"`
}

// TestNewman runs the Postman collection with newman (postman/node_modules,
// installed by `npm ci` in postman/) against the tenantry binary, freshly
// started on free loopback ports, on PostgreSQL and on SQLite. The process
// serves the tenants that the environments name, localhost1 and
// localhost2, on localhost:PORT and 127.0.0.1:PORT like the defaults, so
// that each environment runs as shipped with only the ports of baseUrl and
// otherBaseUrl changed. Each tenant already holds a user; the collection
// runs with localhost1's environment, with localhost2's, and with
// localhost1's again to show that runs repeat against a database that
// already holds data. Any failed assertion fails the test, and so does a
// run that leaves users behind or a process that does not exit 0 on
// SIGTERM.
func TestNewman(t *testing.T) {
	root, newman := newmanCommand(t)

	_, reqs := loadCollection(t)
	bin := testenv.Binary(t)
	for _, driver := range testenv.Drivers {
		t.Run(driver, func(t *testing.T) {
			t.Parallel()
			svc := startService(t, bin, testenv.Database(t, driver), "")
			for _, u := range []string{svc.URL1, svc.URL2} {
				resp, err := http.Post(u+"/api/users", "application/json",
					strings.NewReader(`{"name":"Already here","email":"already.here@example.com"}`))
				if err != nil {
					t.Fatal(err)
				}
				_ = resp.Body.Close()
				if resp.StatusCode != http.StatusCreated {
					t.Fatalf("seed %s: status %d", u, resp.StatusCode)
				}
			}

			for _, run := range []struct{ name, envFile string }{
				{"localhost1", "postman/localhost1.postman_environment.json"},
				{"localhost2", "postman/localhost2.postman_environment.json"},
				{"localhost1-again", "postman/localhost1.postman_environment.json"},
			} {
				t.Run(run.name, func(t *testing.T) {
					rep := runNewman(t, newman, filepath.Join(root, collectionFile), filepath.Join(root, run.envFile),
						svc.envVars(t, run.envFile)...)
					checkNewmanRun(t, rep, len(reqs))
				})
			}

			// The collection deletes every user it creates.
			for _, u := range []string{svc.URL1, svc.URL2} {
				var page struct {
					Total int `json:"total"`
				}
				resp, err := http.Get(u + "/api/users")
				if err != nil {
					t.Fatal(err)
				}
				err = json.NewDecoder(resp.Body).Decode(&page)
				_ = resp.Body.Close()
				if err != nil || page.Total != 1 {
					t.Errorf("%s after the runs: %d users (%v), want only the one seeded", u, page.Total, err)
				}
			}
			svc.stop(t)
		})
	}
}

// checkNewmanRun fails t for every failed assertion, script or request of
// a run, and for a run that did not send each of the collection's nreqs
// requests with assertions.
// newmanCommand returns the module root and the newman that postman/'s
// lock file installs (npm ci), skipping or, under CI=true, failing where
// it is missing.
func newmanCommand(t *testing.T) (root, newman string) {
	t.Helper()
	root = testenv.ModuleRoot(t)
	newman = filepath.Join(root, "postman", "node_modules", ".bin", "newman")
	_, err := os.Stat(newman)
	testenv.RequireTool(t, "newman (cd postman && npm ci)", err == nil)
	return root, newman
}

func checkNewmanRun(t *testing.T, rep newmanReport, nreqs int) {
	t.Helper()
	st := rep.Run.Stats
	t.Logf("newman: %d requests, %d assertions, %d failed",
		st["requests"].Total, st["assertions"].Total, st["assertions"].Failed)
	for _, f := range rep.Run.Failures {
		t.Errorf("%s: %s: %s", f.Source.Name, f.Error.Name, f.Error.Message)
	}
	for _, k := range []string{"requests", "testScripts", "prerequestScripts", "assertions"} {
		if st[k].Failed != 0 {
			t.Errorf("newman: %d of %d %s failed", st[k].Failed, st[k].Total, k)
		}
	}
	// Every request ran and asserted something: a run cannot pass by
	// skipping.
	if st["requests"].Total < nreqs || st["assertions"].Total < 2*nreqs {
		t.Errorf("newman ran %d requests with %d assertions; the collection has %d requests",
			st["requests"].Total, st["assertions"].Total, nreqs)
	}
}

// runNewman runs a collection (a path) with one environment (a path) and
// its variables overridden, and returns newman's JSON report.
func runNewman(t *testing.T, newman, collection, environment string, vars ...string) newmanReport {
	t.Helper()
	report := filepath.Join(t.TempDir(), "newman.json")
	args := []string{"run", collection,
		"--environment", environment,
		"--reporters", "cli,json", "--reporter-json-export", report,
		"--color", "off"}
	for _, v := range vars {
		args = append(args, "--env-var", v)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, newman, args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Errorf("newman: %v\n%s", err, out)
	} else if testing.Verbose() {
		t.Logf("%s", out)
	}
	var rep newmanReport
	b, rerr := os.ReadFile(report)
	if rerr != nil {
		t.Fatalf("newman wrote no report: %v\n%s", rerr, out)
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatalf("newman report: %v", err)
	}
	return rep
}
