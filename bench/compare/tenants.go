package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	service "tenantry/app"
	"tenantry/config"
	"tenantry/migrations"
	"tenantry/tenants"
)

func host(i int) string { return fmt.Sprintf("t%d.bench:8082", i) }

// checkConfigKeys refuses -pool-groups and -stmt-cache when this tree's
// config.Database has no such key. config.Load refuses unknown keys, but
// only once tenantry starts, minutes into a sweep; this says so at once. compare builds tenantry from the
// same tree it is compiled in, so the struct it sees is the one tenantry
// decodes into.
func checkConfigKeys(o options) error {
	for _, k := range []struct {
		flag, key string
		n         int
	}{{"-pool-groups", "pool_groups", o.poolGroups}, {"-stmt-cache", "statement_cache_capacity", o.stmtCache}} {
		if k.n != 0 && !hasKey(config.Database{}, k.key) {
			return fmt.Errorf("%s %d: this tenantry has no database.%s key (config.Load would ignore it)", k.flag, k.n, k.key)
		}
	}
	if o.homeWait != "" {
		if !hasKey(config.Database{}, "home_wait") {
			return fmt.Errorf("-home-wait %s: this tenantry has no database.home_wait key", o.homeWait)
		}
		if _, err := time.ParseDuration(o.homeWait); err != nil {
			return fmt.Errorf("-home-wait: %w", err)
		}
	}
	return nil
}

// hasKey reports whether struct v has a field decoded from key.
func hasKey(v any, key string) bool {
	t := reflect.TypeOf(v)
	for i := range t.NumField() {
		if name, _, _ := strings.Cut(t.Field(i).Tag.Get("mapstructure"), ","); name == key {
			return true
		}
	}
	return false
}

// configYAML is tenantry's configuration for the sweep. The optional
// database keys are written only when their flags are set.
func configYAML(o options, dsn, token string) string {
	var db strings.Builder
	if o.poolGroups > 0 {
		fmt.Fprintf(&db, "  pool_groups: %d\n", o.poolGroups)
	}
	if o.stmtCache > 0 {
		fmt.Fprintf(&db, "  statement_cache_capacity: %d\n", o.stmtCache)
	}
	if o.homeWait != "" {
		fmt.Fprintf(&db, "  home_wait: %s\n", o.homeWait)
	}
	return fmt.Sprintf(`server:
  listen: [%q]
admin:
  listen: %q
  token: %q
database:
  driver: postgres
  dsn: %q
  max_open_conns: %d
  max_idle_conns: %d
%stenancy:
  strategy: schema
tenants:
  - name: t0
    hosts: [%q]
log:
%s`, strings.TrimPrefix(tenantryURL, "http://"), adminListen, token, dsn, o.pool, o.pool, db.String(), host(0), logYAML(o.accessLog))
}

// logYAML is the log block's body: as an operator runs it (info, one JSON
// access line per request) or quiet (warn, no access lines).
func logYAML(access bool) string {
	if access {
		return "  level: info\n  format: json\n  access: true\n"
	}
	return "  level: warn\n  access: false\n"
}

// provision creates tenants len(schemas)..n-1 through the Catalog (as
// `tenantry tenants add` would, without a process per tenant), seeds each
// one's users table with SQL, and returns schemas extended to n.
func provision(ctx context.Context, o options, dsn string, schemas []string, n int) ([]string, error) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg := config.Default()
	cfg.Database.Driver, cfg.Database.DSN = "postgres", dsn
	cfg.Database.MaxOpenConns, cfg.Database.MaxIdleConns = 8, 8
	cfg.Tenancy.Strategy, cfg.Tenants, cfg.Admin.Listen = "schema", nil, ""
	// The same wiring as the service: pool, scope, catalog, shared migrations.
	a, err := service.Open(ctx, cfg, log)
	if err != nil {
		return schemas, err
	}
	defer func() { _ = a.Close() }()
	raw, err := sql.Open("pgx", dsn)
	if err != nil {
		return schemas, err
	}
	defer raw.Close()

	from := len(schemas)
	schemas = append(schemas, make([]string, n-from)...)
	var done atomic.Int64
	err = parallel(ctx, from, n, o.provisioners, func(i int) error {
		name := fmt.Sprintf("t%d", i)
		t, err := a.Catalog.Create(ctx, tenants.Spec{Name: name, Hosts: []string{host(i)}})
		if err == nil {
			schemas[i] = t.Schema
			err = seed(ctx, raw, migrations.Quote(t.Schema)+`."users"`, o.users)
		}
		if err != nil {
			return fmt.Errorf("tenant %s: %w", name, err)
		}
		if d := done.Add(1); d%1000 == 0 {
			logf("  %d tenants", from+int(d))
		}
		return nil
	})
	return schemas, err
}

// usersTables names the users table of each schema.
func usersTables(schemas []string) []string {
	out := make([]string, len(schemas))
	for i, s := range schemas {
		out[i] = migrations.Quote(s) + `."users"`
	}
	return out
}

// reseed empties tables (restarting their ids) and seeds each again, so
// that reads after POST rounds see only the seeded users, with ids 1..n.
// Nothing may be using the tables: TRUNCATE takes an exclusive lock.
func reseed(ctx context.Context, o options, dsn string, tables []string) error {
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	// In batches: one TRUNCATE of thousands of tables (with their indexes
	// and sequences) could exhaust the server's lock table.
	for b := range slices.Chunk(tables, 100) {
		if _, err := db.ExecContext(ctx, "TRUNCATE "+strings.Join(b, ", ")+" RESTART IDENTITY"); err != nil {
			return fmt.Errorf("truncate: %w", err)
		}
	}
	return parallel(ctx, 0, len(tables), o.provisioners, func(i int) error {
		return seed(ctx, db, tables[i], o.users)
	})
}

// parallel calls job(i) for every i in [from, to) on jobs goroutines and
// stops handing out work at the first error.
func parallel(ctx context.Context, from, to, jobs int, job func(i int) error) error {
	var next atomic.Int64
	next.Store(int64(from))
	var failed atomic.Bool
	var wg sync.WaitGroup
	errs := make([]error, max(jobs, 1))
	for j := range errs {
		wg.Go(func() {
			for !failed.Load() && ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= to {
					return
				}
				if err := job(i); err != nil {
					errs[j] = err
					failed.Store(true)
					return
				}
			}
		})
	}
	wg.Wait()
	return errors.Join(append(errs, ctx.Err())...)
}

// seed inserts users user1..userN into table; db is a DSN or a *sql.DB.
func seed(ctx context.Context, db any, table string, n int) error {
	var conn *sql.DB
	switch d := db.(type) {
	case string:
		c, err := sql.Open("pgx", d)
		if err != nil {
			return err
		}
		defer c.Close()
		conn = c
	case *sql.DB:
		conn = d
	}
	_, err := conn.ExecContext(ctx, `INSERT INTO `+table+` (name, email, created_at, updated_at)
		SELECT 'User ' || g, 'user' || g || '@example.com', now(), now() FROM generate_series(1, $1::int) AS g`, n)
	if err != nil {
		return fmt.Errorf("seed %s: %w", table, err)
	}
	return nil
}
