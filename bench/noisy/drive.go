package main

import (
	"context"
	"fmt"
	"io"
	"math"
	mrand "math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"
)

// tally is what one group of requests (the quiet tenants, or the noisy
// one) got in a measured window.
type tally struct {
	mu      sync.Mutex
	lat     []time.Duration // of 2xx answers
	ok      int
	tooMany int
	errors  int // anything else: other statuses, transport errors
	sample  []string
}

func (t *tally) record(lat time.Duration, status int, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case err != nil:
		t.errors++
		t.note(err.Error())
	case status >= 200 && status < 300:
		t.ok++
		t.lat = append(t.lat, lat)
	case status == http.StatusTooManyRequests:
		t.tooMany++
	default:
		t.errors++
		t.note("status " + strconv.Itoa(status))
	}
}

func (t *tally) note(s string) {
	if len(t.sample) < 3 {
		t.sample = append(t.sample, s)
	}
}

// p is the nearest-rank percentile of the 2xx latencies; sort first.
func (t *tally) p(q float64) time.Duration {
	if len(t.lat) == 0 {
		return 0
	}
	rank := int(math.Ceil(q / 100 * float64(len(t.lat))))
	return t.lat[min(max(rank, 1), len(t.lat))-1]
}

// rps is the 2xx answers a second over the measured window.
func (t *tally) rps(window time.Duration) float64 { return float64(t.ok) / window.Seconds() }

// phaseResult is one phase of one mode.
type phaseResult struct {
	phase         string
	others, noisy *tally
	offeredNoisy  string // what the noisy tenant sent, in words
}

// modeResult is every phase of one limits mode.
type modeResult struct {
	mode   string
	phases []phaseResult
}

// driver sends the phases' requests.
type driver struct {
	base   string
	users  int
	client *http.Client
	from   time.Time // start of the measured window
	to     time.Time // its end
}

// path picks a request of the read mix.
func (d *driver) path(rng *mrand.Rand) string {
	if rng.IntN(10) == 0 {
		return "/api/users/" + strconv.Itoa(1+rng.IntN(d.users))
	}
	return "/api/users?limit=50"
}

// do sends one GET to host and returns its status.
func do(ctx context.Context, client *http.Client, url, host string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	req.Host = host
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, err
}

// openLoop sends host's requests at rate a second from now until d.to,
// each on schedule in its own goroutine, starting at a random phase, and
// records those due inside the window in t. Latency runs from the due
// time. It returns when the last request has been answered.
func (d *driver) openLoop(ctx context.Context, host string, rate float64, t *tally, seed uint64) {
	rng := mrand.New(mrand.NewPCG(seed, uint64(time.Now().UnixNano())))
	interval := time.Duration(float64(time.Second) / rate)
	due := time.Now().Add(time.Duration(rng.Int64N(int64(interval))))
	var wg sync.WaitGroup
	defer wg.Wait()
	timer := time.NewTimer(time.Until(due))
	defer timer.Stop()
	for due.Before(d.to) {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		at, path := due, d.path(rng)
		wg.Go(func() {
			status, err := do(ctx, d.client, d.base+path, host)
			if at.Before(d.from) || ctx.Err() != nil {
				return
			}
			t.record(time.Since(at), status, err)
		})
		due = due.Add(interval)
		timer.Reset(time.Until(due))
	}
}

// closedLoop sends host's requests one after another on conns keep-alive
// connections until d.to, and records those answered inside the window.
func (d *driver) closedLoop(ctx context.Context, host string, conns int, t *tally) {
	var wg sync.WaitGroup
	for i := range conns {
		wg.Go(func() {
			tr := &http.Transport{Proxy: nil, MaxConnsPerHost: 1, MaxIdleConnsPerHost: 1, DisableCompression: true}
			defer tr.CloseIdleConnections()
			client := &http.Client{Transport: tr, Timeout: d.client.Timeout}
			rng := mrand.New(mrand.NewPCG(uint64(i), uint64(time.Now().UnixNano())))
			for ctx.Err() == nil && time.Now().Before(d.to) {
				t0 := time.Now()
				status, err := do(ctx, client, d.base+d.path(rng), host)
				t1 := time.Now()
				if t1.Before(d.from) || !t1.Before(d.to) || ctx.Err() != nil {
					continue
				}
				t.record(t1.Sub(t0), status, err)
			}
		})
	}
	wg.Wait()
}

// runPhase runs one phase: the quiet tenants open-loop, and the noisy one
// as the phase says, for the warm-up and the measured window.
func runPhase(ctx context.Context, o options, base string, quiet []string, noisy, phase string) (phaseResult, error) {
	res := phaseResult{phase: phase, others: &tally{}, noisy: &tally{}}
	start := time.Now()
	d := &driver{
		base:  base,
		users: o.users,
		client: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
			Proxy: nil, MaxIdleConns: 1024, MaxIdleConnsPerHost: 1024, DisableCompression: true, IdleConnTimeout: time.Minute,
		}},
		from: start.Add(o.warmup),
		to:   start.Add(o.warmup + o.duration),
	}
	defer d.client.CloseIdleConnections()
	var wg sync.WaitGroup
	for i, h := range quiet {
		wg.Go(func() { d.openLoop(ctx, h, o.rate, res.others, uint64(i)) })
	}
	switch phase {
	case "quiet":
		res.offeredNoisy = "nothing"
	case "noisy":
		r := o.factor * o.rate
		res.offeredNoisy = fmt.Sprintf("%g req/s open-loop", r)
		wg.Go(func() { d.openLoop(ctx, noisy, r, res.noisy, uint64(len(quiet))) })
	case "flood":
		res.offeredNoisy = fmt.Sprintf("closed-loop on %d connections", o.floodConns)
		wg.Go(func() { d.closedLoop(ctx, noisy, o.floodConns, res.noisy) })
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return res, err
	}
	slices.Sort(res.others.lat)
	slices.Sort(res.noisy.lat)
	return res, nil
}
