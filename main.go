// Command tenantry serves many tenants from one process and one database.
// The commands here only parse flags and configuration; package app builds
// and runs everything.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/spf13/cobra"

	"tenantry/app"
	"tenantry/config"
	"tenantry/logging"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRoot(os.Stdout, os.Stderr).ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "tenantry:", err)
		os.Exit(exitCode(err))
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
	root.AddCommand(migrateCommand(stderr))
	root.AddCommand(tenantsCommand(stderr))
	root.AddCommand(databasesCommand(stderr))
	root.AddCommand(doctorCommand(stderr))
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

// newLogger is the process's one logger. Every line logged with a
// request's context carries its request_id and tenant (package logging).
func newLogger(c config.Log, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.Level))
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewTextHandler(w, opts)
	if c.Format == "json" {
		h = slog.NewJSONHandler(w, opts)
	}
	return slog.New(logging.NewHandler(h))
}

// withApp loads the configuration, opens the app, runs fn and closes it.
// Opening applies any pending shared migrations.
func withApp(cmd *cobra.Command, stderr io.Writer, fn func(ctx context.Context, a *app.App) error) error {
	return openApp(cmd, stderr, fn)
}

// withReadOnlyApp is withApp for commands that only look: it applies
// nothing, so the catalog may not exist yet (App.SharedStatus says).
func withReadOnlyApp(cmd *cobra.Command, stderr io.Writer, fn func(ctx context.Context, a *app.App) error) error {
	return openApp(cmd, stderr, fn, app.ReadOnly())
}

func openApp(cmd *cobra.Command, stderr io.Writer, fn func(ctx context.Context, a *app.App) error, opts ...app.Option) error {
	cfg, err := loadConfig(cmd)
	if err != nil {
		return err
	}
	log := newLogger(cfg.Log, stderr)
	opts = append([]app.Option{app.WithOpenAPI(openAPI), app.WithAdminOpenAPI(adminOpenAPI)}, opts...)
	a, err := app.Open(cmd.Context(), cfg, log, opts...)
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
