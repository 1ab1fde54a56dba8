package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"tenantry/config"
)

// TestConfigYAML: every key the modes write is one tenantry decodes
// (config.Load ignores unknown keys, so a misspelt one would silently
// measure the default), with the values the mode means.
func TestConfigYAML(t *testing.T) {
	o := options{pool: 16, defaultRate: 50, concurrency: 3, wait: 250 * time.Millisecond}
	for _, tc := range []struct {
		mode string
		want config.Tenancy
	}{
		{"off", config.Tenancy{MaxConcurrentPerTenant: 0, RateLimit: 0, ConcurrencyWait: config.DefaultConcurrencyWait}},
		{"on", config.Tenancy{MaxConcurrentPerTenant: 3, RateLimit: 50, ConcurrencyWait: 250 * time.Millisecond}},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			dir := t.TempDir()
			t.Chdir(dir)
			file := filepath.Join(dir, "c.yaml")
			if err := os.WriteFile(file, []byte(configYAML(o, tc.mode, "127.0.0.1:1", "127.0.0.1:2", "tok", "postgres://x/y")), 0o600); err != nil {
				t.Fatal(err)
			}
			t.Setenv("TENANTRY_CONFIG", file)
			c, err := config.Load(nil)
			if err != nil {
				t.Fatal(err)
			}
			got := c.Tenancy
			if got.MaxConcurrentPerTenant != tc.want.MaxConcurrentPerTenant || got.RateLimit != tc.want.RateLimit ||
				got.ConcurrencyWait != tc.want.ConcurrencyWait || c.Database.MaxOpenConns != 16 || len(c.Tenants) != 0 {
				t.Errorf("loaded %+v (pool %d, %d tenants), want %+v", got, c.Database.MaxOpenConns, len(c.Tenants), tc.want)
			}
		})
	}
	// With the service's defaults the concurrency is derived from the pool.
	o.concurrency, o.wait = 0, 0
	if s := limitsOf(o, "on"); !strings.Contains(s, "concurrency 8 (wait 1s)") {
		t.Errorf("limitsOf = %q, want the service's default of half the pool", s)
	}
}

// TestOpenLoop: the open-loop driver keeps its schedule whatever the
// server answers and counts only what is due inside the window.
func TestOpenLoop(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch n.Add(1) % 4 {
		case 0:
			w.WriteHeader(http.StatusTooManyRequests)
		case 1:
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	start := time.Now()
	d := &driver{base: srv.URL, users: 10, client: srv.Client(), from: start.Add(200 * time.Millisecond), to: start.Add(1200 * time.Millisecond)}
	var tl tally
	d.openLoop(context.Background(), "t1.noisy", 100, &tl, 1)
	// 100 a second over a 1 s window; the edges may take one more or less.
	if got := tl.ok + tl.tooMany + tl.errors; got < 98 || got > 102 {
		t.Errorf("%d requests counted, want about 100", got)
	}
	if tl.tooMany < 20 || tl.errors < 20 || tl.ok < 40 || len(tl.lat) != tl.ok {
		t.Errorf("tally %d ok (%d latencies), %d 429, %d errors; want about half, a quarter and a quarter", tl.ok, len(tl.lat), tl.tooMany, tl.errors)
	}
}

func TestPercentile(t *testing.T) {
	var tl tally
	for i := 1; i <= 100; i++ {
		tl.lat = append(tl.lat, time.Duration(i)*time.Millisecond)
	}
	for q, want := range map[float64]time.Duration{50: 50 * time.Millisecond, 99: 99 * time.Millisecond, 100: 100 * time.Millisecond} {
		if got := tl.p(q); got != want {
			t.Errorf("p(%v) = %v, want %v", q, got, want)
		}
	}
	if got := (&tally{}).p(99); got != 0 {
		t.Errorf("p99 of nothing = %v, want 0", got)
	}
}

// TestMarkdown: the table has a row per mode and phase, the p99 ratio
// against the same mode's quiet phase, and the goal's verdict.
func TestMarkdown(t *testing.T) {
	o := options{tenants: 3, users: 1, pool: 4, rate: 10, factor: 10, duration: time.Second, floodConns: 2, defaultRate: 50}
	phase := func(name string, p99 time.Duration, errs int) phaseResult {
		return phaseResult{phase: name, others: &tally{lat: []time.Duration{p99}, ok: 1, errors: errs}, noisy: &tally{tooMany: 7}, offeredNoisy: "x"}
	}
	out := markdown(o, info{}, []modeResult{
		{mode: "off", phases: []phaseResult{phase("quiet", 10*time.Millisecond, 0), phase("noisy", 50*time.Millisecond, 0), phase("flood", 15*time.Millisecond, 2)}},
		{mode: "on", phases: []phaseResult{phase("quiet", 10*time.Millisecond, 0), phase("noisy", 12*time.Millisecond, 0), phase("flood", 19*time.Millisecond, 0)}},
	})
	for _, want := range []string{
		"| off (none) | noisy | x | 1 | 50.0 / 50.0 ms | **5.00×** | 0 | **missed** | 0 | 7 | 0 |",
		"| off (none) | flood | x | 1 | 15.0 / 15.0 ms | **1.50×** | 2 | **missed** |",
		"| on (concurrency 2 (wait 1s), rate 50/s per tenant) | noisy | x | 1 | 12.0 / 12.0 ms | **1.20×** | 0 | met |",
		"| on (concurrency 2 (wait 1s), rate 50/s per tenant) | quiet | – | 1 | 10.0 / 10.0 ms | – | 0 | – | – | – | – |",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
}
