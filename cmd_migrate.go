package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"tenantry/app"
	"tenantry/tenants"
)

// migrateFlags are the flags of `tenantry migrate`.
type migrateFlags struct {
	jobs   int
	tenant string
	dryRun bool
	json   bool
}

func migrateCommand(stderr io.Writer) *cobra.Command {
	// Log lines and the progress bar share stderr (terminal.go).
	tty := newTerminal(stderr)
	var f migrateFlags
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Apply shared migrations, then pending tenant migrations to every tenant, in parallel",
		Long: `Apply the shared (catalog) migrations, then the pending tenant migrations to every
catalogued tenant, each tenant in its own transaction under its own advisory lock. Tenants
on several databases (config "databases:") are migrated on all of them at once, --jobs at a
time on each. A failing tenant is rolled back and listed while the others go on, and so are
the tenants of a database that cannot be reached; the command then exits non-zero and
running it again finishes the rest. Tenants configured under "tenants:" are created
afterwards if missing.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f.dryRun {
				// Opened read-only: a dry run lists the shared migrations
				// instead of having applied them on the way in.
				return withReadOnlyApp(cmd, tty, func(ctx context.Context, a *app.App) error {
					return dryRun(ctx, a, f, cmd.OutOrStdout(), tty)
				})
			}
			return withApp(cmd, tty, func(ctx context.Context, a *app.App) error {
				return migrate(ctx, a, f, cmd.OutOrStdout(), tty)
			})
		},
	}
	cmd.Flags().IntVar(&f.jobs, "jobs", 0, "tenants migrated at once on each database (default: the number of CPUs, at most database.max_open_conns)")
	cmd.Flags().StringVar(&f.tenant, "tenant", "", "migrate only the tenant of this name")
	cmd.Flags().BoolVar(&f.dryRun, "dry-run", false, "list the shared migrations and each tenant's that would be applied, and change nothing")
	cmd.Flags().BoolVar(&f.json, "json", false, "print the report as JSON")

	var behindOnly, asJSON bool
	status := &cobra.Command{
		Use:   "status",
		Short: "Show the shared schema's and each tenant's version and what they lack, changing nothing",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withReadOnlyApp(cmd, stderr, func(ctx context.Context, a *app.App) error {
				shared, err := a.SharedStatus(ctx)
				if err != nil {
					return err
				}
				st := tenants.StatusReport{Latest: a.Catalog.Migrations().Latest(),
					Shared: shared.Version, SharedLatest: shared.Latest, Tenants: []tenants.TenantVersion{}}
				if shared.Catalog {
					if st, err = tenants.NewMigrator(a.Catalog).Status(ctx); err != nil {
						return err
					}
				}
				return printStatus(cmd.OutOrStdout(), st, shared, behindOnly, asJSON)
			})
		},
	}
	status.Flags().BoolVar(&behindOnly, "behind", false, "list only tenants not at the code's version")
	status.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.AddCommand(status)
	return cmd
}

// migrate runs the Migrator with progress on stderr and the report on
// out, then ensures the configured tenants.
func migrate(ctx context.Context, a *app.App, f migrateFlags, out io.Writer, stderr *terminal) error {
	rep, took, err := runMigrate(ctx, a, f, stderr)
	if rep.Total == 0 && err != nil {
		return err // nothing ran: unknown --tenant, catalog unreadable
	}
	if jerr := report(out, f.json, rep, func(w io.Writer) { printReport(w, rep, nil, took) }); jerr != nil {
		return jerr
	}
	if err != nil {
		return err
	}
	if f.tenant != "" {
		return nil
	}
	return a.Seed(ctx)
}

// dryRun reports what migrate would apply, on an App opened read-only:
// the pending shared migrations, then each behind tenant's. On a fresh
// database the catalog does not exist yet, so there are no tenants to
// look at, and it says so instead of failing on a missing table.
func dryRun(ctx context.Context, a *app.App, f migrateFlags, out io.Writer, stderr *terminal) error {
	shared, err := a.SharedStatus(ctx)
	if err != nil {
		return err
	}
	rep := tenants.MigrateReport{Latest: a.Catalog.Migrations().Latest()}
	if shared.Catalog {
		rep, _, err = runMigrate(ctx, a, f, stderr)
		if rep.Total == 0 && err != nil {
			return err // unknown --tenant, catalog unreadable
		}
	} else if f.tenant != "" {
		return fmt.Errorf("%w: %q: no tenants yet, the catalog does not exist", tenants.ErrNotFound, f.tenant)
	}
	doc := dryRunJSON{Shared: shared, MigrateReport: rep}
	if jerr := report(out, f.json, doc, func(w io.Writer) { printReport(w, rep, &shared, 0) }); jerr != nil {
		return jerr
	}
	return err
}

// dryRunJSON is the --dry-run --json document: the tenants' report, as
// before, with the shared schema's state beside it.
type dryRunJSON struct {
	Shared app.SharedStatus `json:"shared"`
	tenants.MigrateReport
}

// runMigrate runs the catalog's Migrator with progress on stderr.
func runMigrate(ctx context.Context, a *app.App, f migrateFlags, stderr *terminal) (tenants.MigrateReport, time.Duration, error) {
	p := newProgress(stderr, a.Log, f.dryRun)
	start := time.Now()
	rep, err := tenants.NewMigrator(a.Catalog).Migrate(ctx, tenants.MigrateOptions{
		Jobs: f.jobs, Tenant: f.tenant, DryRun: f.dryRun, Start: p.start, Progress: p.update,
	})
	p.finish()
	return rep, time.Since(start), err
}

// report writes doc as indented JSON, or calls text.
func report(out io.Writer, asJSON bool, doc any, text func(io.Writer)) error {
	if !asJSON {
		text(out)
		return nil
	}
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	return enc.Encode(doc)
}

// sharedLine describes the shared schema in one line, e.g.
// "shared: version 0 of 1, pending: 0001_catalog; no tenants yet".
func sharedLine(s app.SharedStatus) string {
	line := fmt.Sprintf("shared: version %d of %d, ", s.Version, s.Latest)
	if len(s.Pending) == 0 {
		line += "up to date"
	} else {
		line += "pending: " + strings.Join(s.Pending, ", ")
	}
	if !s.Catalog {
		line += "; no tenants yet"
	}
	return line
}

// printReport prints a run's report; shared is set for a dry run, whose
// report starts with the shared schema and, without a catalog, ends there.
func printReport(w io.Writer, rep tenants.MigrateReport, shared *app.SharedStatus, took time.Duration) {
	dryRun := shared != nil
	if dryRun {
		fmt.Fprintf(w, "dry run: %s\n", sharedLine(*shared))
		if !shared.Catalog {
			return
		}
		fmt.Fprintf(w, "dry run: %d of %d tenants would be migrated to version %d; %d up to date\n",
			len(rep.Pending), rep.Total, rep.Latest, rep.UpToDate)
		printRunDatabases(w, rep, dryRun)
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		for _, p := range rep.Pending {
			fmt.Fprintf(tw, "  %s\t%s%d → %d\t%s\n", p.Tenant, databaseCell(rep, p.Database), p.From, p.To, strings.Join(p.Migrations, ", "))
		}
		_ = tw.Flush()
	} else {
		fmt.Fprintf(w, "%d tenants: %d migrated to version %d, %d up to date, %d failed (%s, jobs %d)\n",
			rep.Total, rep.Migrated, rep.Latest, rep.UpToDate, rep.Failed, took.Round(time.Millisecond), rep.Jobs)
		printRunDatabases(w, rep, dryRun)
	}
	if rep.Failed > 0 {
		fmt.Fprintf(w, "failed, rolled back and left at their previous version:\n")
		for _, f := range rep.Failures {
			if len(rep.Databases) > 1 {
				fmt.Fprintf(w, "  %s (%s): %s\n", f.Tenant, f.Database, f.Error)
			} else {
				fmt.Fprintf(w, "  %s: %s\n", f.Tenant, f.Error)
			}
		}
		if !dryRun {
			fmt.Fprintf(w, "fix the cause and run `tenantry migrate` again: only these are retried\n")
		}
	}
}

// printRunDatabases prints a line per database when more than one is
// configured: with one, the run's own line says it all.
func printRunDatabases(w io.Writer, rep tenants.MigrateReport, dryRun bool) {
	if len(rep.Databases) < 2 {
		return
	}
	for _, d := range rep.Databases {
		if dryRun {
			fmt.Fprintf(w, "  database %s: %d tenants, %d would be migrated, %d up to date, %d failed\n",
				d.Name, d.Total, d.Pending, d.UpToDate, d.Failed)
			continue
		}
		jobs := ""
		if d.Jobs > 0 { // 0: none of its tenants was worked on
			jobs = fmt.Sprintf(" (jobs %d)", d.Jobs)
		}
		fmt.Fprintf(w, "  database %s: %d tenants, %d migrated, %d up to date, %d failed%s\n",
			d.Name, d.Total, d.Migrated, d.UpToDate, d.Failed, jobs)
	}
}

// databaseCell is a table cell naming a tenant's database, empty when
// only one database is configured.
func databaseCell(rep tenants.MigrateReport, name string) string {
	if len(rep.Databases) < 2 {
		return ""
	}
	return name + "\t"
}

// statusJSON is the status --json document: the tenants' report, as
// before, with what the shared schema lacks and whether the catalog exists.
type statusJSON struct {
	tenants.StatusReport
	SharedPending []string `json:"shared_pending"`
	Catalog       bool     `json:"catalog"`
}

func printStatus(w io.Writer, st tenants.StatusReport, shared app.SharedStatus, behindOnly, asJSON bool) error {
	if behindOnly {
		kept := st.Tenants[:0:0]
		for _, t := range st.Tenants {
			if t.Version != st.Latest {
				kept = append(kept, t)
			}
		}
		st.Tenants = kept
	}
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(statusJSON{StatusReport: st, SharedPending: shared.Pending, Catalog: shared.Catalog})
	}
	if !shared.Catalog {
		_, err := fmt.Fprintln(w, sharedLine(shared))
		return err
	}
	// The database column appears only when there is a choice of them,
	// so the one-database output stays what scripts already parse.
	several := len(st.Databases) > 1
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if several {
		fmt.Fprintln(tw, "NAME\tSCHEMA\tDATABASE\tSTATUS\tVERSION\tPENDING")
	} else {
		fmt.Fprintln(tw, "NAME\tSCHEMA\tSTATUS\tVERSION\tPENDING")
	}
	for _, t := range st.Tenants {
		if several {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\n", t.Name, t.Schema, t.Database, t.Status, t.Version, t.Pending)
		} else {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\n", t.Name, t.Schema, t.Status, t.Version, t.Pending)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "code version %d (shared %d of %d): %d tenants, %d up to date, %d behind, %d ahead\n",
		st.Latest, st.Shared, st.SharedLatest, st.UpToDate+st.Behind+st.Ahead, st.UpToDate, st.Behind, st.Ahead)
	if err != nil {
		return err
	}
	if several {
		for _, d := range st.Databases {
			if _, err := fmt.Fprintf(w, "  database %s: %d tenants, %d up to date, %d behind, %d ahead\n",
				d.Name, d.Tenants, d.UpToDate, d.Behind, d.Ahead); err != nil {
				return err
			}
		}
	}
	if len(shared.Pending) == 0 {
		return nil
	}
	_, err = fmt.Fprintln(w, sharedLine(shared))
	return err
}

// progress shows a run's progress: a bar with done/total, failures and an
// ETA when stderr is a terminal, otherwise a log line every few seconds,
// which is what a CI log or a log collector wants.
type progress struct {
	tty     *terminal
	log     *slog.Logger
	verb    string
	bar     *progressbar.ProgressBar
	total   int
	last    time.Time
	started time.Time
	final   tenants.Progress
}

// logEvery spaces the plain progress lines.
const logEvery = 2 * time.Second

func newProgress(tty *terminal, log *slog.Logger, dryRun bool) *progress {
	verb := "migrating"
	if dryRun {
		verb = "checking"
	}
	return &progress{tty: tty, log: log, verb: verb}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

func (p *progress) start(total int) {
	p.total, p.started, p.last = total, time.Now(), time.Now()
	if total == 0 {
		return
	}
	if isTerminal(p.tty.w) {
		p.bar = progressbar.NewOptions(total,
			progressbar.OptionSetWriter(p.tty.w),
			progressbar.OptionSetDescription(p.verb),
			progressbar.OptionShowCount(),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionSetElapsedTime(true),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionSetWidth(40),
			progressbar.OptionOnCompletion(func() { fmt.Fprintln(p.tty.w) }),
		)
		p.tty.setBar(p.bar)
		return
	}
	p.log.Info(p.verb+" tenants", "total", total)
}

func (p *progress) update(pr tenants.Progress) {
	p.final = pr
	if p.bar != nil {
		p.tty.withBar(func(bar *progressbar.ProgressBar) {
			if pr.Failed > 0 {
				bar.Describe(fmt.Sprintf("%s (%d failed)", p.verb, pr.Failed))
			}
			_ = bar.Set(pr.Done)
		})
		return
	}
	if time.Since(p.last) < logEvery {
		return
	}
	p.last = time.Now()
	p.logLine(pr)
}

func (p *progress) finish() {
	p.tty.setBar(nil)
	if p.bar != nil || p.total == 0 {
		return
	}
	p.logLine(p.final)
}

func (p *progress) logLine(pr tenants.Progress) {
	elapsed := time.Since(p.started)
	var eta time.Duration
	if pr.Done > 0 {
		eta = time.Duration(float64(elapsed) / float64(pr.Done) * float64(p.total-pr.Done))
	}
	p.log.Info("migrate progress", "done", pr.Done, "failed", pr.Failed, "total", p.total,
		"elapsed", elapsed.Round(100*time.Millisecond), "eta", eta.Round(time.Second))
}
