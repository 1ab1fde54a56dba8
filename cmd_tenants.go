package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
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
		status("resume", "Serve a suspended tenant again", tenants.StatusActive))
	return cmd
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
