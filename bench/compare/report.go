package main

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"time"

	"tenantry/bench/internal/benchdb"

	"tenantry/bench/internal/benchproc"
)

// pgSettings are the PostgreSQL settings the header reports.
var pgSettings = []string{"shared_buffers", "max_connections", "plan_cache_mode", "max_files_per_process"}

// sittingInfo is what the report's header says about the machine and the run.
type sittingInfo struct {
	start           time.Time
	pgVersion       string
	pgSettings      []string // "name value", in pgSettings' order
	loadBefore      string
	baselineStartup time.Duration
}

func describe(ctx context.Context, pg *sql.DB, o options) (sittingInfo, error) {
	info := sittingInfo{start: time.Now().UTC(), loadBefore: loadavg()}
	if err := pg.QueryRowContext(ctx, "SHOW server_version").Scan(&info.pgVersion); err != nil {
		return info, err
	}
	for _, s := range pgSettings {
		var v string
		if err := pg.QueryRowContext(ctx, "SHOW "+s).Scan(&v); err != nil {
			return info, fmt.Errorf("show %s: %w", s, err)
		}
		info.pgSettings = append(info.pgSettings, s+" "+v)
	}
	return info, nil
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// report writes markdown to stdout and, with -out, to a file, section by
// section, so that a sitting cut short keeps what it measured.
type report struct {
	w     io.Writer
	file  *os.File
	begun time.Time
}

func newReport(path string) (*report, error) {
	r := &report{w: os.Stdout}
	if path != "" {
		f, err := os.Create(path)
		if err != nil {
			return nil, err
		}
		r.file, r.w = f, io.MultiWriter(os.Stdout, f)
	}
	return r, nil
}

func (r *report) close() {
	if r.file != nil {
		if err := r.file.Close(); err != nil {
			logf("warning: %v", err)
		}
	}
}

func (r *report) printf(format string, args ...any) { fmt.Fprintf(r.w, format, args...) }

func (r *report) header(info sittingInfo, o options) {
	r.begun = info.start
	r.printf("\n## bench/compare, %s UTC\n\n", info.start.Format("2006-01-02 15:04"))
	r.printf("**Command:** `go run ./bench/compare %s`\n\n", strings.Join(os.Args[1:], " "))
	r.printf("**Machine:** %d CPUs (%s), %s; PostgreSQL %s (%s); %s; load average before: %s.\n\n",
		runtime.NumCPU(), benchdb.CPUModel(), benchdb.Memory(), info.pgVersion, strings.Join(info.pgSettings, ", "), runtime.Version(), info.loadBefore)
	r.printf("**Method:** tenantry with %s tenants (t0…tN-1 on schemas, %d users each, provisioned incrementally; "+
		"a fresh `tenantry serve` per count) against the baseline (%d users, started once; it answered its first request %s after exec). "+
		"Both apps: pool %d (max open = max idle); tenantry: database.pool_groups %s, database.statement_cache_capacity %s, database.home_wait %s, %s. "+
		"bench/load: %d keep-alive connections; for tenantry the Host header rotates over all N tenants; requests in flight at the end of a run are let finish, uncounted, so the pools keep their connections. "+
		"Rounds: %d alternating runs per app and mix (%s), each %s warm-up + %s measured, all read rounds before the POST rounds; tables show medians. "+
		"%s"+
		"Before each count after the first, the users tables POST rounds wrote to (baseline and tenants) are truncated and re-seeded, so reads always see only the seeded users. "+
		"Memory is read after each count's runs. App CPU is the server's user+system time over the run (warm-up included) per request; database CPU is the same for the PostgreSQL backends connected to the app's database.\n",
		joinInts(o.counts), o.users, o.users, info.baselineStartup.Round(time.Millisecond), o.pool, orDefault(o.poolGroups), orDefault(o.stmtCache), orDefaultString(o.homeWait), logMethod(o.accessLog),
		o.conns, o.rounds, strings.Join(o.mixes, ", "), o.warmup, o.duration, coldMethod(o.cold))
}

func (r *report) count(cr countResult, baseCold []result, o options) {
	noun := "tenants"
	if cr.tenants == 1 {
		noun = "tenant"
	}
	r.printf("\n### %s %s\n\n", thousands(cr.tenants), noun)
	r.printf("Start-up: **%s** from exec of `tenantry serve` to its first 200 (polled every %s).\n\n", cr.startup.Round(time.Millisecond), benchproc.ReadyPoll)

	r.printf("| mix | baseline req/s | tenantry req/s | ratio | baseline p50 / p99 | tenantry p50 / p99 | p99 ratio | errors (b / t) | app CPU µs/req (b / t) | database CPU µs/req (b / t) |\n")
	r.printf("|---|---|---|---|---|---|---|---|---|---|\n")
	for _, mix := range o.mixes {
		b, t := summarize(cr.runs[mix]["baseline"]), summarize(cr.runs[mix]["tenantry"])
		r.printf("| %s | %s | %s | **%.2f×** | %.1f / %.1f ms | %.1f / %.1f ms | %.2f× | %d / %d | %.0f / %.0f | %.0f / %.0f |\n",
			mix, thousands(int(b.RPS+0.5)), thousands(int(t.RPS+0.5)), t.RPS/b.RPS, b.P50Ms, b.P99Ms, t.P50Ms, t.P99Ms, t.P99Ms/b.P99Ms, b.Errors, t.Errors, b.appCPUus, t.appCPUus, b.dbCPUus, t.dbCPUus)
	}
	r.printf("\nEvery run (req/s / p99 ms):")
	for i, mix := range o.mixes {
		for j, name := range []string{"baseline", "tenantry"} {
			var parts []string
			for _, x := range cr.runs[mix][name] {
				parts = append(parts, fmt.Sprintf("%.0f/%.1f", x.RPS, x.P99Ms))
			}
			sep := ";"
			if i == 0 && j == 0 {
				sep = ""
			}
			r.printf("%s %s %s %s", sep, mix, name, strings.Join(parts, ", "))
		}
	}
	r.printf(".\n")

	if len(cr.cold) > 0 {
		r.printf("\nCold start (read mix, no warm-up, from the first 200; the baseline's was measured once, after its own start):\n\n")
		r.printf("| slice | baseline req/s | baseline p99 | tenantry req/s | tenantry p99 | errors (b / t) |\n|---|---|---|---|---|---|\n")
		from := time.Duration(0)
		for i, t := range cr.cold {
			to := min(from+coldSlice, o.cold)
			bRPS, bP99, bErr := "–", "–", "–"
			if i < len(baseCold) {
				b := baseCold[i]
				bRPS, bP99, bErr = thousands(int(b.RPS+0.5)), fmt.Sprintf("%.1f ms", b.P99Ms), fmt.Sprint(b.Errors)
			}
			r.printf("| %g–%g s | %s | %s | %s | %.1f ms | %s / %d |\n", from.Seconds(), to.Seconds(), bRPS, bP99, thousands(int(t.RPS+0.5)), t.P99Ms, bErr, t.Errors)
			from = to
		}
	}

	r.printf("\nMemory after the runs (PostgreSQL backends: client backends on the app's database, private = Private_Clean + Private_Dirty):\n\n")
	r.printf("| app | VmRSS | VmHWM | backends | backend private max | median | total |\n|---|---|---|---|---|---|---|\n")
	for _, name := range []string{"baseline", "tenantry"} {
		m := cr.mem[name]
		unread := ""
		if m.unread > 0 {
			unread = fmt.Sprintf(" (%d unreadable)", m.unread)
		}
		r.printf("| %s | %s | %s | %d%s | %s | %s | %s |\n", name, mib(m.rssKB), mib(m.hwmKB), m.backends, unread, mib(m.privMaxKB), mib(m.privMedianKB), mib(m.privTotalKB))
	}

	if l := cr.live; l != nil {
		med, most := l.createdMedianMax()
		r.printf("\nProvisioning under load (read mix, one run each, %s warm-up + %s; tenants created through POST /admin/tenants at 1/s during the measured window, not in the load's host list):\n\n", o.warmup, o.duration)
		r.printf("| read run | req/s | p50 / p99 | errors |\n|---|---|---|---|\n")
		r.printf("| alone | %s | %.1f / %.1f ms | %d |\n", thousands(int(l.normal.RPS+0.5)), l.normal.P50Ms, l.normal.P99Ms, l.normal.Errors)
		r.printf("| while creating tenants | %s | %.1f / %.1f ms | %d |\n", thousands(int(l.during.RPS+0.5)), l.during.P50Ms, l.during.P99Ms, l.during.Errors)
		r.printf("\np99 ratio (during / alone): **%.2f×** (goal: at most 1.5×). Creations: %d made, latency median %s, max %s; %d failed",
			l.during.P99Ms/l.normal.P99Ms, len(l.created), med.Round(time.Millisecond), most.Round(time.Millisecond), l.failed)
		if l.failSample != "" {
			r.printf(" (e.g. %s)", l.failSample)
		}
		r.printf(".\n")
	}
}

func (r *report) summary(all []countResult) {
	if len(all) > 1 {
		r.printf("\n### Across counts\n\n")
		r.printf("| tenants | start-up | read ratio | read p99 ratio | post ratio | post p99 ratio | first cold slice (t) req/s / p99 | tenantry VmRSS / VmHWM | tenantry backends: n, private max / median |\n")
		r.printf("|---|---|---|---|---|---|---|---|---|\n")
		for _, cr := range all {
			ratios := func(mix string) (string, string) {
				if cr.runs[mix] == nil {
					return "–", "–"
				}
				b, t := summarize(cr.runs[mix]["baseline"]), summarize(cr.runs[mix]["tenantry"])
				return fmt.Sprintf("%.2f×", t.RPS/b.RPS), fmt.Sprintf("%.2f×", t.P99Ms/b.P99Ms)
			}
			rr, rp := ratios("read")
			pr, pp := ratios("post")
			cold := "–"
			if len(cr.cold) > 0 {
				cold = fmt.Sprintf("%s / %.1f ms", thousands(int(cr.cold[0].RPS+0.5)), cr.cold[0].P99Ms)
			}
			m := cr.mem["tenantry"]
			r.printf("| %s | %s | %s | %s | %s | %s | %s | %s / %s | %d, %s / %s |\n", thousands(cr.tenants), cr.startup.Round(time.Millisecond),
				rr, rp, pr, pp, cold, mib(m.rssKB), mib(m.hwmKB), m.backends, mib(m.privMaxKB), mib(m.privMedianKB))
		}
	}
	end := time.Now().UTC()
	r.printf("\nSitting %s–%s UTC (%s); load average after: %s.\n", r.begun.Format("15:04"), end.Format("15:04"), end.Sub(r.begun).Round(time.Second), loadavg())
}

func mib(kB int64) string { return fmt.Sprintf("%.1f MiB", float64(kB)/1024) }

func orDefault(n int) string {
	if n == 0 {
		return "unset (service default)"
	}
	return fmt.Sprint(n)
}

func orDefaultString(s string) string {
	if s == "" {
		return "unset (service default)"
	}
	return s
}

func coldMethod(cold time.Duration) string {
	if cold == 0 {
		return "Cold start: not measured (-cold 0). "
	}
	return fmt.Sprintf("Cold start: the read mix with no warm-up in consecutive %s slices for %s, right after tenantry's first 200 (and once for the baseline, after its start). ", coldSlice, cold)
}

func joinInts(ns []int) string {
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = thousands(n)
	}
	return strings.Join(s, ", ")
}

// thousands writes n with commas between groups of three digits.
func thousands(n int) string {
	s := fmt.Sprint(n)
	if n < 0 {
		return "-" + thousands(-n)
	}
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// logMethod says how tenantry logged during the sitting (-access-log).
func logMethod(access bool) string {
	if access {
		return "log.level info with a JSON access line per request (to a file)"
	}
	return "log.level warn, access lines off"
}
