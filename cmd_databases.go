package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"tenantry/app"
	"tenantry/tenants"
)

// databasesCommand is `tenantry databases list [--json]`: every
// configured database with its tenants, size and whether it answers.
func databasesCommand(stderr io.Writer) *cobra.Command {
	cmd := &cobra.Command{Use: "databases", Short: "List the databases tenants are placed on"}
	var asJSON bool
	list := &cobra.Command{
		Use:   "list [--json]",
		Short: "List every configured database: its tenants, its size and whether it answers",
		Long: `List every configured database, the control database (database.name, which
holds the catalog) first, then each of databases: with the number of tenants
the catalog places on it, its size on disk and whether it answers. A database
that does not answer within 2 seconds is listed as unavailable, with the
reason, and the others as usual; only a catalog that cannot be read fails the
command. A database the catalog names but the configuration lacks is listed
last, as unavailable.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withApp(cmd, stderr, func(ctx context.Context, a *app.App) error {
				dbs, err := a.Catalog.DatabaseStats(ctx)
				if err != nil {
					return err
				}
				return printDatabases(cmd.OutOrStdout(), dbs, asJSON)
			})
		},
	}
	list.Flags().BoolVar(&asJSON, "json", false, "print JSON (GET /admin/databases' answer)")
	cmd.AddCommand(list)
	return cmd
}

// printDatabases prints dbs as a table, or as the admin API's JSON.
func printDatabases(w io.Writer, dbs []tenants.DatabaseStats, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(struct {
			Databases []tenants.DatabaseStats `json:"databases"`
		}{dbs})
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tTENANTS\tSIZE\tSTATUS")
	for _, d := range dbs {
		name := d.Name
		if d.Control {
			name += " (control)"
		}
		size, status := "-", "available"
		if d.SizeBytes != nil {
			size = humanBytes(*d.SizeBytes)
		}
		if !d.Available {
			status = "unavailable: " + d.Error
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", name, d.Tenants, size, status)
	}
	return tw.Flush()
}

// humanBytes writes n in the largest binary unit that keeps it at 1 or
// more, with one decimal: 7.6 MiB.
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
