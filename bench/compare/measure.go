package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os/exec"
	"slices"
	"strconv"
	"sync"
	"time"

	"tenantry/bench/internal/benchproc"
)

// coldSlice is the length of each slice of the cold-start measurement.
const coldSlice = 10 * time.Second

// app is one of the two servers under load.
type app struct {
	name, url, db, hosts string
	proc                 *benchproc.Proc
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
	dbCPUus       float64 // the app's PostgreSQL backends' CPU per request, estimated like appCPUus
	commitsPerReq float64
}

// load runs bench/load once against a.
func load(ctx context.Context, o options, loadBin string, a app, mix string, warmup, duration time.Duration) (result, error) {
	args := []string{"-url", a.url, "-conns", strconv.Itoa(o.conns), "-duration", duration.String(),
		"-warmup", warmup.String(), "-mix", mix, "-ids", strconv.Itoa(o.users), "-json"}
	if a.hosts != "" {
		args = append(args, "-hosts", a.hosts)
	}
	cmd := exec.CommandContext(ctx, loadBin, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return result{}, fmt.Errorf("load %s %s: %v: %s", a.name, mix, err, stderr.String())
	}
	var r result
	if err := json.Unmarshal(out, &r); err != nil {
		return r, fmt.Errorf("load output %q: %w", out, err)
	}
	if len(r.ErrorSample) > 0 {
		logf("  %s %s error sample: %v", a.name, mix, r.ErrorSample)
	}
	return r, nil
}

// measure is one run of the rounds: -warmup then -duration of mix against
// a, with the app's CPU time and the database's commits around it. Each of
// sides runs alongside the load; its context ends when the load does, and
// measure waits for it to return.
func measure(ctx context.Context, o options, loadBin string, a app, mix string, pg *sql.DB, sides ...func(context.Context)) (result, error) {
	commits := func() int64 {
		var n int64
		// Exec, not QueryRow(...).Err(): Err does not release the row's
		// connection, so each call leaked one until the server was full.
		_, _ = pg.ExecContext(ctx, "SELECT pg_stat_force_next_flush()") // PostgreSQL 15+; harmless if it fails
		_ = pg.QueryRowContext(ctx, "SELECT xact_commit FROM pg_stat_database WHERE datname = $1", a.db).Scan(&n)
		return n
	}
	cpu0, db0, c0 := cpu(a.proc), dbCPU(ctx, pg, a.db), commits()
	var wg sync.WaitGroup
	run, ended := context.WithCancel(ctx)
	for _, side := range sides {
		wg.Go(func() { side(run) })
	}
	r, err := load(ctx, o, loadBin, a, mix, o.warmup, o.duration)
	ended()
	wg.Wait()
	if err != nil {
		return r, err
	}
	time.Sleep(1500 * time.Millisecond) // let backends flush their statistics
	cpu1, db1, c1 := cpu(a.proc), dbCPU(ctx, pg, a.db), commits()
	// Warm-up requests cost CPU and commits too: spread over every request
	// of the run, estimated from the measured rate.
	total := r.RPS * (o.duration + o.warmup).Seconds()
	if total > 0 {
		r.appCPUus = (cpu1 - cpu0).Seconds() * 1e6 / total
		r.dbCPUus = cpuSince(db0, db1).Seconds() * 1e6 / total
		r.commitsPerReq = float64(c1-c0) / total
	}
	time.Sleep(time.Second)
	return r, nil
}

// coldSlices measures the read mix against a, which has just answered its
// first request, with no warm-up: consecutive bench/load runs of coldSlice
// (the last one shorter if -cold is not a multiple of it) until -cold has
// passed. Only a new process's start (a few ms) separates the slices.
func coldSlices(ctx context.Context, o options, loadBin string, a app) ([]result, error) {
	var out []result
	for left := o.cold; left > 0; left -= coldSlice {
		r, err := load(ctx, o, loadBin, a, "read", 0, min(left, coldSlice))
		if err != nil {
			return out, err
		}
		logf("  cold %s %d: %.0f req/s, p50 %.1f ms, p99 %.1f ms, max %.1f ms, errors %d",
			a.name, len(out)+1, r.RPS, r.P50Ms, r.P99Ms, r.MaxMs, r.Errors)
		out = append(out, r)
	}
	return out, nil
}

// summarize is the median of each figure over rs (the upper one of an even
// count) and the sum of their errors.
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
		dbCPUus:       med(func(r result) float64 { return r.dbCPUus }),
		commitsPerReq: med(func(r result) float64 { return r.commitsPerReq }),
	}
}
