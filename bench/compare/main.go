// Command compare measures tenantry's request throughput against the plain
// single-tenant Gin+GORM app (/work/shared/bench/baseline), in one sitting on
// the local PostgreSQL, with bench/load as the load generator.
//
// It creates two scratch databases, builds and starts the baseline
// (127.0.0.1:8081) seeded with -users users, provisions -tenants tenants
// through tenants.Catalog (hosts tN.bench:8082, -users users each, seeded
// with SQL) and starts `tenantry serve` on 127.0.0.1:8082 with a generated
// config. Both use a pool of -pool connections. It then runs each mix
// -rounds times per app, alternating the apps (B,T then T,B, ...), all read
// rounds before the POST rounds (so the reads see only the seeded rows), and
// prints a markdown table of the medians with tenantry/baseline ratios. The
// scratch databases are dropped at the end unless -keep.
//
//	go run ./bench/compare -tenants 100
package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver for set-up and seeding

	service "tenantry/app"
	"tenantry/bench/internal/benchdb"
	"tenantry/config"
	"tenantry/migrations"
	"tenantry/tenants"
)

type options struct {
	dsn          string
	baselineSrc  string
	tenants      int
	users        int
	pool         int
	conns        int
	rounds       int
	duration     time.Duration
	warmup       time.Duration
	mixes        []string
	provisioners int
	keep         bool
}

func main() {
	var o options
	var mixes string
	flag.StringVar(&o.dsn, "dsn", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable", "PostgreSQL server to create the scratch databases on")
	flag.StringVar(&o.baselineSrc, "baseline", "/work/shared/bench/baseline", "source directory of the plain single-tenant app")
	flag.IntVar(&o.tenants, "tenants", 100, "tenants to provision and spread the load over")
	flag.IntVar(&o.users, "users", 100, "users seeded per tenant (and in the baseline)")
	flag.IntVar(&o.pool, "pool", 32, "database pool size of both apps (max open = max idle)")
	flag.IntVar(&o.conns, "conns", 32, "keep-alive connections of the load generator")
	flag.IntVar(&o.rounds, "rounds", 3, "runs per app and mix")
	flag.DurationVar(&o.duration, "duration", 20*time.Second, "measured time of each run")
	flag.DurationVar(&o.warmup, "warmup", 5*time.Second, "warm-up before each run")
	flag.StringVar(&mixes, "mixes", "read,post", "mixes to run, in order")
	flag.IntVar(&o.provisioners, "provision-jobs", 4, "tenants created at a time")
	flag.BoolVar(&o.keep, "keep", false, "keep the scratch databases")
	flag.Parse()
	o.mixes = strings.Split(mixes, ",")

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, o)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench/compare:", err)
		os.Exit(1)
	}
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, time.Now().UTC().Format("15:04:05 ")+format+"\n", args...)
}

func run(ctx context.Context, o options) error {
	work, err := os.MkdirTemp("", "tenantry-compare-")
	if err != nil {
		return err
	}
	logf("work directory %s (binaries, config, logs)", work)

	// Build the three programs.
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	bins := map[string]string{}
	for _, b := range []struct{ name, dir, pkg string }{
		{"tenantry", root, "."},
		{"load", root, "./bench/load"},
		{"baseline", o.baselineSrc, "."},
	} {
		bins[b.name] = filepath.Join(work, b.name)
		cmd := exec.CommandContext(ctx, "go", "build", "-o", bins[b.name], b.pkg)
		cmd.Dir = b.dir
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("build %s: %v\n%s", b.name, err, out)
		}
	}

	admin, err := sql.Open("pgx", o.dsn)
	if err != nil {
		return err
	}
	defer admin.Close()
	var pgVersion string
	if err := admin.QueryRowContext(ctx, "SHOW server_version").Scan(&pgVersion); err != nil {
		return err
	}
	baseDB, err := benchdb.Scratch(ctx, o.dsn, "bench_baseline_", o.keep)
	if err != nil {
		return err
	}
	defer baseDB.Drop()
	tenDB, err := benchdb.Scratch(ctx, o.dsn, "bench_tenantry_", o.keep)
	if err != nil {
		return err
	}
	defer tenDB.Drop()
	baseDSN, tenDSN := baseDB.DSN, tenDB.DSN

	// Baseline: start it (it creates its table), then seed it.
	pool := strconv.Itoa(o.pool)
	base, err := start(work, "baseline", bins["baseline"], "-addr", "127.0.0.1:8081", "-dsn", baseDSN, "-max-open", pool, "-max-idle", pool)
	if err != nil {
		return err
	}
	defer base.stop()
	if err := waitReady(ctx, "http://127.0.0.1:8081/api/users?limit=1", "", base); err != nil {
		return err
	}
	if err := seed(ctx, baseDSN, `"users"`, o.users); err != nil {
		return err
	}

	// tenantry: provision through the Catalog, seed with SQL, then serve.
	t0 := time.Now()
	if err := provision(ctx, o, tenDSN); err != nil {
		return err
	}
	logf("provisioned and seeded %d tenants in %s", o.tenants, time.Since(t0).Round(time.Second))
	cfg := filepath.Join(work, "config.yaml")
	if err := os.WriteFile(cfg, []byte(configYAML(tenDSN, o.pool)), 0o600); err != nil {
		return err
	}
	ten, err := start(work, "tenantry", bins["tenantry"], "serve", "--config", cfg)
	if err != nil {
		return err
	}
	defer ten.stop()
	if err := waitReady(ctx, "http://127.0.0.1:8082/api/users?limit=1", host(0), ten); err != nil {
		return err
	}
	hostsFile := filepath.Join(work, "hosts.txt")
	var hb strings.Builder
	for i := range o.tenants {
		hb.WriteString(host(i) + "\n")
	}
	if err := os.WriteFile(hostsFile, []byte(hb.String()), 0o600); err != nil {
		return err
	}

	apps := []app{
		{name: "baseline", url: "http://127.0.0.1:8081", db: baseDB.Name, proc: base},
		{name: "tenantry", url: "http://127.0.0.1:8082", db: tenDB.Name, hosts: hostsFile, proc: ten},
	}
	load1, _ := os.ReadFile("/proc/loadavg")
	logf("machine: %d CPUs (%s), %s, PostgreSQL %s; load average before: %s", runtime.NumCPU(), benchdb.CPUModel(), runtime.Version(), pgVersion, strings.TrimSpace(string(load1)))

	results := map[string]map[string][]result{} // mix → app → runs
	for _, mix := range o.mixes {
		results[mix] = map[string][]result{}
		for r := range o.rounds {
			order := []app{apps[0], apps[1]}
			if r%2 == 1 {
				order[0], order[1] = order[1], order[0]
			}
			for _, a := range order {
				res, err := measure(ctx, o, bins["load"], a, mix, admin)
				if err != nil {
					return err
				}
				logf("%s %s round %d: %.0f req/s, p50 %.1f ms, p99 %.1f ms, max %.1f ms, errors %d, status %v, app CPU %.0f µs/req, ~%.2f db commits/req (approximate: statistics flush late)",
					mix, a.name, r+1, res.RPS, res.P50Ms, res.P99Ms, res.MaxMs, res.Errors, res.Status, res.appCPUus, res.commitsPerReq)
				results[mix][a.name] = append(results[mix][a.name], res)
			}
		}
	}
	load2, _ := os.ReadFile("/proc/loadavg")
	logf("load average after: %s", strings.TrimSpace(string(load2)))

	fmt.Printf("\n%d tenants (tenantry), %d users each; %d connections, %s after %s warm-up, median of %d alternating runs; pool %d; %d CPUs (%s), PostgreSQL %s\n\n",
		o.tenants, o.users, o.conns, o.duration, o.warmup, o.rounds, o.pool, runtime.NumCPU(), benchdb.CPUModel(), pgVersion)
	fmt.Println("| mix | baseline req/s | tenantry req/s | ratio | baseline p50 / p99 | tenantry p50 / p99 | p99 ratio | errors (b / t) | app CPU µs/req (b / t) |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|")
	for _, mix := range o.mixes {
		b, t := summarize(results[mix]["baseline"]), summarize(results[mix]["tenantry"])
		fmt.Printf("| %s | %.0f | %.0f | %.2f× | %.1f / %.1f ms | %.1f / %.1f ms | %.2f× | %d / %d | %.0f / %.0f |\n",
			mix, b.RPS, t.RPS, t.RPS/b.RPS, b.P50Ms, b.P99Ms, t.P50Ms, t.P99Ms, t.P99Ms/b.P99Ms, b.Errors, t.Errors, b.appCPUus, t.appCPUus)
	}
	fmt.Println()
	fmt.Println("every run (req/s, p99 ms):")
	for _, mix := range o.mixes {
		for _, name := range []string{"baseline", "tenantry"} {
			var parts []string
			for _, r := range results[mix][name] {
				parts = append(parts, fmt.Sprintf("%.0f/%.1f", r.RPS, r.P99Ms))
			}
			fmt.Printf("  %s %s: %s\n", mix, name, strings.Join(parts, ", "))
		}
	}
	return nil
}

type app struct {
	name, url, db, hosts string
	proc                 *proc
}

// result is bench/load's -json output plus what compare measures around it.
type result struct {
	RPS           float64        `json:"rps"`
	P50Ms         float64        `json:"p50_ms"`
	P90Ms         float64        `json:"p90_ms"`
	P99Ms         float64        `json:"p99_ms"`
	MaxMs         float64        `json:"max_ms"`
	Requests      int            `json:"requests"`
	Status        map[string]int `json:"status"`
	Errors        int            `json:"errors"`
	ErrorSample   []string       `json:"error_sample"`
	appCPUus      float64
	commitsPerReq float64
}

func measure(ctx context.Context, o options, loadBin string, a app, mix string, admin *sql.DB) (result, error) {
	args := []string{"-url", a.url, "-conns", strconv.Itoa(o.conns), "-duration", o.duration.String(),
		"-warmup", o.warmup.String(), "-mix", mix, "-ids", strconv.Itoa(o.users), "-json"}
	if a.hosts != "" {
		args = append(args, "-hosts", a.hosts)
	}
	commits := func() int64 {
		var n int64
		_ = admin.QueryRowContext(ctx, "SELECT pg_stat_force_next_flush()").Err() // PostgreSQL 15+; harmless if it fails
		_ = admin.QueryRowContext(ctx, "SELECT xact_commit FROM pg_stat_database WHERE datname = $1", a.db).Scan(&n)
		return n
	}
	cpu0, c0 := a.proc.cpu(), commits()
	cmd := exec.CommandContext(ctx, loadBin, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return result{}, fmt.Errorf("load %s %s: %v: %s", a.name, mix, err, stderr.String())
	}
	time.Sleep(1500 * time.Millisecond) // let backends flush their statistics
	cpu1, c1 := a.proc.cpu(), commits()
	var r result
	if err := json.Unmarshal(out, &r); err != nil {
		return r, fmt.Errorf("load output %q: %w", out, err)
	}
	if len(r.ErrorSample) > 0 {
		logf("  %s %s error sample: %v", a.name, mix, r.ErrorSample)
	}
	// Warm-up requests cost CPU and commits too: spread over every request
	// of the run, estimated from the measured rate.
	total := r.RPS * (o.duration + o.warmup).Seconds()
	if total > 0 {
		r.appCPUus = (cpu1 - cpu0).Seconds() * 1e6 / total
		r.commitsPerReq = float64(c1-c0) / total
	}
	time.Sleep(time.Second)
	return r, nil
}

func summarize(rs []result) result {
	med := func(f func(result) float64) float64 {
		v := make([]float64, 0, len(rs))
		for _, r := range rs {
			v = append(v, f(r))
		}
		slices.Sort(v)
		if len(v) == 0 {
			return 0
		}
		return v[len(v)/2]
	}
	var errs int
	for _, r := range rs {
		errs += r.Errors
	}
	return result{
		RPS:           med(func(r result) float64 { return r.RPS }),
		P50Ms:         med(func(r result) float64 { return r.P50Ms }),
		P99Ms:         med(func(r result) float64 { return r.P99Ms }),
		Errors:        errs,
		appCPUus:      med(func(r result) float64 { return r.appCPUus }),
		commitsPerReq: med(func(r result) float64 { return r.commitsPerReq }),
	}
}

func host(i int) string { return fmt.Sprintf("t%d.bench:8082", i) }

func configYAML(dsn string, pool int) string {
	return fmt.Sprintf(`server:
  listen: ["127.0.0.1:8082"]
admin:
  listen: ""
database:
  driver: postgres
  dsn: %q
  max_open_conns: %d
  max_idle_conns: %d
tenancy:
  strategy: schema
tenants:
  - name: t0
    hosts: [%q]
log:
  level: warn
`, dsn, pool, pool, host(0))
}

// provision creates the tenants t0..tN-1 through the Catalog (as `tenantry
// tenants add` would, without a process per tenant) and seeds each one's
// users table with SQL.
func provision(ctx context.Context, o options, dsn string) error {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg := config.Default()
	cfg.Database.Driver, cfg.Database.DSN = "postgres", dsn
	cfg.Database.MaxOpenConns, cfg.Database.MaxIdleConns = 8, 8
	cfg.Tenancy.Strategy, cfg.Tenants, cfg.Admin.Listen = "schema", nil, ""
	// The same wiring as the service: pool, scope, catalog, shared migrations.
	a, err := service.Open(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer func() { _ = a.Close() }()
	cat := a.Catalog
	raw, err := sql.Open("pgx", dsn)
	if err != nil {
		return err
	}
	defer raw.Close()

	var next, done atomic.Int64
	var wg sync.WaitGroup
	errs := make([]error, o.provisioners)
	for j := range o.provisioners {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= o.tenants || ctx.Err() != nil {
					return
				}
				name := fmt.Sprintf("t%d", i)
				t, err := cat.Create(ctx, tenants.Spec{Name: name, Hosts: []string{host(i)}})
				if err == nil {
					err = seed(ctx, raw, migrations.Quote(t.Schema)+`."users"`, o.users)
				}
				if err != nil {
					errs[j] = fmt.Errorf("tenant %s: %w", name, err)
					return
				}
				if n := done.Add(1); n%1000 == 0 {
					logf("  %d tenants", n)
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

type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

func start(work, name, bin string, args ...string) (*proc, error) {
	logFile, err := os.Create(filepath.Join(work, name+".log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		logFile.Close()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// cpu is the process's user+system CPU time so far, from /proc.
func (p *proc) cpu() time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:]) // f[0] is field 3 (state); utime is field 14, stime 15
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / 100 // USER_HZ is 100 on Linux
}

func waitReady(ctx context.Context, u, hostHeader string, p *proc) error {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if hostHeader != "" {
			req.Host = hostHeader
		}
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-p.done:
			return fmt.Errorf("%s exited before it was ready: %v (log in its work directory)", p.name, p.err)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready after 2 minutes (last: %v)", p.name, err)
		}
	}
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
