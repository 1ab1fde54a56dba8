// Command noisy measures whether one noisy tenant can starve the others:
// the latency and errors that 99 quiet tenants see, alone and next to a
// tenant that sends ten times their load, with tenantry's per-tenant limits
// off and on. It prints a markdown table (and, with -out, writes it to a
// file) with the date, the machine and the method.
//
//	go run ./bench/noisy
//	go run ./bench/noisy -duration 60s -out noisy.md
//
// Set-up: it builds tenantry, creates a scratch database on the local
// PostgreSQL (-dsn), provisions -tenants tenants t0…tN-1 (hosts
// tI.noisy, -users users each, seeded with SQL) through tenants.Catalog,
// and for each limits mode starts a fresh `tenantry serve` on free
// loopback ports:
//
//   - off: tenancy.max_concurrent_per_tenant 0 and tenancy.rate_limit 0,
//     no limit at all;
//   - on: tenancy.max_concurrent_per_tenant at the service's default (half
//     of -pool) unless -concurrency says otherwise, tenancy.rate_limit
//     -default-rate for every tenant, and, with -noisy-rate, the noisy
//     tenant's own rate set through PATCH /admin/tenants/t0.
//
// Each mode runs three phases in order, each -warmup then -duration
// measured, on the read mix of bench/load (90% GET /api/users?limit=50, 10%
// GET /api/users/{id}):
//
//  1. quiet: the quiet tenants t1…tN-1, each open-loop at -rate requests
//     a second (requests sent on schedule, whatever the answers; each
//     tenant's schedule starts at a random phase);
//  2. noisy: the same, plus t0 open-loop at -factor × -rate;
//  3. flood: the same, plus t0 closed-loop on -flood-conns keep-alive
//     connections, one request after another, ignoring Retry-After (the
//     worst client).
//
// Open-loop latency runs from the time a request was due to the end of its
// answer, so that a generator or server that falls behind shows as latency
// rather than as fewer requests. Only requests due inside the measured
// window count. The quiet tenants' errors are every answer that is not a
// 2xx and every transport error (10 s client timeout); the noisy tenant's
// answers are split into 2xx, 429 and other.
//
// The load generator runs on the same machine as tenantry and PostgreSQL:
// in the flood its own work (thousands of 429s a second) competes with the
// server for the CPU. Figures are only meaningful on an otherwise quiet
// machine.
package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver for seeding

	service "tenantry/app"
	"tenantry/bench/internal/benchdb"
	"tenantry/bench/internal/benchproc"
	"tenantry/config"
	"tenantry/migrations"
	"tenantry/tenants"
)

type options struct {
	dsn         string
	tenants     int
	users       int
	pool        int
	rate        float64
	factor      float64
	duration    time.Duration
	warmup      time.Duration
	floodConns  int
	modes       []string
	defaultRate float64
	noisyRate   float64
	concurrency int           // 0: the service's default
	wait        time.Duration // 0: the service's default
	out         string
	keep        bool
}

func main() {
	var o options
	var modes string
	flag.StringVar(&o.dsn, "dsn", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable", "PostgreSQL server to create the scratch database on")
	flag.IntVar(&o.tenants, "tenants", 100, "tenants: t0 is the noisy one, the others are quiet")
	flag.IntVar(&o.users, "users", 100, "users seeded per tenant")
	flag.IntVar(&o.pool, "pool", 16, "tenantry's database.max_open_conns (and max_idle_conns)")
	flag.Float64Var(&o.rate, "rate", 10, "requests per second of each quiet tenant")
	flag.Float64Var(&o.factor, "factor", 10, "the noisy tenant's open-loop load, as a multiple of -rate")
	flag.DurationVar(&o.duration, "duration", 20*time.Second, "measured time of each phase")
	flag.DurationVar(&o.warmup, "warmup", 5*time.Second, "unmeasured time before each phase")
	flag.IntVar(&o.floodConns, "flood-conns", 64, "keep-alive connections of the noisy tenant's closed-loop flood")
	flag.StringVar(&modes, "modes", "off,on", "limits modes to run, in order: off, on")
	flag.Float64Var(&o.defaultRate, "default-rate", 50, "tenancy.rate_limit in mode on (requests per second per tenant; 0: none)")
	flag.Float64Var(&o.noisyRate, "noisy-rate", 0, "in mode on, the noisy tenant's own rate, set through the admin API (0: none, the default applies)")
	flag.IntVar(&o.concurrency, "concurrency", 0, "tenancy.max_concurrent_per_tenant in mode on (0: the service's default, half of -pool)")
	flag.DurationVar(&o.wait, "wait", 0, "tenancy.concurrency_wait in mode on (0: the service's default)")
	flag.StringVar(&o.out, "out", "", "also write the markdown report to this file")
	flag.BoolVar(&o.keep, "keep", false, "keep the scratch database")
	flag.Parse()

	err := func() error {
		o.modes = strings.Split(modes, ",")
		for _, m := range o.modes {
			if m != "off" && m != "on" {
				return fmt.Errorf("-modes: %q is not a mode (off, on)", m)
			}
		}
		switch {
		case o.tenants < 2:
			return errors.New("-tenants must be 2 or more: one noisy, the others quiet")
		case o.rate <= 0 || o.factor <= 0:
			return errors.New("-rate and -factor must be positive")
		case o.duration <= 0 || o.warmup < 0:
			return errors.New("-duration must be positive and -warmup not negative")
		case o.floodConns < 1 || o.pool < 1 || o.users < 1:
			return errors.New("-flood-conns, -pool and -users must be 1 or more")
		case o.defaultRate < 0 || o.noisyRate < 0 || o.concurrency < 0 || o.wait < 0:
			return errors.New("-default-rate, -noisy-rate, -concurrency and -wait must not be negative")
		}
		return nil
	}()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench/noisy:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err = run(ctx, o)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench/noisy:", err)
		os.Exit(1)
	}
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, time.Now().UTC().Format("15:04:05 ")+format+"\n", args...)
}

func host(i int) string { return fmt.Sprintf("t%d.noisy", i) }

func run(ctx context.Context, o options) error {
	work, err := os.MkdirTemp("", "tenantry-noisy-")
	if err != nil {
		return err
	}
	logf("work directory %s (binary, config, logs)", work)
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	bin := filepath.Join(work, "tenantry")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, ".")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("build tenantry: %v\n%s", err, out)
	}

	db, err := benchdb.Scratch(ctx, o.dsn, "bench_noisy_", o.keep)
	if err != nil {
		return err
	}
	defer db.Drop()
	t0 := time.Now()
	if err := provision(ctx, o, db.DSN); err != nil {
		return err
	}
	logf("provisioned and seeded %d tenants in %s", o.tenants, time.Since(t0).Round(time.Second))
	info := describe(ctx, o)

	var results []modeResult
	for _, mode := range o.modes {
		mr, err := runMode(ctx, o, work, bin, db.DSN, mode)
		if err != nil {
			return fmt.Errorf("mode %s: %w", mode, err)
		}
		results = append(results, mr)
	}
	report := markdown(o, info, results)
	fmt.Print(report)
	if o.out != "" {
		return os.WriteFile(o.out, []byte(report), 0o644)
	}
	return nil
}

// runMode starts a fresh tenantry with the mode's limits and runs the
// three phases against it.
func runMode(ctx context.Context, o options, work, bin, dsn, mode string) (modeResult, error) {
	mr := modeResult{mode: mode}
	addr, err := freeAddr()
	if err != nil {
		return mr, err
	}
	adminAddr, err := freeAddr()
	if err != nil {
		return mr, err
	}
	tb := make([]byte, 16)
	_, _ = rand.Read(tb)
	token := hex.EncodeToString(tb)
	cfg := filepath.Join(work, "config-"+mode+".yaml")
	if err := os.WriteFile(cfg, []byte(configYAML(o, mode, addr, adminAddr, token, dsn)), 0o600); err != nil {
		return mr, err
	}
	p, err := benchproc.Start(work, "tenantry-"+mode, bin, "serve", "--config", cfg)
	if err != nil {
		return mr, err
	}
	defer p.Stop()
	base := "http://" + addr
	if _, err := p.WaitReady(ctx, base+"/api/users?limit=1", host(0)); err != nil {
		return mr, err
	}
	if mode == "on" && o.noisyRate > 0 {
		body := fmt.Sprintf(`{"limits":{"rate":%g}}`, o.noisyRate)
		if err := adminPatch(ctx, "http://"+adminAddr+"/admin/tenants/t0", token, body); err != nil {
			return mr, err
		}
	}
	quiet := make([]string, 0, o.tenants-1)
	for i := 1; i < o.tenants; i++ {
		quiet = append(quiet, host(i))
	}
	for _, ph := range []string{"quiet", "noisy", "flood"} {
		logf("mode %s: phase %s (%s warm-up, %s measured)", mode, ph, o.warmup, o.duration)
		res, err := runPhase(ctx, o, base, quiet, host(0), ph)
		if err != nil {
			return mr, err
		}
		logf("mode %s, phase %s: others %.0f req/s, p99 %.1f ms, %d errors; noisy %d 2xx, %d 429, %d other",
			mode, ph, res.others.rps(o.duration), ms(res.others.p(99)), res.others.errors, res.noisy.ok, res.noisy.tooMany, res.noisy.errors)
		mr.phases = append(mr.phases, res)
	}
	return mr, nil
}

// configYAML is tenantry's configuration for one mode.
func configYAML(o options, mode, addr, adminAddr, token, dsn string) string {
	var tenancy strings.Builder
	switch mode {
	case "off":
		tenancy.WriteString("  max_concurrent_per_tenant: 0\n  rate_limit: 0\n")
	case "on":
		if o.concurrency > 0 {
			fmt.Fprintf(&tenancy, "  max_concurrent_per_tenant: %d\n", o.concurrency)
		}
		if o.wait > 0 {
			fmt.Fprintf(&tenancy, "  concurrency_wait: %s\n", o.wait)
		}
		fmt.Fprintf(&tenancy, "  rate_limit: %g\n", o.defaultRate)
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
tenancy:
  strategy: schema
%stenants: []
log:
  level: warn
`, addr, adminAddr, token, dsn, o.pool, o.pool, tenancy.String())
}

// limitsOf describes the limits a mode serves with, for the report.
func limitsOf(o options, mode string) string {
	if mode == "off" {
		return "none"
	}
	conc, wait := config.DefaultMaxConcurrent(o.pool), config.DefaultConcurrencyWait
	if o.concurrency > 0 {
		conc = o.concurrency
	}
	if o.wait > 0 {
		wait = o.wait
	}
	s := fmt.Sprintf("concurrency %d (wait %s), rate %g/s per tenant", conc, wait, o.defaultRate)
	if o.defaultRate == 0 {
		s = fmt.Sprintf("concurrency %d (wait %s), no rate limit", conc, wait)
	}
	if o.noisyRate > 0 {
		s += fmt.Sprintf(", t0's own rate %g/s", o.noisyRate)
	}
	return s
}

// provision creates tenants t0…tN-1 through the Catalog, with the same
// wiring as the service, and seeds each one's users table with SQL.
func provision(ctx context.Context, o options, dsn string) error {
	cfg := config.Default()
	cfg.Database.Driver, cfg.Database.DSN = "postgres", dsn
	cfg.Database.MaxOpenConns, cfg.Database.MaxIdleConns = 4, 4
	cfg.Tenancy.Strategy, cfg.Tenants, cfg.Admin.Listen = "schema", nil, ""
	a, err := service.Open(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		return err
	}
	defer func() { _ = a.Close() }()
	raw, err := sql.Open("pgx", dsn)
	if err != nil {
		return err
	}
	defer raw.Close()
	for i := range o.tenants {
		t, err := a.Catalog.Create(ctx, tenants.Spec{Name: fmt.Sprintf("t%d", i), Hosts: []string{host(i)}})
		if err != nil {
			return fmt.Errorf("tenant t%d: %w", i, err)
		}
		_, err = raw.ExecContext(ctx, `INSERT INTO `+migrations.Quote(t.Schema)+`."users" (name, email, created_at, updated_at)
			SELECT 'User ' || g, 'user' || g || '@example.com', now(), now() FROM generate_series(1, $1::int) AS g`, o.users)
		if err != nil {
			return fmt.Errorf("seed t%d: %w", i, err)
		}
	}
	return nil
}

// adminPatch sends a JSON merge patch to the admin API.
func adminPatch(ctx context.Context, url, token, body string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPatch, url, strings.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/merge-patch+json")
	resp, err := (&http.Client{Transport: &http.Transport{Proxy: nil}}).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("PATCH %s: %d %s", url, resp.StatusCode, b)
	}
	return nil
}

// freeAddr returns a loopback address with a port free right now.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", err
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("run from inside the tenantry module")
	}
	return filepath.Dir(mod), nil
}
