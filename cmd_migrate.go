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
	var f migrateFlags
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Apply shared migrations, then pending tenant migrations to every tenant, in parallel",
		Long: `Apply the shared (catalog) migrations, then the pending tenant migrations to every
catalogued tenant, --jobs at a time, each tenant in its own transaction under its own
advisory lock. A failing tenant is rolled back and listed while the others go on; the
command then exits non-zero and running it again finishes the rest. Tenants configured
under "tenants:" are created afterwards if missing.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withApp(cmd, stderr, func(ctx context.Context, a *app.App) error {
				return migrate(ctx, a, f, cmd.OutOrStdout(), stderr)
			})
		},
	}
	cmd.Flags().IntVar(&f.jobs, "jobs", 0, "tenants migrated at once (default: the number of CPUs, at most database.max_open_conns)")
	cmd.Flags().StringVar(&f.tenant, "tenant", "", "migrate only the tenant of this name")
	cmd.Flags().BoolVar(&f.dryRun, "dry-run", false, "list what would be applied to each tenant and change nothing")
	cmd.Flags().BoolVar(&f.json, "json", false, "print the report as JSON")

	var behindOnly, asJSON bool
	status := &cobra.Command{
		Use:   "status",
		Short: "Show each tenant's schema version and how many migrations it lacks",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withApp(cmd, stderr, func(ctx context.Context, a *app.App) error {
				st, err := a.Catalog.MigrationStatus(ctx)
				if err != nil {
					return err
				}
				return printStatus(cmd.OutOrStdout(), st, behindOnly, asJSON)
			})
		},
	}
	status.Flags().BoolVar(&behindOnly, "behind", false, "list only tenants not at the code's version")
	status.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.AddCommand(status)
	return cmd
}

// migrate runs Catalog.Migrate with progress on stderr and the report on
// out, then ensures the configured tenants.
func migrate(ctx context.Context, a *app.App, f migrateFlags, out, stderr io.Writer) error {
	p := newProgress(stderr, a.Log, f.dryRun)
	start := time.Now()
	rep, err := a.Catalog.Migrate(ctx, tenants.MigrateOptions{
		Jobs: f.jobs, Tenant: f.tenant, DryRun: f.dryRun, Start: p.start, Progress: p.update,
	})
	p.finish()
	if rep.Total == 0 && err != nil {
		return err // nothing ran: unknown --tenant, catalog unreadable
	}
	if f.json {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		if jerr := enc.Encode(rep); jerr != nil {
			return jerr
		}
	} else {
		printReport(out, rep, f.dryRun, time.Since(start))
	}
	if err != nil {
		return err
	}
	if f.dryRun || f.tenant != "" {
		return nil
	}
	return a.Seed(ctx)
}

func printReport(w io.Writer, rep tenants.MigrateReport, dryRun bool, took time.Duration) {
	if dryRun {
		fmt.Fprintf(w, "dry run: %d of %d tenants would be migrated to version %d; %d up to date\n",
			len(rep.Pending), rep.Total, rep.Latest, rep.UpToDate)
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		for _, p := range rep.Pending {
			fmt.Fprintf(tw, "  %s\t%d → %d\t%s\n", p.Tenant, p.From, p.To, strings.Join(p.Migrations, ", "))
		}
		_ = tw.Flush()
	} else {
		fmt.Fprintf(w, "%d tenants: %d migrated to version %d, %d up to date, %d failed (%s, jobs %d)\n",
			rep.Total, rep.Migrated, rep.Latest, rep.UpToDate, rep.Failed, took.Round(time.Millisecond), rep.Jobs)
	}
	if rep.Failed > 0 {
		fmt.Fprintf(w, "failed, rolled back and left at their previous version:\n")
		for _, f := range rep.Failures {
			fmt.Fprintf(w, "  %s: %s\n", f.Tenant, f.Error)
		}
		if !dryRun {
			fmt.Fprintf(w, "fix the cause and run `tenantry migrate` again: only these are retried\n")
		}
	}
}

func printStatus(w io.Writer, st tenants.StatusReport, behindOnly, asJSON bool) error {
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
		return enc.Encode(st)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSCHEMA\tSTATUS\tVERSION\tPENDING")
	for _, t := range st.Tenants {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\n", t.Name, t.Schema, t.Status, t.Version, t.Pending)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "code version %d (shared %d of %d): %d tenants, %d up to date, %d behind, %d ahead\n",
		st.Latest, st.Shared, st.SharedLatest, st.UpToDate+st.Behind+st.Ahead, st.UpToDate, st.Behind, st.Ahead)
	return err
}

// progress shows a run's progress: a bar with done/total, failures and an
// ETA when stderr is a terminal, otherwise a log line every few seconds,
// which is what a CI log or a log collector wants.
type progress struct {
	w       io.Writer
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

func newProgress(w io.Writer, log *slog.Logger, dryRun bool) *progress {
	verb := "migrating"
	if dryRun {
		verb = "checking"
	}
	return &progress{w: w, log: log, verb: verb}
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
	if isTerminal(p.w) {
		p.bar = progressbar.NewOptions(total,
			progressbar.OptionSetWriter(p.w),
			progressbar.OptionSetDescription(p.verb),
			progressbar.OptionShowCount(),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionSetElapsedTime(true),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionSetWidth(40),
			progressbar.OptionOnCompletion(func() { fmt.Fprintln(p.w) }),
		)
		return
	}
	p.log.Info(p.verb+" tenants", "total", total)
}

func (p *progress) update(pr tenants.Progress) {
	p.final = pr
	if p.bar != nil {
		if pr.Failed > 0 {
			p.bar.Describe(fmt.Sprintf("%s (%d failed)", p.verb, pr.Failed))
		}
		_ = p.bar.Set(pr.Done)
		return
	}
	if time.Since(p.last) < logEvery {
		return
	}
	p.last = time.Now()
	p.logLine(pr)
}

func (p *progress) finish() {
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
