package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"tenantry/admin"
	"tenantry/app"
	"tenantry/config"
	"tenantry/tenants"
)

func tenantsCommand(stderr io.Writer) *cobra.Command {
	cmd := &cobra.Command{Use: "tenants", Short: "List, add, suspend, resume and remove tenants"}

	var asJSON bool
	list := &cobra.Command{
		Use:   "list",
		Short: "List tenants with their schema, status and hosts",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withApp(cmd, stderr, func(ctx context.Context, a *app.App) error {
				ts, err := a.Catalog.List(ctx)
				if err != nil {
					return err
				}
				return printTenants(cmd.OutOrStdout(), a.Catalog, ts, asJSON)
			})
		},
	}
	list.Flags().BoolVar(&asJSON, "json", false, "print JSON")

	var name, schema, database string
	var hosts []string
	add := &cobra.Command{
		Use:     "add --name NAME --host HOST[:PORT] [--host ...] [--schema SCHEMA] [--database NAME]",
		Aliases: []string{"create"},
		Short:   "Create a tenant: its schema, its tables and its catalog rows, in one transaction",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withApp(cmd, stderr, func(ctx context.Context, a *app.App) error {
				t, err := a.Catalog.Create(ctx, tenants.Spec{Name: name, Schema: schema, Hosts: hosts, Database: database})
				if err != nil {
					return err
				}
				return printTenants(cmd.OutOrStdout(), a.Catalog, []tenants.Tenant{*t}, false)
			})
		},
	}
	add.Flags().StringVar(&name, "name", "", "tenant name (required)")
	add.Flags().StringVar(&schema, "schema", "", "schema name (default: derived from the name)")
	add.Flags().StringVar(&database, "database", "", "configured database to create it on (default: the one with the fewest tenants; see `tenantry databases list`)")
	add.Flags().StringSliceVar(&hosts, "host", nil, "host[:port] the tenant answers on (repeatable, required)")
	_ = add.MarkFlagRequired("name")
	_ = add.MarkFlagRequired("host")

	var dropData bool
	remove := &cobra.Command{
		Use:   "remove NAME",
		Short: "Remove a tenant; its data is archived unless --drop-data",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withApp(cmd, stderr, func(ctx context.Context, a *app.App) error {
				archived, err := a.Catalog.Remove(ctx, args[0], dropData)
				if err != nil {
					return err
				}
				if dropData {
					fmt.Fprintf(cmd.OutOrStdout(), "removed %s and dropped its data\n", args[0])
				} else {
					fmt.Fprintf(cmd.OutOrStdout(), "removed %s; data kept as %s\n", args[0], archived)
				}
				return nil
			})
		},
	}
	remove.Flags().BoolVar(&dropData, "drop-data", false, "drop the tenant's schema and tables instead of archiving them")

	status := func(use, short string, st tenants.Status) *cobra.Command {
		return &cobra.Command{
			Use:   use + " NAME",
			Short: short,
			Args:  cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				return withApp(cmd, stderr, func(ctx context.Context, a *app.App) error {
					t, err := a.Catalog.SetStatus(ctx, args[0], st)
					if err != nil {
						return err
					}
					return printTenants(cmd.OutOrStdout(), a.Catalog, []tenants.Tenant{*t}, false)
				})
			},
		}
	}
	cmd.AddCommand(list, add, remove,
		status("suspend", "Stop serving a tenant (403), keeping its data", tenants.StatusSuspended),
		status("resume", "Serve a suspended tenant again", tenants.StatusActive),
		limitsCommand(stderr), statsCommand(stderr), moveCommand(stderr))
	return cmd
}

// moveCommand is `tenantry tenants move NAME --to DB [--drop-source]
// [--json]`: Catalog.Move, run by this process, which the tenant's
// serving instances follow live (reads served throughout, writes paused
// only for the final catch-up and switch).
func moveCommand(stderr io.Writer) *cobra.Command {
	var to string
	var dropSource, asJSON bool
	var copyRate int64
	cmd := &cobra.Command{
		Use:   "move NAME --to DATABASE [--drop-source] [--copy-rate BYTES] [--json]",
		Short: "Move a tenant's data to another configured database while it is served",
		Long: `Move a tenant's schema to another configured database (see tenantry databases
list) while it is served: its tables are copied while reads and writes go on,
then writes are paused (503 with Retry-After) for the final catch-up, the
check of every table's rows and checksum, and the switch, which every
instance follows within a second. The old schema is then kept under an archive
name, or dropped with --drop-source. A move that fails or is interrupted
leaves the tenant served from where it was, and can be run again.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withApp(cmd, stderr, func(ctx context.Context, a *app.App) error {
				if _, err := a.Catalog.CheckMove(ctx, args[0], to); err != nil {
					return err
				}
				if copyRate < 0 {
					return fmt.Errorf("--copy-rate %d: want 0 (the default) or a number of bytes a second", copyRate)
				}
				rep, err := a.Catalog.Move(ctx, args[0], tenants.MoveOptions{To: to, DropSource: dropSource, CopyRate: copyRate})
				if err != nil {
					return err
				}
				return printMove(cmd.OutOrStdout(), rep, asJSON)
			})
		},
	}
	cmd.Flags().StringVar(&to, "to", "", "the configured database to move to (required)")
	cmd.Flags().BoolVar(&dropSource, "drop-source", false, "drop the old schema after the switch instead of archiving it")
	cmd.Flags().Int64Var(&copyRate, "copy-rate", 0, "bytes a second the bulk copy reads at most while the tenant is served (0: 1 MiB/s; faster costs the neighbours' latency)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the move's report as JSON (POST /admin/tenants/NAME/move's answer)")
	_ = cmd.MarkFlagRequired("to")
	return cmd
}

// printMove prints what a move did: one line, then a table per table
// moved, or the report as JSON.
func printMove(w io.Writer, rep tenants.MoveReport, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	kept := "source dropped"
	if rep.ArchivedAs != "" {
		kept = "source kept as " + rep.ArchivedAs
	}
	fmt.Fprintf(w, "moved %s from %s to %s: %d rows in %d tables; copy %dms, writes paused %dms; %s\n",
		rep.Tenant, rep.From, rep.To, rep.Rows, len(rep.Tables), rep.CopyMS, rep.PauseMS, kept)
	if len(rep.Tables) == 0 {
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TABLE\tROWS\tCHECKSUM")
	for _, t := range rep.Tables {
		fmt.Fprintf(tw, "%s\t%d\t%s\n", t.Table, t.Rows, t.Checksum)
	}
	return tw.Flush()
}

// limitsCommand is `tenantry tenants limits NAME [--rate N] [--burst N]
// [--concurrency N]`: it sets the flags given, each 0 going back to the
// configured default, and shows the tenant's limits as they now apply.
// Without flags it only shows them.
func limitsCommand(stderr io.Writer) *cobra.Command {
	var rate float64
	var burst, concurrency int
	cmd := &cobra.Command{
		Use:   "limits NAME [--rate N] [--burst N] [--concurrency N]",
		Short: "Show or set a tenant's own rate and concurrency limits (0: the configured default)",
		Long: `Show or set a tenant's own limits. Each flag given becomes the tenant's
override of its tenancy.* default; 0 removes the override, so the default
applies again. Flags left out keep their value. Every process applies the
change within a second. Without flags the limits are only shown.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var ch tenants.LimitsChange
			fl := cmd.Flags()
			if fl.Changed("rate") {
				ch.Rate = &rate
			}
			if fl.Changed("burst") {
				ch.Burst = &burst
			}
			if fl.Changed("concurrency") {
				ch.Concurrency = &concurrency
			}
			return withApp(cmd, stderr, func(ctx context.Context, a *app.App) error {
				t, err := a.Catalog.SetLimits(ctx, args[0], ch)
				if err != nil {
					return err
				}
				return printLimits(cmd.OutOrStdout(), t, a.Limits.For(t))
			})
		},
	}
	cmd.Flags().Float64Var(&rate, "rate", 0, "requests per second, on average (0: tenancy.rate_limit)")
	cmd.Flags().IntVar(&burst, "burst", 0, "requests at once above the rate (0: tenancy.rate_burst)")
	cmd.Flags().IntVar(&concurrency, "concurrency", 0, "requests served at once (0: tenancy.max_concurrent_per_tenant)")
	return cmd
}

// printLimits shows each limit that applies to t and whether it is t's
// own or the configured default.
func printLimits(w io.Writer, t *tenants.Tenant, eff tenants.Effective) error {
	own := t.Limits()
	show := func(v string, isOwn bool) string {
		if isOwn {
			return v + " (own)"
		}
		return v + " (default)"
	}
	num := func(n float64) string {
		if n == 0 {
			return "unlimited"
		}
		return strconv.FormatFloat(n, 'f', -1, 64)
	}
	// A burst is a burst above the rate: with no rate it means nothing.
	burst := "-"
	if eff.Rate > 0 {
		burst = show(num(float64(eff.Burst)), own.Burst != nil)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tRATE/S\tBURST\tCONCURRENCY")
	fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", t.Name, show(num(eff.Rate), own.Rate != nil),
		burst, show(num(float64(eff.Concurrency)), own.Concurrency != nil))
	return tw.Flush()
}

// printTenants prints ts as a table or as JSON. The DATABASE column is
// always there, "main" (database.name) in a one-database set-up too, so
// that its columns do not depend on the configuration.
func printTenants(w io.Writer, cat *tenants.Catalog, ts []tenants.Tenant, asJSON bool) error {
	if asJSON {
		type row struct {
			tenants.Tenant
			Hosts    []string `json:"hosts"`
			Database string   `json:"database"`
		}
		rows := make([]row, 0, len(ts))
		for _, t := range ts {
			rows = append(rows, row{Tenant: t, Hosts: t.HostNames(), Database: cat.DatabaseName(&t)})
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(rows)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSCHEMA\tSTATUS\tDATABASE\tVERSION\tHOSTS")
	for _, t := range ts {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\n", t.Name, t.Schema, t.Status, cat.DatabaseName(&t), t.SchemaVersion, strings.Join(t.HostNames(), ","))
	}
	return tw.Flush()
}

// exitStorageOnly is the exit status of `tenantry tenants stats` when it
// printed the tenant's rows and bytes but no instance gave it the request
// figures, which only a serving process has.
const exitStorageOnly = 3

// statsTimeout bounds the request to the admin API. Its answer counts
// the tenant's rows, which takes longer the more data the tenant has.
const statsTimeout = 30 * time.Second

// statsFlags are the flags of `tenantry tenants stats`.
type statsFlags struct {
	json            bool
	adminURL, token string
}

// statsCommand is `tenantry tenants stats NAME [--json]`: the tenant's
// requests over the last 1, 5 and 15 minutes, which only the serving
// process knows, so it asks the running instance's admin API; and its
// rows and bytes, which it reads from the database itself when no
// instance answers.
func statsCommand(stderr io.Writer) *cobra.Command {
	var f statsFlags
	cmd := &cobra.Command{
		Use:   "stats NAME [--json] [--admin-url URL] [--token TOKEN]",
		Short: "Show a tenant's requests, errors and latency of the last 1, 5 and 15 minutes, and its rows and bytes",
		Long: `Show a tenant's figures: requests, errors (5xx), client errors (4xx) and p50/p99
latency over the last 1, 5 and 15 minutes, and rows per table and bytes on disk.

Request figures live in the serving process, so the command asks the running
instance's admin API (GET /admin/tenants/NAME/stats at admin.listen, with
admin.token; --admin-url and --token override them). With several instances,
each knows only its own requests: point --admin-url at each. When no instance
answers (or it refuses the token), the command says why and still prints the
rows and bytes, read from the database directly.

Exit status: 0 all figures shown; 3 only rows and bytes (no instance gave the
request figures); 1 anything else (unknown tenant, database unreachable).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return runStats(cmd, stderr, args[0], f) },
	}
	cmd.Flags().BoolVar(&f.json, "json", false, "print JSON (the admin API's answer; requests is null without an instance)")
	cmd.Flags().StringVar(&f.adminURL, "admin-url", "", "the instance's admin API (default: http://<admin.listen>)")
	cmd.Flags().StringVar(&f.token, "token", "", "the admin token (default: admin.token)")
	return cmd
}

func runStats(cmd *cobra.Command, stderr io.Writer, name string, f statsFlags) error {
	cfg, err := loadConfig(cmd)
	if err != nil {
		return err
	}
	st, unanswered := fetchStats(cmd.Context(), cfg.Admin, name, f)
	if unanswered == nil {
		return printStats(cmd.OutOrStdout(), st, f.json)
	}
	err = withReadOnlyApp(cmd, stderr, func(ctx context.Context, a *app.App) error {
		t, err := a.Catalog.Get(ctx, name)
		if err != nil {
			return err
		}
		storage, err := tenants.NewUsage(a.Catalog).Measure(ctx, t)
		if err != nil {
			return err
		}
		return printStats(cmd.OutOrStdout(), admin.TenantStats{Name: t.Name, Storage: storage}, f.json)
	})
	switch {
	case errors.Is(err, tenants.ErrNotFound):
		return err
	case err != nil:
		return fmt.Errorf("%w (and no request figures either: %v)", err, unanswered)
	}
	return &exitError{code: exitStorageOnly, err: fmt.Errorf("%w; request figures live in the serving process, so only rows and bytes, read from the database, are shown", unanswered)}
}

// fetchStats asks the admin API at f.adminURL, or at admin.listen, for the
// tenant's stats. The error says, for the operator, why it has none.
func fetchStats(ctx context.Context, ac config.Admin, name string, f statsFlags) (admin.TenantStats, error) {
	var st admin.TenantStats
	base, token := f.adminURL, f.token
	if base == "" {
		if ac.Listen == "" {
			return st, errors.New("admin.listen is not set and no --admin-url was given: no instance to ask")
		}
		base = "http://" + ac.Listen
	}
	if token == "" {
		token = ac.Token
	}
	ctx, cancel := context.WithTimeout(ctx, statsTimeout)
	defer cancel()
	target := strings.TrimSuffix(base, "/") + "/admin/tenants/" + url.PathEscape(name) + "/stats"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return st, fmt.Errorf("admin API address %q: %w", base, err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return st, fmt.Errorf("no tenantry instance answered at %s: %w", base, err)
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusUnauthorized:
		return st, fmt.Errorf("the instance at %s refused the admin token (401): set admin.token or pass --token "+
			"(a process started with an empty admin.token logged the token it generated, at WARN)", base)
	default:
		return st, fmt.Errorf("the instance at %s answered %s", base, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return st, fmt.Errorf("the instance at %s answered what is not tenant stats: %w", base, err)
	}
	return st, nil
}

// printStats prints a tenant's stats as two tables, requests and
// storage, or as the admin API's JSON.
func printStats(w io.Writer, st admin.TenantStats, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(st)
	}
	fmt.Fprintf(w, "tenant %s\n\n", st.Name)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if st.Requests == nil {
		fmt.Fprintln(tw, "requests: not available (only a serving instance has them)")
	} else {
		ms := func(v *float64) string {
			if v == nil {
				return "-"
			}
			return strconv.FormatFloat(*v, 'f', -1, 64)
		}
		fmt.Fprintln(tw, "WINDOW\tFROM\tREQUESTS\tREQ/S\tERRORS\tCLIENT ERRORS\tP50 MS\tP99 MS")
		for _, win := range st.Requests {
			rate := 0.0
			if win.Seconds > 0 {
				rate = float64(win.Requests) / win.Seconds
			}
			fmt.Fprintf(tw, "%dm\t%s\t%d\t%.2f\t%d\t%d\t%s\t%s\n", win.Minutes, win.From.Format(time.RFC3339),
				win.Requests, rate, win.Errors, win.ClientErrors, ms(win.P50), ms(win.P99))
		}
	}
	fmt.Fprintln(tw)
	bytes := func(b *int64) string {
		if b == nil {
			return "-"
		}
		return strconv.FormatInt(*b, 10)
	}
	fmt.Fprintln(tw, "TABLE\tROWS\tBYTES")
	if s := st.Storage; s != nil {
		for _, ts := range s.Tables {
			fmt.Fprintf(tw, "%s\t%d\t%s\n", ts.Table, ts.Rows, bytes(ts.Bytes))
		}
		fmt.Fprintf(tw, "total\t%d\t%s\n", s.Rows, bytes(s.Bytes))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if s := st.Storage; s != nil && s.File != nil {
		fmt.Fprintf(w, "\nSQLite cannot tell one table's pages from another's here; the whole database file (all tenants): %d pages of %d bytes = %d bytes, %d free\n",
			s.File.Pages, s.File.PageSize, s.File.Bytes, s.File.FreePages)
	}
	return nil
}
