// Command move measures an online move of a tenant between two PostgreSQL
// databases (tenants.Catalog.Move) under load: the write pause, failed
// reads, rows lost, and the other tenants' latency during the move
// against before it. It prints a markdown report (and, with -out, writes
// it to a file) with the date, the machine and the method.
//
//	go run ./bench/move
//	go run ./bench/move -dsn-b postgres://postgres@127.0.0.1:5433/postgres?sslmode=disable -out move.md
//
// Set-up: three scratch databases, the control one on -dsn, placement "a"
// on -dsn-a and placement "b" on -dsn-b (each defaults to -dsn: then the
// placements are two databases of one server, which still copies through
// separate connections but shares one server's CPU and disk). The service
// runs in this process (app.Open, its handler on a loopback listener),
// with -others tenants split between a and b, -other-users users each,
// and the tenant "mover" on a with -users users, all seeded with SQL.
//
// Load, all closed-loop on keep-alive connections: -readers clients GET
// /api/users/{id} of the mover's seeded users, -writers clients POST new
// users to it, and -other-clients clients GET /api/users/{id} of a random
// other tenant. After -before of load, the mover is moved to b
// (Catalog.Move, with -grace), and the load runs -after more.
//
// Figures: the write pause as the move reports it and as the clients saw
// it (first to last 503 tenant-moving); failed reads (every read of any
// tenant that is not 200, and transport errors); rows lost (users whose
// creation was answered 201 and that are not on b after the move); the
// other tenants' p50/p99 in the -before window and during the move.
package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"

	service "tenantry/app"
	"tenantry/bench/internal/benchdb"
	"tenantry/config"
	"tenantry/migrations"
	"tenantry/tenants"
)

type options struct {
	dsn, dsnA, dsnB      string
	users, others        int
	otherUsers           int
	readers, writers     int
	otherClients         int
	before, after, grace time.Duration
	copyRate             int64
	out                  string
}

func main() {
	var o options
	flag.StringVar(&o.dsn, "dsn", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable", "PostgreSQL server for the control database")
	flag.StringVar(&o.dsnA, "dsn-a", "", "PostgreSQL server for placement a, the source (default -dsn)")
	flag.StringVar(&o.dsnB, "dsn-b", "", "PostgreSQL server for placement b, the target (default -dsn)")
	flag.IntVar(&o.users, "users", 100_000, "users of the moving tenant")
	flag.IntVar(&o.others, "others", 20, "other tenants, split between a and b")
	flag.IntVar(&o.otherUsers, "other-users", 1000, "users of each other tenant")
	flag.IntVar(&o.readers, "readers", 4, "closed-loop readers of the moving tenant")
	flag.IntVar(&o.writers, "writers", 2, "closed-loop writers of the moving tenant")
	flag.IntVar(&o.otherClients, "other-clients", 4, "closed-loop readers of the other tenants")
	flag.DurationVar(&o.before, "before", 10*time.Second, "load before the move (the baseline window)")
	flag.DurationVar(&o.after, "after", 3*time.Second, "load after the move")
	flag.DurationVar(&o.grace, "grace", time.Second, "MoveOptions.Grace")
	flag.Int64Var(&o.copyRate, "copy-rate", 0, "MoveOptions.CopyRate in bytes/s (0: the default; negative: unbounded)")
	flag.StringVar(&o.out, "out", "", "also write the markdown report to this file")
	flag.Parse()
	if o.dsnA == "" {
		o.dsnA = o.dsn
	}
	if o.dsnB == "" {
		o.dsnB = o.dsn
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, o)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench/move:", err)
		os.Exit(1)
	}
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, time.Now().UTC().Format("15:04:05 ")+format+"\n", args...)
}

const moverName = "mover"

func otherName(i int) string { return fmt.Sprintf("other%02d", i) }

func hostOf(name string) string { return name + ".move" }

func run(ctx context.Context, o options) error {
	var dbs []benchdb.DB
	defer func() {
		for _, d := range dbs {
			d.Drop()
		}
	}()
	for _, dsn := range []string{o.dsn, o.dsnA, o.dsnB} {
		d, err := benchdb.Scratch(ctx, dsn, "bench_move_", false)
		if err != nil {
			return err
		}
		dbs = append(dbs, d)
	}
	cfg := config.Default()
	cfg.Database.Driver, cfg.Database.DSN = "postgres", dbs[0].DSN
	cfg.Databases = []config.Placement{{Name: "a", DSN: dbs[1].DSN}, {Name: "b", DSN: dbs[2].DSN}}
	cfg.Tenancy.Strategy = "schema"
	cfg.Tenants, cfg.Admin.Listen = nil, ""
	cfg.Log.Access = false
	if err := cfg.Validate(); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	a, err := service.Open(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer a.Close()
	raw := map[string]*sql.DB{}
	for i, name := range []string{"main", "a", "b"} {
		db, err := sql.Open("pgx", dbs[i].DSN)
		if err != nil {
			return err
		}
		defer db.Close()
		raw[name] = db
	}
	start := time.Now()
	if err := seed(ctx, a.Catalog, raw, moverName, "a", o.users); err != nil {
		return err
	}
	for i := range o.others {
		if err := seed(ctx, a.Catalog, raw, otherName(i), []string{"a", "b"}[i%2], o.otherUsers); err != nil {
			return err
		}
	}
	for _, db := range raw {
		if _, err := db.ExecContext(ctx, "ANALYZE"); err != nil {
			return err
		}
	}
	logf("seeded %d users and %d other tenants in %s", o.users, o.others, time.Since(start).Round(time.Second))

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: a.Handler, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	base := "http://" + ln.Addr().String()

	res, err := drive(ctx, o, a.Catalog, base)
	if err != nil {
		return err
	}
	if res.lost, err = countLost(ctx, raw["b"], res.acked); err != nil {
		return err
	}
	report := markdown(o, res)
	fmt.Print(report)
	if o.out != "" {
		return os.WriteFile(o.out, []byte(report), 0o644)
	}
	return nil
}

// seed creates tenant name on placement db and inserts n users with SQL.
func seed(ctx context.Context, cat *tenants.Catalog, raw map[string]*sql.DB, name, db string, n int) error {
	t, err := cat.Create(ctx, tenants.Spec{Name: name, Database: db, Hosts: []string{hostOf(name)}})
	if err != nil {
		return err
	}
	_, err = raw[db].ExecContext(ctx, `INSERT INTO `+migrations.Quote(t.Schema+".users")+` (name, email, created_at, updated_at)
		SELECT 'User ' || i, 'seed-' || i || '@example.com', now(), now() FROM generate_series(1, $1) i`, n)
	return err
}

// sample is one answer a client got.
type sample struct {
	at     time.Time // when the request was sent
	took   time.Duration
	status int
	code   string // the problem type's last part, for errors
}

// result is what the clients and the move saw.
type result struct {
	rep                  tenants.MoveReport
	moveStart, moveEnd   time.Time
	loadStart            time.Time
	mover, writes, other []sample
	failedTransport      int64
	acked                []string // emails answered 201
	lost                 int
}

func drive(ctx context.Context, o options, cat *tenants.Catalog, base string) (*result, error) {
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	res := &result{loadStart: time.Now()}
	var mu sync.Mutex
	var transport atomic.Int64
	var seq atomic.Int64
	loadCtx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	send := func(method, host, path, body string) (sample, string, bool) {
		var rd io.Reader
		if body != "" {
			rd = strings.NewReader(body)
		}
		// The client's context, not the load's: a request in flight when
		// the load stops gets its answer, so no acknowledged write is
		// missed.
		req, err := http.NewRequestWithContext(ctx, method, base+path, rd)
		if err != nil {
			return sample{}, "", false
		}
		req.Host = host
		req.Header.Set("Content-Type", "application/json")
		s := sample{at: time.Now()}
		resp, err := client.Do(req)
		if err != nil {
			transport.Add(1)
			return s, "", false
		}
		b, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		s.took, s.status = time.Since(s.at), resp.StatusCode
		if s.status >= 400 {
			var p struct{ Type string }
			_ = json.Unmarshal(b, &p)
			s.code = p.Type[strings.LastIndexByte(p.Type, ':')+1:]
		}
		return s, string(b), true
	}
	var wg sync.WaitGroup
	for range o.readers {
		wg.Go(func() {
			for loadCtx.Err() == nil {
				if s, _, ok := send(http.MethodGet, hostOf(moverName), fmt.Sprintf("/api/users/%d", 1+rand.IntN(o.users)), ""); ok {
					mu.Lock()
					res.mover = append(res.mover, s)
					mu.Unlock()
				}
			}
		})
	}
	for w := range o.writers {
		wg.Go(func() {
			for loadCtx.Err() == nil {
				email := fmt.Sprintf("w%d-%d@example.com", w, seq.Add(1))
				s, _, ok := send(http.MethodPost, hostOf(moverName), "/api/users", `{"name":"Writer","email":"`+email+`"}`)
				if !ok {
					continue
				}
				mu.Lock()
				res.writes = append(res.writes, s)
				if s.status == http.StatusCreated {
					res.acked = append(res.acked, email)
				}
				mu.Unlock()
				if s.status == http.StatusServiceUnavailable {
					// A client that honours Retry-After would wait whole
					// seconds; this one retries soon, to time the pause.
					time.Sleep(20 * time.Millisecond)
				}
			}
		})
	}
	for range o.otherClients {
		wg.Go(func() {
			for loadCtx.Err() == nil {
				name := otherName(rand.IntN(max(o.others, 1)))
				if s, _, ok := send(http.MethodGet, hostOf(name), fmt.Sprintf("/api/users/%d", 1+rand.IntN(o.otherUsers)), ""); ok {
					mu.Lock()
					res.other = append(res.other, s)
					mu.Unlock()
				}
			}
		})
	}
	logf("load running; moving in %s", o.before)
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(o.before):
	}
	res.moveStart = time.Now()
	rep, err := cat.Move(ctx, moverName, tenants.MoveOptions{To: "b", Grace: o.grace, CopyRate: o.copyRate})
	res.moveEnd = time.Now()
	if err != nil {
		stopLoad()
		wg.Wait()
		return nil, fmt.Errorf("move: %w", err)
	}
	res.rep = rep
	logf("moved in %s (copy %s, write pause %s); load goes on for %s", res.moveEnd.Sub(res.moveStart).Round(time.Millisecond),
		rep.Copy.Round(time.Millisecond), rep.WritePause.Round(time.Millisecond), o.after)
	select {
	case <-ctx.Done():
	case <-time.After(o.after):
	}
	stopLoad()
	wg.Wait()
	res.failedTransport = transport.Load()
	return res, ctx.Err()
}

// countLost counts the acknowledged users missing from the target.
func countLost(ctx context.Context, target *sql.DB, acked []string) (int, error) {
	var found int
	err := target.QueryRowContext(ctx, "SELECT count(*) FROM mover.users WHERE email = ANY($1)", acked).Scan(&found)
	if err != nil {
		return 0, fmt.Errorf("count acknowledged users on the target: %w", err)
	}
	return len(acked) - found, nil
}

// window returns the latencies of the 200s among ss sent in [from, to).
func window(ss []sample, from, to time.Time) []time.Duration {
	var out []time.Duration
	for _, s := range ss {
		if s.status == http.StatusOK && !s.at.Before(from) && s.at.Before(to) {
			out = append(out, s.took)
		}
	}
	slices.Sort(out)
	return out
}

func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(q*float64(len(sorted))))]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func markdown(o options, r *result) string {
	var b strings.Builder
	failedReads := 0
	for _, s := range append(slices.Clone(r.mover), r.other...) {
		if s.status != http.StatusOK {
			failedReads++
		}
	}
	var first, last time.Time
	writeCodes := map[string]int{}
	for _, s := range r.writes {
		key := fmt.Sprint(s.status)
		if s.code != "" {
			key += " " + s.code
		}
		writeCodes[key]++
		if s.code == "tenant-moving" {
			if first.IsZero() || s.at.Before(first) {
				first = s.at
			}
			if end := s.at.Add(s.took); end.After(last) {
				last = end
			}
		}
	}
	seen := time.Duration(0)
	if !first.IsZero() {
		seen = last.Sub(first)
	}
	before := window(r.other, r.loadStart.Add(o.before/5), r.moveStart)
	during := window(r.other, r.moveStart, r.moveEnd)
	p99b, p99d := quantile(before, 0.99), quantile(during, 0.99)
	ratio := 0.0
	if p99b > 0 {
		ratio = float64(p99d) / float64(p99b)
	}
	fmt.Fprintf(&b, "## Online move of a tenant (bench/move), %s\n\n", time.Now().UTC().Format("2006-01-02"))
	fmt.Fprintf(&b, "Machine: %s, %d CPUs, %s, %s. Service in the load generator's process.\n\n",
		benchdb.CPUModel(), runtime.NumCPU(), benchdb.Memory(), runtime.Version())
	fmt.Fprintf(&b, "Method: %d users on the moving tenant, %d other tenants of %d users; %d readers and %d writers on the mover, "+
		"%d readers on the others, all closed-loop; %s of load, then Catalog.Move to the other database (grace %s, copy rate %s), then %s more. "+
		"Placements: a=%s, b=%s (control %s).\n\n",
		o.users, o.others, o.otherUsers, o.readers, o.writers, o.otherClients, o.before, o.grace, copyRate(o.copyRate), o.after,
		redact(o.dsnA), redact(o.dsnB), redact(o.dsn))
	b.WriteString("| figure | value | goal |\n|---|---|---|\n")
	fmt.Fprintf(&b, "| rows moved | %d (%d caught up during the pause) | |\n", r.rep.Rows, r.rep.CaughtUp)
	fmt.Fprintf(&b, "| bulk copy and pre-pass (reads and writes go on) | %.0f ms | |\n", ms(r.rep.Copy))
	fmt.Fprintf(&b, "| write pause, as the move reports it | %.0f ms | < 5000 ms |\n", ms(r.rep.WritePause))
	fmt.Fprintf(&b, "| write pause, as clients saw it (first to last 503 tenant-moving) | %.0f ms | < 5000 ms |\n", ms(seen))
	fmt.Fprintf(&b, "| whole move (with grace and retirement) | %.0f ms | |\n", ms(r.moveEnd.Sub(r.moveStart)))
	fmt.Fprintf(&b, "| failed reads (non-200, all tenants) | %d of %d (+%d transport errors) | 0 |\n",
		failedReads, len(r.mover)+len(r.other), r.failedTransport)
	fmt.Fprintf(&b, "| rows lost (201 answered, missing on the target) | %d of %d | 0 |\n", r.lost, len(r.acked))
	fmt.Fprintf(&b, "| others' p50 before / during the move | %.1f / %.1f ms | |\n", ms(quantile(before, 0.5)), ms(quantile(during, 0.5)))
	fmt.Fprintf(&b, "| others' p99 before / during the move | %.1f / %.1f ms (%.2f×; %d / %d requests) | ≤ 1.5× |\n",
		ms(p99b), ms(p99d), ratio, len(before), len(during))
	// Which part of the move costs the others: the bulk copy (writes on),
	// the pause (catch-up and verification), or the grace and retirement.
	copyEnd := r.moveStart.Add(r.rep.Copy)
	pauseEnd := copyEnd.Add(r.rep.WritePause)
	fmt.Fprintf(&b, "| others' p99 in the copy / the pause / the grace and retirement | %.1f / %.1f / %.1f ms | |\n",
		ms(quantile(window(r.other, r.moveStart, copyEnd), 0.99)),
		ms(quantile(window(r.other, copyEnd, pauseEnd), 0.99)),
		ms(quantile(window(r.other, pauseEnd, r.moveEnd), 0.99)))
	codes := make([]string, 0, len(writeCodes))
	for k, n := range writeCodes {
		codes = append(codes, fmt.Sprintf("%s: %d", k, n))
	}
	slices.Sort(codes)
	fmt.Fprintf(&b, "| mover's write answers | %s | |\n", strings.Join(codes, ", "))
	return b.String()
}

// redact keeps a DSN's host and port only.
func redact(dsn string) string {
	at := strings.LastIndexByte(dsn, '@')
	rest := dsn[at+1:]
	if i := strings.IndexAny(rest, "/?"); i >= 0 {
		rest = rest[:i]
	}
	return rest
}

// copyRate describes MoveOptions.CopyRate as the move applies it.
func copyRate(r int64) string {
	switch {
	case r == 0:
		return fmt.Sprintf("default %d KiB/s", tenants.DefaultMoveCopyRate>>10)
	case r < 0:
		return "unbounded"
	}
	return fmt.Sprintf("%d KiB/s", r>>10)
}
