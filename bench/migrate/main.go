// Command migrate measures tenant provisioning and migration on a real
// PostgreSQL server, in a scratch database it creates and drops.
//
// It provisions -tenants tenants through Catalog.Create (timing -samples
// single creations, one after another, once -present tenants exist), then
// times a no-op Catalog.Migrate over all of them and one that applies an
// ADD COLUMN migration to every tenant. The figures go in
// docs/BENCHMARKS.md.
//
//	go run ./bench/migrate -tenants 10000
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver for the scratch database

	"tenantry/app"
	"tenantry/bench/internal/benchdb"
	"tenantry/config"
	"tenantry/migrations"
	"tenantry/tenants"
)

type options struct {
	dsn           string
	tenants       int
	present       int
	samples       int
	provisionJobs int
	jobs          int
	maxOpen       int
	strategy      string
	keep          bool
	out, verbose  io.Writer
}

func main() {
	var o options
	flag.StringVar(&o.dsn, "dsn", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable", "PostgreSQL server to create the scratch database on")
	flag.IntVar(&o.tenants, "tenants", 10000, "tenants to provision and migrate")
	flag.IntVar(&o.present, "present", 1000, "tenants already present when single creations are timed")
	flag.IntVar(&o.samples, "samples", 100, "single creations to time")
	flag.IntVar(&o.provisionJobs, "provision-jobs", 4, "concurrent creations while filling the database")
	flag.IntVar(&o.jobs, "jobs", 0, "migrate --jobs (0: one per CPU)")
	flag.IntVar(&o.maxOpen, "max-open-conns", 16, "database.max_open_conns")
	flag.StringVar(&o.strategy, "strategy", "schema", "tenancy strategy: schema or prefix")
	flag.BoolVar(&o.keep, "keep", false, "keep the scratch database")
	flag.Parse()
	o.out, o.verbose = os.Stdout, io.Discard
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := run(ctx, o)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench/migrate:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options) error {
	if o.present+o.samples > o.tenants {
		return fmt.Errorf("-present (%d) + -samples (%d) must not exceed -tenants (%d)", o.present, o.samples, o.tenants)
	}
	scratch, err := benchdb.Scratch(ctx, o.dsn, "tenantry_bench_", o.keep)
	if err != nil {
		return err
	}
	defer scratch.Drop()

	log := slog.New(slog.NewTextHandler(o.verbose, nil))
	cfg := config.Default()
	cfg.Database.Driver, cfg.Database.DSN = "postgres", scratch.DSN
	cfg.Database.MaxOpenConns, cfg.Database.MaxIdleConns = o.maxOpen, o.maxOpen
	cfg.Tenancy.Strategy, cfg.Tenants, cfg.Admin.Listen = o.strategy, nil, ""
	// The same wiring as the service: pool, scope, catalog, shared migrations.
	a, err := app.Open(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer func() { _ = a.Close() }()
	db, base, layout := a.DB, a.Catalog, a.Catalog.Layout()
	var version string
	if err := db.WithContext(ctx).Raw("SHOW server_version").Scan(&version).Error; err != nil {
		return err
	}
	fmt.Fprintf(o.out, "machine: %d CPUs (%s), %s, PostgreSQL %s, strategy %s, max_open_conns %d\n",
		runtime.NumCPU(), benchdb.CPUModel(), runtime.Version(), version, o.strategy, o.maxOpen)

	// Fill to -present, time -samples single creations, fill the rest.
	fill := func(from, to int) error {
		start := time.Now()
		if err := provision(ctx, base, from, to, o.provisionJobs); err != nil {
			return err
		}
		d := time.Since(start)
		fmt.Fprintf(o.out, "provision %d tenants (%d at a time): %s (%.0f tenants/s)\n",
			to-from, o.provisionJobs, d.Round(time.Millisecond), float64(to-from)/d.Seconds())
		return nil
	}
	if err := fill(0, o.present); err != nil {
		return err
	}
	lat := make([]time.Duration, 0, o.samples)
	for i := o.present; i < o.present+o.samples; i++ {
		start := time.Now()
		if _, err := base.Create(ctx, spec(i)); err != nil {
			return err
		}
		lat = append(lat, time.Since(start))
	}
	slices.Sort(lat)
	if len(lat) > 0 {
		fmt.Fprintf(o.out, "create one tenant with %d present (%d samples): median %s, p90 %s, max %s\n",
			o.present, len(lat), ms(lat[len(lat)/2]), ms(lat[len(lat)*9/10]), ms(lat[len(lat)-1]))
	}
	if err := fill(o.present+o.samples, o.tenants); err != nil {
		return err
	}

	if err := timeMigrate(ctx, o, "no-op migrate", base, o.tenants, 0); err != nil {
		return err
	}
	set, err := migrations.Tenant().Append("bench_nickname", map[migrations.Dialect]string{
		migrations.Postgres: `ALTER TABLE {{table "users"}} ADD COLUMN nickname text;`,
		migrations.SQLite:   `ALTER TABLE {{table "users"}} ADD COLUMN nickname text;`,
	})
	if err != nil {
		return err
	}
	next := tenants.NewCatalog(db, layout, log, tenants.WithMigrations(set))
	if err := timeMigrate(ctx, o, "ADD COLUMN migrate", next, 0, o.tenants); err != nil {
		return err
	}
	return timeMigrate(ctx, o, "no-op migrate after it", next, o.tenants, 0)
}

// timeMigrate runs one Migrate and checks it did what was expected.
func timeMigrate(ctx context.Context, o options, what string, c *tenants.Catalog, wantUpToDate, wantMigrated int) error {
	start := time.Now()
	rep, err := c.Migrate(ctx, tenants.MigrateOptions{Jobs: o.jobs})
	d := time.Since(start)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if rep.UpToDate != wantUpToDate || rep.Migrated != wantMigrated {
		return fmt.Errorf("%s: %d up to date and %d migrated, want %d and %d", what, rep.UpToDate, rep.Migrated, wantUpToDate, wantMigrated)
	}
	fmt.Fprintf(o.out, "%s over %d tenants (%d jobs): %s (%d migrated, %d up to date)\n",
		what, rep.Total, rep.Jobs, d.Round(time.Millisecond), rep.Migrated, rep.UpToDate)
	return nil
}

func spec(i int) tenants.Spec {
	name := fmt.Sprintf("bench%05d", i)
	return tenants.Spec{Name: name, Hosts: []string{name + ".bench.test"}}
}

// provision creates tenants [from, to) with jobs creations at a time.
func provision(ctx context.Context, c *tenants.Catalog, from, to, jobs int) error {
	var next atomic.Int64
	next.Store(int64(from))
	var wg sync.WaitGroup
	errs := make([]error, jobs)
	for j := range jobs {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= to || ctx.Err() != nil {
					return
				}
				if _, err := c.Create(ctx, spec(i)); err != nil {
					errs[j] = err
					return
				}
			}
		})
	}
	wg.Wait()
	return errors.Join(append(errs, ctx.Err())...)
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }
