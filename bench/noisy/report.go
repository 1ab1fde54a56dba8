package main

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"runtime"
	"strings"
	"time"

	"tenantry/bench/internal/benchdb"
)

// info describes the sitting for the report's header.
type info struct {
	when, command, machine, postgres, load string
}

func describe(ctx context.Context, o options) info {
	in := info{
		when:    time.Now().UTC().Format("2006-01-02 15:04 UTC"),
		command: strings.TrimSpace("go run ./bench/noisy " + strings.Join(os.Args[1:], " ")),
		machine: fmt.Sprintf("%d CPUs (%s), %s; %s", runtime.NumCPU(), benchdb.CPUModel(), benchdb.Memory(), runtime.Version()),
		load:    "unknown",
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(b)); len(f) >= 3 {
			in.load = strings.Join(f[:3], " ")
		}
	}
	in.postgres = "PostgreSQL (version unknown)"
	if db, err := sql.Open("pgx", o.dsn); err == nil {
		defer db.Close()
		var v string
		if db.QueryRowContext(ctx, "SHOW server_version").Scan(&v) == nil {
			in.postgres = "PostgreSQL " + v
		}
	}
	return in
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// markdown is the report: header, method and one table.
func markdown(o options, in info, results []modeResult) string {
	var b strings.Builder
	fmt.Fprintf(&b, "### Noisy neighbour: bench/noisy, %s\n\n", in.when)
	fmt.Fprintf(&b, "**Command:** `%s`\n\n", in.command)
	fmt.Fprintf(&b, "**Machine:** %s; %s; load average before: %s.\n\n", in.machine, in.postgres, in.load)
	fmt.Fprintf(&b, "**Method:** %d tenants (%d users each) on one `tenantry serve` (pool %d) per mode. "+
		"The %d quiet tenants t1…t%d each send %g req/s open-loop (the read mix; latency from the time a request was due). "+
		"Phases, each %s warm-up + %s measured: *quiet* (the quiet tenants alone), *noisy* (plus t0 at %g× their rate, open-loop), "+
		"*flood* (plus t0 closed-loop on %d connections, ignoring Retry-After). "+
		"Errors of the others: any answer that is not 2xx, or no answer within 10 s. p99 ratio: the phase's p99 over the same mode's quiet p99. "+
		"Goal: the others' p99 within 2× of quiet and 0 errors.\n\n",
		o.tenants, o.users, o.pool, o.tenants-1, o.tenants-1, o.rate, o.warmup, o.duration, o.factor, o.floodConns)
	b.WriteString("| limits | phase | t0 sends | others req/s | others p50 / p99 | p99 ratio | others errors | goal | t0 2xx/s | t0 429 | t0 other errors |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, mr := range results {
		var quietP99 time.Duration
		for _, ph := range mr.phases {
			if ph.phase == "quiet" {
				quietP99 = ph.others.p(99)
			}
		}
		for _, ph := range mr.phases {
			ratio, goal := "–", "–"
			if ph.phase != "quiet" && quietP99 > 0 {
				r := float64(ph.others.p(99)) / float64(quietP99)
				ratio = fmt.Sprintf("**%.2f×**", r)
				goal = "met"
				if r > 2 || ph.others.errors > 0 {
					goal = "**missed**"
				}
			}
			t0 := "–"
			t0ok, t0many, t0err := "–", "–", "–"
			if ph.phase != "quiet" {
				t0 = ph.offeredNoisy
				t0ok = fmt.Sprintf("%.0f", ph.noisy.rps(o.duration))
				t0many = fmt.Sprint(ph.noisy.tooMany)
				t0err = fmt.Sprint(ph.noisy.errors)
			}
			fmt.Fprintf(&b, "| %s (%s) | %s | %s | %.0f | %.1f / %.1f ms | %s | %d | %s | %s | %s | %s |\n",
				mr.mode, limitsOf(o, mr.mode), ph.phase, t0, ph.others.rps(o.duration),
				ms(ph.others.p(50)), ms(ph.others.p(99)), ratio, ph.others.errors, goal, t0ok, t0many, t0err)
		}
	}
	var samples []string
	for _, mr := range results {
		for _, ph := range mr.phases {
			for _, s := range ph.others.sample {
				samples = append(samples, fmt.Sprintf("%s/%s others: %s", mr.mode, ph.phase, s))
			}
			for _, s := range ph.noisy.sample {
				samples = append(samples, fmt.Sprintf("%s/%s t0: %s", mr.mode, ph.phase, s))
			}
		}
	}
	if len(samples) > 0 {
		b.WriteString("\nError samples:\n\n")
		for _, s := range samples {
			fmt.Fprintf(&b, "- %s\n", s)
		}
	}
	b.WriteString("\n")
	return b.String()
}
