package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"tenantry/app"
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
				return printTenants(cmd.OutOrStdout(), ts, asJSON)
			})
		},
	}
	list.Flags().BoolVar(&asJSON, "json", false, "print JSON")

	var name, schema string
	var hosts []string
	add := &cobra.Command{
		Use:   "add --name NAME --host HOST[:PORT] [--host ...] [--schema SCHEMA]",
		Short: "Create a tenant: its schema, its tables and its catalog rows, in one transaction",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withApp(cmd, stderr, func(ctx context.Context, a *app.App) error {
				t, err := a.Catalog.Create(ctx, tenants.Spec{Name: name, Schema: schema, Hosts: hosts})
				if err != nil {
					return err
				}
				return printTenants(cmd.OutOrStdout(), []tenants.Tenant{*t}, false)
			})
		},
	}
	add.Flags().StringVar(&name, "name", "", "tenant name (required)")
	add.Flags().StringVar(&schema, "schema", "", "schema name (default: derived from the name)")
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
					return printTenants(cmd.OutOrStdout(), []tenants.Tenant{*t}, false)
				})
			},
		}
	}
	cmd.AddCommand(list, add, remove,
		status("suspend", "Stop serving a tenant (403), keeping its data", tenants.StatusSuspended),
		status("resume", "Serve a suspended tenant again", tenants.StatusActive),
		limitsCommand(stderr))
	return cmd
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

func printTenants(w io.Writer, ts []tenants.Tenant, asJSON bool) error {
	if asJSON {
		type row struct {
			tenants.Tenant
			Hosts []string `json:"hosts"`
		}
		rows := make([]row, 0, len(ts))
		for _, t := range ts {
			rows = append(rows, row{Tenant: t, Hosts: t.HostNames()})
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(rows)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSCHEMA\tSTATUS\tVERSION\tHOSTS")
	for _, t := range ts {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", t.Name, t.Schema, t.Status, t.SchemaVersion, strings.Join(t.HostNames(), ","))
	}
	return tw.Flush()
}
