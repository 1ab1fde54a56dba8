// Command tenantry serves many tenants from one process and one database.
// The commands here only parse flags and configuration; package app builds
// and runs everything.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"tenantry/app"
	"tenantry/config"
	"tenantry/tenants"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRoot(os.Stdout, os.Stderr).ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "tenantry:", err)
		os.Exit(1)
	}
}

func newRoot(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:           "tenantry",
		Short:         "Serve many tenants, each in its own schema, from one process",
		Long:          "tenantry serves a users API and web pages to many tenants from one process and one database.\nWith no command it serves (see `tenantry serve --help`).",
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE:          func(cmd *cobra.Command, _ []string) error { return serve(cmd, stderr) },
	}
	config.Flags(root.PersistentFlags())
	root.SetOut(stdout)
	root.SetErr(stderr)

	root.AddCommand(&cobra.Command{
		Use:   "serve",
		Short: "Serve every tenant on every server.listen address (the default command)",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return serve(cmd, stderr) },
	})
	root.AddCommand(&cobra.Command{
		Use:   "migrate",
		Short: "Apply shared migrations, then pending tenant migrations to every configured and catalogued tenant",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withApp(cmd, stderr, func(ctx context.Context, a *app.App) error {
				if err := a.Seed(ctx); err != nil {
					return err
				}
				return migrateAll(ctx, a, cmd.OutOrStdout())
			})
		},
	})
	root.AddCommand(tenantsCommand(stderr))
	root.AddCommand(&cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintln(cmd.OutOrStdout(), "tenantry", version())
		},
	})
	return root
}

func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		v := bi.Main.Version
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				v += " (" + s.Value[:12] + ")"
			}
		}
		return v
	}
	return "(devel)"
}

func loadConfig(cmd *cobra.Command) (config.Config, error) {
	return config.Load(cmd.Flags())
}

func newLogger(c config.Log, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.Level))
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// withApp loads the configuration, opens the app, runs fn and closes it.
func withApp(cmd *cobra.Command, stderr io.Writer, fn func(ctx context.Context, a *app.App) error) error {
	cfg, err := loadConfig(cmd)
	if err != nil {
		return err
	}
	log := newLogger(cfg.Log, stderr)
	a, err := app.Open(cmd.Context(), cfg, log, app.WithOpenAPI(openAPI))
	if err != nil {
		return err
	}
	defer func() { _ = a.Close() }()
	return fn(cmd.Context(), a)
}

func serve(cmd *cobra.Command, stderr io.Writer) error {
	return withApp(cmd, stderr, func(ctx context.Context, a *app.App) error {
		if err := a.Seed(ctx); err != nil {
			return err
		}
		lns, err := a.Listen()
		if err != nil {
			return err
		}
		return a.Serve(ctx, lns)
	})
}

func migrateAll(ctx context.Context, a *app.App, out io.Writer) error {
	rep, err := a.Catalog.Migrate(ctx, tenants.MigrateOptions{Progress: func(p tenants.Progress) {
		if p.Err != nil {
			fmt.Fprintf(out, "FAILED %s: %v\n", p.Tenant, p.Err)
		}
	}})
	fmt.Fprintf(out, "%d tenants: %d migrated, %d failed\n", rep.Total, rep.Migrated, rep.Failed)
	return err
}

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
