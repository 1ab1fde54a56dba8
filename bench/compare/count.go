package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"tenantry/bench/internal/benchproc"
)

// countResult is everything measured at one tenant count.
type countResult struct {
	tenants int
	startup time.Duration
	cold    []result
	runs    map[string]map[string][]result // mix → app → runs, in order
	live    *liveResult                    // nil unless this is -provision-at
	mem     map[string]memory              // app → memory after the runs
}

// count starts a fresh tenantry over the first n tenants (already
// provisioned) and measures it against the running baseline: start-up time,
// cold start, the read rounds, provisioning under load, the POST rounds,
// and memory after them (see the package comment).
// tenantry is stopped when it returns.
func (s *sitting) count(ctx context.Context, n int) (countResult, error) {
	o := s.o
	cr := countResult{tenants: n, runs: map[string]map[string][]result{}, mem: map[string]memory{}}

	hosts := filepath.Join(s.work, fmt.Sprintf("hosts-%d.txt", n))
	var hb strings.Builder
	for i := range n {
		hb.WriteString(host(i) + "\n")
	}
	if err := os.WriteFile(hosts, []byte(hb.String()), 0o600); err != nil {
		return cr, err
	}
	cfg := filepath.Join(s.work, fmt.Sprintf("config-%d.yaml", n))
	if err := os.WriteFile(cfg, []byte(configYAML(o, s.tenDB.DSN, s.api.token)), 0o600); err != nil {
		return cr, err
	}
	if err := requireFree(strings.TrimPrefix(tenantryURL, "http://"), adminListen); err != nil {
		return cr, err
	}
	ten, err := benchproc.Start(s.work, fmt.Sprintf("tenantry-%d", n), s.bins["tenantry"], "serve", "--config", cfg)
	if err != nil {
		return cr, err
	}
	defer ten.Stop()
	if cr.startup, err = ten.WaitReady(ctx, tenantryURL+"/api/users?limit=1", host(0)); err != nil {
		return cr, err
	}
	logf("%d tenants: tenantry answered 200 %s after exec", n, cr.startup.Round(time.Millisecond))
	t := app{name: "tenantry", url: tenantryURL, db: s.tenDB.Name, hosts: hosts, proc: ten}

	if o.cold > 0 {
		if cr.cold, err = coldSlices(ctx, o, s.bins["load"], t); err != nil {
			return cr, err
		}
	}

	liveDue := n == o.provisionAt
	profileRound := min(1, o.rounds-1)
	for _, mix := range o.mixes {
		if mix != "read" && liveDue {
			// Before any POST round, so that its reads see only seeded rows.
			if cr.live, err = s.provisionUnderLoad(ctx, t, n); err != nil {
				return cr, err
			}
			liveDue = false
		}
		if cr.runs[mix] == nil {
			cr.runs[mix] = map[string][]result{}
		}
		for r := range o.rounds {
			order := []app{s.base, t}
			if r%2 == 1 {
				order[0], order[1] = order[1], order[0]
			}
			for _, a := range order {
				var sides []func(context.Context)
				if o.pprofOut != "" && a.name == "tenantry" && r == profileRound {
					sides = append(sides, s.profileDuring(ctx, n, mix))
				}
				res, err := measure(ctx, o, s.bins["load"], a, mix, s.pg, sides...)
				if err != nil {
					return cr, err
				}
				logf("%d tenants: %s %s round %d: %.0f req/s, p50 %.1f ms, p99 %.1f ms, max %.1f ms, errors %d, status %v, app CPU %.0f µs/req, database CPU %.0f µs/req, ~%.2f db commits/req (approximate: statistics flush late)",
					n, mix, a.name, r+1, res.RPS, res.P50Ms, res.P99Ms, res.MaxMs, res.Errors, res.Status, res.appCPUus, res.dbCPUus, res.commitsPerReq)
				cr.runs[mix][a.name] = append(cr.runs[mix][a.name], res)
			}
		}
	}
	if liveDue {
		if cr.live, err = s.provisionUnderLoad(ctx, t, n); err != nil {
			return cr, err
		}
	}

	for _, a := range []app{s.base, t} {
		m, err := measureMemory(ctx, s.pg, a)
		if err != nil {
			// A missing memory row must not throw away the sitting's
			// throughput figures; the report shows the row as absent.
			logf("%d tenants: %s memory not measured: %v", n, a.name, err)
			continue
		}
		cr.mem[a.name] = m
		logf("%d tenants: %s memory: VmRSS %d kB, VmHWM %d kB; %d backends, private max %d kB, median %d kB",
			n, a.name, m.rssKB, m.hwmKB, m.backends, m.privMaxKB, m.privMedianKB)
	}
	return cr, nil
}

// profileDuring returns a side job for measure that, once the run's warm-up
// has passed, fetches a CPU profile of tenantry into -pprof-out. A failure
// is a warning: the figures do not depend on it.
func (s *sitting) profileDuring(ctx context.Context, n int, mix string) func(context.Context) {
	return func(run context.Context) {
		select {
		case <-time.After(s.o.warmup):
		case <-run.Done():
			return
		}
		secs := max(1, min(10, int(s.o.duration.Seconds())))
		path := filepath.Join(s.o.pprofOut, fmt.Sprintf("tenantry-%d-tenants-%s.pprof", n, mix))
		// ctx, not run: the profile may outlast a short run by a little.
		if err := s.api.profile(ctx, secs, path); err != nil {
			logf("warning: %d tenants: no CPU profile: %v", n, err)
			return
		}
		logf("%d tenants: %d s CPU profile of tenantry (%s mix) written to %s", n, secs, mix, path)
	}
}
