// Command compare measures tenantry against the plain single-tenant Gin+GORM
// app (/work/shared/bench/baseline) in one sitting on the local PostgreSQL,
// with bench/load as the load generator: throughput and latency per tenant
// count, the first minute after start, start-up time, memory, and latency
// while tenants are being created. It prints the figures as markdown, with
// the date, the machine and the method, ready for docs/BENCHMARKS.md, on
// stdout and (with -out) in a file, section by section as they are measured.
//
//	go run ./bench/compare -tenants 100
//	go run ./bench/compare -tenants 1,100,1000,10000 -out sitting.md
//
// Set-up: it builds tenantry, bench/load and the baseline, creates two
// scratch databases, starts the baseline once (127.0.0.1:8081, -users users
// seeded with SQL) and, unless -cold is 0, measures the baseline's own cold
// start once, right away, for comparison with tenantry's.
//
// The sweep: the counts of -tenants run in ascending order. Tenants are
// provisioned incrementally: a count adds t(previous)..tN-1 through
// tenants.Catalog (hosts tN.bench:8082, -users users each, seeded with SQL),
// so 10,000 tenants are provisioned once in the whole sitting. For each count
// a fresh `tenantry serve` is started (a new process has a cold resolver,
// pool, statement cache and PostgreSQL backends; PostgreSQL's shared buffers
// and the OS page cache keep what earlier counts and provisioning left, so
// "cold" means a cold process, not a cold database) on 127.0.0.1:8082, with
// its admin API on 127.0.0.1:9082 behind a random token. Then, in order:
//
//  1. Start-up time: from the exec of `tenantry serve` to its first 200
//     answer to GET /api/users?limit=1 for t0, polled every 10 ms.
//  2. Cold start: the read mix right away, with no warm-up, in consecutive
//     10 s slices (one bench/load process each, -warmup 0) for -cold.
//  3. Rounds: each mix -rounds times per app, alternating the apps (B,T
//     then T,B, ...), all read rounds before the POST rounds; medians. With
//     -pprof-out, tenantry's second read round (the first when -rounds is 1)
//     also fetches a CPU profile of its measured window from the admin
//     listener (/debug/pprof/profile, 10 s or the run's length if shorter);
//     a missing profiler (404) is logged and skipped. The profiler's own cost
//     (small) is in that one run.
//  4. Provisioning under load, at the count -provision-at only, between the
//     read and the POST rounds: one read run as in the rounds, then one while
//     tenants liveN-0, liveN-1, ... are created through POST /admin/tenants,
//     one a second during its measured window. Their hosts are not in the
//     load's host list. They are removed (data dropped) afterwards, so every
//     count's catalog holds exactly its N tenants.
//  5. Memory after the runs: tenantry's VmRSS and VmHWM, and the private
//     memory (Private_Clean + Private_Dirty from /proc/PID/smaps_rollup) of
//     every PostgreSQL client backend connected to its database; the same
//     for the baseline, whose process runs the whole sitting (its VmHWM is
//     the sitting's peak so far). bench/load lets the requests in flight at
//     the end of a run finish instead of cancelling them, so the pools keep
//     their connections between runs.
//
// Rows written by POST rounds: the read mix lists 50 users with a count(*)
// and fetches ids 1..-users, and the baseline lists newest first, so rows
// POSTed by one count (a few hundred thousand in the baseline and spread
// over the tenants) would change what the next count's reads cost. Before
// each later count, with tenantry stopped, compare therefore truncates
// (RESTART IDENTITY) and re-seeds the users table of the baseline and of
// every tenant a POST round wrote to, so every count's reads see exactly
// -users seeded users, as the first count's did. Within a count the POST
// rounds come last for the same reason.
//
// The scratch databases are dropped at the end unless -keep.
package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver for set-up and seeding

	"tenantry/bench/internal/benchdb"
	"tenantry/bench/internal/benchproc"
)

// Addresses of the two apps; all loopback.
const (
	baselineURL = "http://127.0.0.1:8081"
	tenantryURL = "http://127.0.0.1:8082"
	adminListen = "127.0.0.1:9082"
)

type options struct {
	dsn          string
	baselineSrc  string
	counts       []int // ascending, distinct
	users        int
	pool         int
	poolGroups   int
	stmtCache    int
	homeWait     string
	conns        int
	rounds       int
	duration     time.Duration
	warmup       time.Duration
	cold         time.Duration
	mixes        []string
	provisioners int
	provisionAt  int // 0: no provisioning-under-load runs
	pprofOut     string
	out          string
	keep         bool
	// accessLog runs tenantry as shipped for operations: log.level info
	// with one JSON access line per request (to its log file); false is
	// log.level warn and log.access off. Metrics are counted either way.
	accessLog bool
}

func main() {
	var o options
	var counts, mixes string
	flag.StringVar(&o.dsn, "dsn", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable", "PostgreSQL server to create the scratch databases on")
	flag.StringVar(&o.baselineSrc, "baseline", "/work/shared/bench/baseline", "source directory of the plain single-tenant app")
	flag.StringVar(&counts, "tenants", "100", "tenant counts to measure, comma-separated (run in ascending order), e.g. 1,100,1000,10000")
	flag.IntVar(&o.users, "users", 100, "users seeded per tenant (and in the baseline)")
	flag.IntVar(&o.pool, "pool", 32, "database pool size of both apps (max open = max idle)")
	flag.IntVar(&o.poolGroups, "pool-groups", 0, "tenantry's database.pool_groups (0: not written, the service's default)")
	flag.IntVar(&o.stmtCache, "stmt-cache", 0, "tenantry's database.statement_cache_capacity (0: not written, the service's default)")
	flag.StringVar(&o.homeWait, "home-wait", "", "tenantry's database.home_wait, a duration such as 2ms or 0 (empty: not written, the service's default)")
	flag.IntVar(&o.conns, "conns", 32, "keep-alive connections of the load generator")
	flag.IntVar(&o.rounds, "rounds", 3, "runs per app and mix")
	flag.DurationVar(&o.duration, "duration", 20*time.Second, "measured time of each run")
	flag.DurationVar(&o.warmup, "warmup", 5*time.Second, "warm-up before each run")
	flag.DurationVar(&o.cold, "cold", 60*time.Second, "read mix measured in 10 s slices right after each start, without warm-up (0: none)")
	flag.StringVar(&mixes, "mixes", "read,post", "mixes to run, in order")
	flag.IntVar(&o.provisioners, "provision-jobs", 4, "tenants created at a time")
	flag.IntVar(&o.provisionAt, "provision-at", 1000, "tenant count at which to measure reads while tenants are created at 1/s (0: never; the default only applies when the count is in -tenants)")
	flag.StringVar(&o.pprofOut, "pprof-out", "", "directory for tenantry CPU profiles, one per count and mix (empty: none)")
	flag.StringVar(&o.out, "out", "", "also write the markdown report to this file")
	flag.BoolVar(&o.keep, "keep", false, "keep the scratch databases")
	flag.BoolVar(&o.accessLog, "access-log", false, "run tenantry with log.level info and a JSON access line per request (false: log.level warn, log.access off)")
	flag.Parse()

	err := func() error {
		var err error
		if o.counts, err = parseCounts(counts); err != nil {
			return err
		}
		o.mixes = strings.Split(mixes, ",")
		for _, m := range o.mixes {
			if m != "read" && m != "post" {
				return fmt.Errorf("-mixes: %q is not a mix (read, post)", m)
			}
		}
		if o.rounds < 1 || o.duration <= 0 || o.warmup < 0 || o.cold < 0 {
			return errors.New("-rounds must be 1 or more, -duration positive, -warmup and -cold not negative")
		}
		if o.poolGroups < 0 || o.stmtCache < 0 {
			return errors.New("-pool-groups and -stmt-cache must not be negative")
		}
		if o.provisionAt != 0 && !slices.Contains(o.counts, o.provisionAt) {
			explicit := false
			flag.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "provision-at" })
			if explicit {
				return fmt.Errorf("-provision-at %d is not one of -tenants %s", o.provisionAt, counts)
			}
			o.provisionAt = 0
		}
		return checkConfigKeys(o)
	}()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench/compare:", err)
		os.Exit(2)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err = run(ctx, o)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench/compare:", err)
		os.Exit(1)
	}
}

// parseCounts reads -tenants: one count or a comma-separated list.
func parseCounts(s string) ([]int, error) {
	var counts []int
	for f := range strings.SplitSeq(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("-tenants %q: want positive counts, comma-separated", s)
		}
		counts = append(counts, n)
	}
	slices.Sort(counts)
	return slices.Compact(counts), nil
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, time.Now().UTC().Format("15:04:05 ")+format+"\n", args...)
}

// sitting is what every count of the sweep shares.
type sitting struct {
	o       options
	work    string
	bins    map[string]string // tenantry, load, baseline
	pg      *sql.DB           // the server's maintenance database, for statistics and pg_stat_activity
	tenDB   benchdb.DB
	base    app
	api     adminAPI
	schemas []string // schemas[i] is tenant ti's schema, for every tenant provisioned so far
}

func run(ctx context.Context, o options) error {
	if err := requireFree(strings.TrimPrefix(baselineURL, "http://"), strings.TrimPrefix(tenantryURL, "http://"), adminListen); err != nil {
		return err
	}
	rep, err := newReport(o.out)
	if err != nil {
		return err
	}
	defer rep.close()
	work, err := os.MkdirTemp("", "tenantry-compare-")
	if err != nil {
		return err
	}
	logf("work directory %s (binaries, config, logs)", work)
	if o.pprofOut != "" {
		if err := os.MkdirAll(o.pprofOut, 0o755); err != nil {
			return err
		}
	}

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

	pg, err := sql.Open("pgx", o.dsn)
	if err != nil {
		return err
	}
	defer pg.Close()
	// Two apps with 32 connections each, their listeners and this program
	// come close to PostgreSQL's default max_connections (100): keep this
	// program's own connections open from the start rather than need a new
	// one when the server may be full.
	pg.SetMaxOpenConns(2)
	pg.SetMaxIdleConns(2)
	pg.SetConnMaxLifetime(0)
	info, err := describe(ctx, pg, o)
	if err != nil {
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
	token := make([]byte, 24)
	_, _ = rand.Read(token)
	s := &sitting{o: o, work: work, bins: bins, pg: pg, tenDB: tenDB,
		api: newAdminAPI("http://"+adminListen, hex.EncodeToString(token))}

	// Baseline: start it (it creates its table), seed it, then its cold start.
	pool := strconv.Itoa(o.pool)
	if err := requireFree(strings.TrimPrefix(baselineURL, "http://")); err != nil {
		return err
	}
	base, err := benchproc.Start(work, "baseline", bins["baseline"], "-addr", strings.TrimPrefix(baselineURL, "http://"), "-dsn", baseDB.DSN, "-max-open", pool, "-max-idle", pool)
	if err != nil {
		return err
	}
	defer base.Stop()
	if info.baselineStartup, err = base.WaitReady(ctx, baselineURL+"/api/users?limit=1", ""); err != nil {
		return err
	}
	if err := seed(ctx, baseDB.DSN, `"users"`, o.users); err != nil {
		return err
	}
	s.base = app{name: "baseline", url: baselineURL, db: baseDB.Name, proc: base}
	rep.header(info, o)
	var baseCold []result
	if o.cold > 0 {
		if baseCold, err = coldSlices(ctx, o, bins["load"], s.base); err != nil {
			return err
		}
	}

	var done []countResult
	posted := 0 // tenants t0..posted-1, and the baseline, hold rows of POST rounds
	for _, n := range o.counts {
		if posted > 0 {
			t0 := time.Now()
			if err := reseed(ctx, o, baseDB.DSN, []string{`"users"`}); err != nil {
				return err
			}
			if err := reseed(ctx, o, tenDB.DSN, usersTables(s.schemas[:posted])); err != nil {
				return err
			}
			logf("truncated and re-seeded the baseline and %d tenants in %s", posted, time.Since(t0).Round(time.Millisecond))
		}
		if have := len(s.schemas); have < n {
			t0 := time.Now()
			if s.schemas, err = provision(ctx, o, tenDB.DSN, s.schemas, n); err != nil {
				return err
			}
			logf("provisioned and seeded tenants t%d..t%d in %s", have, n-1, time.Since(t0).Round(time.Second))
		}
		cr, err := s.count(ctx, n)
		if err != nil {
			return fmt.Errorf("%d tenants: %w", n, err)
		}
		rep.count(cr, baseCold, o)
		done = append(done, cr)
		if slices.Contains(o.mixes, "post") {
			posted = n
		}
	}
	rep.summary(done)
	return nil
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
