package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"tenantry/config"
	"tenantry/database"
	"tenantry/doctor"
	"tenantry/internal/testenv"
	"tenantry/migrations"
	"tenantry/tenants"
)

// doctorDeployment creates tenants acme and globex on driver's fresh
// database through the CLI, as an operator would.
func doctorDeployment(t *testing.T, driver string) config.Database {
	t.Helper()
	dbc := testenv.Database(t, driver)
	mustCLI(t, dbc, "tenants", "add", "--name", "acme", "--host", "acme.example")
	mustCLI(t, dbc, "tenants", "add", "--name", "globex", "--host", "globex.example")
	return dbc
}

// doctorExec runs statements on dbc outside tenantry, as a careless
// operator would.
func doctorExec(t *testing.T, dbc config.Database, stmts ...string) {
	t.Helper()
	db, _, err := database.Open(context.Background(), dbc, testenv.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer database.Close(db)
	for _, q := range stmts {
		if err := db.Exec(q).Error; err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

// doctorLayout is the layout the CLI uses by default on dbc's driver.
func doctorLayout(dbc config.Database) tenants.Layout {
	d := migrations.SQLite
	if dbc.Driver == "postgres" {
		d = migrations.Postgres
	}
	return tenants.Layout{Strategy: tenants.Strategy(config.DefaultStrategy(dbc.Driver)), Dialect: d}
}

// TestDoctorCLI runs `tenantry doctor` in-process on each database: a
// clean deployment, one with only a warning, one with an error, and one
// the doctor cannot open, checking exit statuses, the human report and
// the JSON one.
func TestDoctorCLI(t *testing.T) {
	for _, driver := range testenv.Drivers {
		t.Run(driver, func(t *testing.T) {
			t.Parallel()
			dbc := doctorDeployment(t, driver)
			l := doctorLayout(dbc)
			notes := migrations.Quote(l.Table("acme", "notes"))
			users := migrations.Quote(l.SharedTable("users"))

			steps := []struct {
				name  string
				setup []string
				args  []string
				exit  int
				// out must appear in stdout; check/severity pairs are the
				// findings the JSON report must hold.
				out  []string
				json []string
			}{
				{name: "clean", args: []string{"doctor"}, exit: doctor.ExitClean,
					out: []string{"storage", "ok", "doctor: 2 tenants on " + driver, "no findings"}},
				{name: "clean json", args: []string{"doctor", "--json"}, exit: doctor.ExitClean, json: []string{}},
				{name: "warning", setup: []string{"CREATE TABLE " + notes + " (id integer)"},
					args: []string{"doctor"}, exit: doctor.ExitFindings,
					out: []string{"0 errors, 1 warning", "warning", "acme", l.Table("acme", "notes")}},
				{name: "warning accepted", args: []string{"doctor", "--warnings-ok", "--json"}, exit: doctor.ExitClean,
					json: []string{"storage/warning"}},
				{name: "error", setup: []string{"CREATE TABLE " + users + " (id integer)"},
					args: []string{"doctor", "--warnings-ok"}, exit: doctor.ExitFindings,
					out: []string{"1 error, 1 warning", "shared", l.SharedTable("users")}},
				{name: "error json", args: []string{"doctor", "--json"}, exit: doctor.ExitFindings,
					json: []string{"storage/warning", "shared/error"}},
			}
			for _, st := range steps {
				doctorExec(t, dbc, st.setup...)
				out, errOut, err := cli(t, dbc, st.args...)
				if got := exitStatus(err); got != st.exit {
					t.Fatalf("%s: exit %d (%v), want %d\nstdout:\n%s\nstderr:\n%s", st.name, got, err, st.exit, out, errOut)
				}
				for _, s := range st.out {
					if !strings.Contains(out, s) {
						t.Errorf("%s: stdout does not say %q:\n%s", st.name, s, out)
					}
				}
				if st.json == nil {
					continue
				}
				var rep doctor.Report
				if err := json.Unmarshal([]byte(out), &rep); err != nil {
					t.Fatalf("%s: --json printed no JSON report: %v\n%s", st.name, err, out)
				}
				var got []string
				for _, f := range rep.Findings {
					got = append(got, f.Check+"/"+string(f.Severity))
				}
				if strings.Join(got, " ") != strings.Join(st.json, " ") || rep.Tenants != 2 || len(rep.Checks) != len(doctor.Checks()) {
					t.Errorf("%s: JSON report has findings %v for %d tenants and %d checks; want %v, 2 tenants, %d checks",
						st.name, got, rep.Tenants, len(rep.Checks), st.json, len(doctor.Checks()))
				}
			}
		})
	}
}

// TestDoctorPlacements runs `tenantry doctor` over the control database
// and a placement "b" on a private cluster: clean across both databases,
// then with b stopped one finding names b and the command still audits
// the control database and exits 1, not 2.
func TestDoctorPlacements(t *testing.T) {
	cl := testenv.StartCluster(t)
	dbc := testenv.Database(t, "postgres")
	cfg := filepath.Join(t.TempDir(), "config.yaml")
	conf := "tenants: []\nadmin:\n  listen: \"\"\ndatabases:\n  - name: b\n    dsn: \"" + cl.DSN() + "\"\n"
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) (string, error) {
		t.Helper()
		var out, errOut bytes.Buffer
		root := newRoot(&out, &errOut)
		root.SetArgs(append([]string{"--config", cfg, "--db-driver", dbc.Driver, "--db-dsn", dbc.DSN}, args...))
		err := root.ExecuteContext(context.Background())
		return out.String() + errOut.String(), err
	}
	for _, add := range [][]string{
		{"tenants", "add", "--name", "acme", "--host", "acme.example", "--database", "main"},
		{"tenants", "add", "--name", "bolt", "--host", "bolt.example", "--database", "b"},
	} {
		if out, err := run(add...); err != nil {
			t.Fatalf("%v: %v\n%s", add, err, out)
		}
	}

	out, err := run("doctor")
	if got := exitStatus(err); got != doctor.ExitClean || !strings.Contains(out, "2 tenants on postgres (schema strategy) across 2 databases: no findings") {
		t.Fatalf("clean: exit %d (%v), want 0 and a summary across 2 databases:\n%s", got, err, out)
	}

	if err := cl.Stop(); err != nil {
		t.Fatal(err)
	}
	out, err = run("doctor", "--json")
	var rep doctor.Report
	if got := exitStatus(err); got != doctor.ExitFindings || json.Unmarshal([]byte(strings.SplitN(out, "\ntenantry:", 2)[0]), &rep) != nil {
		t.Fatalf("b stopped: exit %d (%v), want 1 and a JSON report:\n%s", got, err, out)
	}
	if len(rep.Findings) != 1 || rep.Findings[0].Check != doctor.CheckPlacements || rep.Findings[0].Database != "b" ||
		len(rep.Databases) != 2 || rep.Databases[0].Skipped != "" || rep.Databases[1].Skipped == "" {
		t.Errorf("b stopped: findings %+v, databases %+v; want one placements finding on b, b skipped, main audited", rep.Findings, rep.Databases)
	}
	out, _ = run("doctor")
	for _, s := range []string{"placements", " b  -  b  database b cannot be reached", "(1 tenant: bolt)", "across 2 databases (not audited: b): 1 error, 0 warnings"} {
		if !strings.Contains(out, s) {
			t.Errorf("human report does not say %q:\n%s", s, out)
		}
	}
}

// TestDoctorCannotRun: when the doctor cannot audit at all it exits 2, says
// why, and leaves nothing behind (no SQLite file created by opening it).
func TestDoctorCannotRun(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "tenantry.db")
	tests := []struct {
		name string
		dbc  config.Database
		args []string
		want string
	}{
		{"missing SQLite file", config.Database{Driver: "sqlite", DSN: missing}, []string{"doctor"}, "no such file"},
		{"invalid configuration", config.Database{Driver: "mysql", DSN: "x"}, []string{"doctor"}, "database.driver"},
		{"bad flag value", config.Database{Driver: "sqlite", DSN: missing}, []string{"doctor", "--instances", "0"}, "--instances"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := cli(t, tt.dbc, tt.args...)
			if got := exitStatus(err); got != doctor.ExitFailed {
				t.Fatalf("exit %d (%v), want %d", got, err, doctor.ExitFailed)
			}
			if !strings.Contains(err.Error(), "doctor could not run") || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not say the doctor could not run because of %q", err, tt.want)
			}
			if _, err := os.Stat(missing); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the doctor left %s behind (%v)", missing, err)
			}
		})
	}
}

// exitStatus is the status main would exit with after err.
func exitStatus(err error) int {
	if err == nil {
		return 0
	}
	return exitCode(err)
}

// TestDoctorBinary runs the built command on PostgreSQL and checks the
// statuses a shell sees: 0, 1 with --json still parseable, and 2.
func TestDoctorBinary(t *testing.T) {
	bin := testenv.Binary(t)
	dbc := doctorDeployment(t, "postgres")
	cfg := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(cfg, []byte("tenants: []\nadmin:\n  listen: \"\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(dbc config.Database, args ...string) (int, string, string) {
		t.Helper()
		cmd := exec.Command(bin, append([]string{"--config", cfg, "--db-driver", dbc.Driver, "--db-dsn", dbc.DSN}, args...)...)
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		err := cmd.Run()
		var exit *exec.ExitError
		switch {
		case err == nil:
			return 0, out.String(), errOut.String()
		case errors.As(err, &exit):
			return exit.ExitCode(), out.String(), errOut.String()
		}
		t.Fatalf("run %v: %v", args, err)
		return 0, "", ""
	}

	if code, out, errOut := run(dbc, "doctor", "--json"); code != 0 || !json.Valid([]byte(out)) {
		t.Fatalf("clean deployment: exit %d, want 0 and JSON\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	doctorExec(t, dbc, `GRANT USAGE ON SCHEMA "acme" TO PUBLIC`)
	code, out, errOut := run(dbc, "doctor", "--json")
	var rep doctor.Report
	if code != 1 || json.Unmarshal([]byte(out), &rep) != nil || len(rep.Findings) != 1 || rep.Findings[0].Check != doctor.CheckGrants {
		t.Fatalf("schema granted to PUBLIC: exit %d, want 1 and one grants finding\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	if !strings.Contains(errOut, "tenantry: doctor: 2 tenants on postgres (schema strategy): 1 error, 0 warnings") {
		t.Errorf("stderr does not summarise the findings: %q", errOut)
	}
	missing := config.Database{Driver: "sqlite", DSN: filepath.Join(t.TempDir(), "missing.db")}
	if code, _, errOut := run(missing, "doctor"); code != 2 || !strings.Contains(errOut, "doctor could not run") {
		t.Fatalf("missing database: exit %d, want 2 and a reason\nstderr:\n%s", code, errOut)
	}
}
