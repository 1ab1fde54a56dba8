package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"tenantry/app"
	"tenantry/doctor"
)

// doctorFlags are the flags of `tenantry doctor`.
type doctorFlags struct {
	json       bool
	warningsOK bool
	instances  int
}

func doctorCommand(stderr io.Writer) *cobra.Command {
	var f doctorFlags
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: "Audit the deployment: tenants' schemas, catalog, placements, hosts, grants and server settings, changing nothing",
		Long: `Audit the deployment against the catalog and this binary's migrations: every catalog
tenant is placed on a configured database, with no move left unfinished, and has its
schema or tables there at its recorded version, with matching checksums and the
expected columns and indexes; the shared schema holds only the catalog; no schema or
prefixed table on any database belongs to no tenant placed on it; hosts are unique and
normalised; nothing of a tenant is granted to PUBLIC; and (PostgreSQL) each server's
max_connections, max_files_per_process and shared_buffers are large enough for the
pools and the tenant count. It only reads. A database other than the control one that
cannot be reached is reported as an error finding and its tenants are not audited.

Exit status: 0 no finding, 1 at least one finding (with --warnings-ok: at least one
error), 2 the doctor could not run (configuration, control database unreachable).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runDoctor(cmd, stderr, f) },
	}
	cmd.Flags().BoolVar(&f.json, "json", false, "print the report as JSON")
	cmd.Flags().BoolVar(&f.warningsOK, "warnings-ok", false, "exit 0 when there are warnings but no errors")
	cmd.Flags().IntVar(&f.instances, "instances", 1, "how many tenantry processes share the databases (sizes max_connections)")
	return cmd
}

// runDoctor opens the app read-only, runs the audit and prints it. Every
// failure to audit is ExitFailed; findings are ExitFindings.
func runDoctor(cmd *cobra.Command, stderr io.Writer, f doctorFlags) error {
	failed := func(err error) error {
		return &exitError{code: doctor.ExitFailed, err: fmt.Errorf("doctor could not run: %w", err)}
	}
	if f.instances < 1 {
		return failed(fmt.Errorf("--instances %d: want 1 or more", f.instances))
	}
	cfg, err := loadConfig(cmd)
	if err != nil {
		return failed(err)
	}
	if cfg.Database.Driver == "sqlite" {
		// Opening a SQLite file that is not there would create it: an
		// audit must not leave an empty database behind a typo.
		if path, ok := sqliteFile(cfg.Database.DSN); ok {
			if _, err := os.Stat(path); err != nil {
				return failed(fmt.Errorf("database.dsn: %w", err))
			}
		}
	}
	var rep doctor.Report
	err = withReadOnlyApp(cmd, stderr, func(ctx context.Context, a *app.App) error {
		var err error
		rep, err = doctor.Run(ctx, doctor.Deps{
			DB:         a.DB,
			Layout:     a.Catalog.Layout(),
			Migrations: a.Catalog.Migrations(),
			Pool:       a.Config.Database,
			Instances:  f.instances,
		})
		return err
	})
	if err != nil {
		return failed(err)
	}
	out := cmd.OutOrStdout()
	if f.json {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return failed(err)
		}
	} else {
		printDoctor(out, rep)
	}
	if code := rep.ExitCode(f.warningsOK); code != doctor.ExitClean {
		return &exitError{code: code, err: fmt.Errorf("doctor: %s", summary(rep))}
	}
	return nil
}

// sqliteFile returns the file a SQLite DSN names, unless it is an
// in-memory database.
func sqliteFile(dsn string) (string, bool) {
	path := strings.TrimPrefix(dsn, "file:")
	if i := strings.IndexByte(path, '?'); i >= 0 {
		path = path[:i]
	}
	if path == "" || path == ":memory:" || strings.Contains(dsn, "mode=memory") {
		return "", false
	}
	return path, true
}

// printDoctor prints the report for people: one block per check, one
// finding per line, then a summary line. With several databases each
// finding line names its database ("-" for the catalog's rows and hosts).
func printDoctor(w io.Writer, rep doctor.Report) {
	byCheck := map[string][]doctor.Finding{}
	for _, f := range rep.Findings {
		byCheck[f.Check] = append(byCheck[f.Check], f)
	}
	several := len(rep.Databases) > 1
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, c := range rep.Checks {
		switch {
		case c.Skipped != "":
			fmt.Fprintf(tw, "%s\tskipped: %s\n", c.Name, c.Skipped)
			continue
		case c.Errors+c.Warnings == 0:
			fmt.Fprintf(tw, "%s\tok\n", c.Name)
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\n", c.Name, counts(c.Errors, c.Warnings))
		for _, f := range byCheck[c.Name] {
			tenant := cmp.Or(f.Tenant, "-")
			if several {
				fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", f.Severity, cmp.Or(f.Database, "-"), tenant, f.Object, f.Message)
				continue
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", f.Severity, tenant, f.Object, f.Message)
		}
	}
	_ = tw.Flush()
	if len(rep.Archived) > 0 {
		fmt.Fprintf(w, "archived data of removed tenants (kept, not a finding): %s\n", strings.Join(rep.Archived, ", "))
	}
	fmt.Fprintf(w, "doctor: %s\n", summary(rep))
}

func summary(rep doctor.Report) string {
	where := fmt.Sprintf("%d tenants on %s (%s strategy)", rep.Tenants, rep.Dialect, rep.Strategy)
	if n := len(rep.Databases); n > 1 {
		where += fmt.Sprintf(" across %d databases", n)
		if skipped := skippedDatabases(rep); skipped != "" {
			where += " (not audited: " + skipped + ")"
		}
	}
	if rep.Errors+rep.Warnings == 0 {
		return where + ": no findings"
	}
	return where + ": " + counts(rep.Errors, rep.Warnings)
}

// skippedDatabases names the databases the report could not audit.
func skippedDatabases(rep doctor.Report) string {
	var names []string
	for _, d := range rep.Databases {
		if d.Skipped != "" {
			names = append(names, d.Name)
		}
	}
	return strings.Join(names, ", ")
}

func counts(errs, warns int) string {
	plural := func(n int, word string) string {
		if n == 1 {
			return fmt.Sprintf("%d %s", n, word)
		}
		return fmt.Sprintf("%d %ss", n, word)
	}
	return plural(errs, "error") + ", " + plural(warns, "warning")
}

// exitError is an error that asks main for a particular exit status, for
// commands whose status means more than success or failure (doctor).
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// exitCode is the status main exits with for err: the code an exitError
// in its chain carries, 1 otherwise.
func exitCode(err error) int {
	if e, ok := errors.AsType[*exitError](err); ok {
		return e.code
	}
	return 1
}
