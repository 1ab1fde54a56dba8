// Command load is a closed-loop HTTP load generator for the users API: -conns
// goroutines, each with its own keep-alive connection, send one request after
// another for -warmup then -duration; only requests that finish inside the
// measured window count. At the end no new request is sent, and those in
// flight are let finish (uncounted, for up to drainTimeout) rather than
// cancelled: a server that cancels a request's database query when its
// client goes away may lose that database connection (pgx closes it), and
// the next run would then start against a half-empty pool. It reports requests/s, latency percentiles (every
// latency is kept and sorted at the end), status-code counts and errors; any
// non-2xx answer is an error.
//
// Only loopback targets are accepted: the URL's host must be or resolve to
// loopback addresses only. The Host header of each request is taken in turn
// from -hosts (a file with one host a line, or a comma-separated list), so one
// process can spread its load over many tenants.
//
//	go run ./bench/load -url http://127.0.0.1:8082 -hosts hosts.txt -mix read -ids 100
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

type options struct {
	url      string
	hosts    []string
	conns    int
	duration time.Duration
	warmup   time.Duration
	mix      string
	ids      int
	limit    int
}

// Result is what one run measured; -json prints it as is.
type Result struct {
	URL         string         `json:"url"`
	Mix         string         `json:"mix"`
	Hosts       int            `json:"hosts"`
	Conns       int            `json:"conns"`
	DurationS   float64        `json:"duration_s"`
	WarmupS     float64        `json:"warmup_s"`
	Requests    int            `json:"requests"`
	RPS         float64        `json:"rps"`
	P50Ms       float64        `json:"p50_ms"`
	P90Ms       float64        `json:"p90_ms"`
	P99Ms       float64        `json:"p99_ms"`
	MaxMs       float64        `json:"max_ms"`
	Status      map[string]int `json:"status"`
	Errors      int            `json:"errors"`
	ErrorSample []string       `json:"error_sample,omitempty"`
}

func main() {
	var o options
	var hosts string
	var asJSON bool
	flag.StringVar(&o.url, "url", "http://127.0.0.1:8082", "base URL (loopback only)")
	flag.StringVar(&hosts, "hosts", "", "Host headers to rotate over: a file (one a line) or a comma-separated list; empty: the URL's host")
	flag.IntVar(&o.conns, "conns", 32, "keep-alive connections, one goroutine each")
	flag.DurationVar(&o.duration, "duration", 20*time.Second, "measured time")
	flag.DurationVar(&o.warmup, "warmup", 5*time.Second, "unmeasured time before it")
	flag.StringVar(&o.mix, "mix", "read", "read: 90% GET /api/users?limit=50, 10% GET /api/users/{id}; post: POST /api/users only")
	flag.IntVar(&o.ids, "ids", 100, "largest user id for GET /api/users/{id} (ids are drawn from 1..ids)")
	flag.IntVar(&o.limit, "limit", 50, "limit of the list requests")
	flag.BoolVar(&asJSON, "json", false, "print the result as JSON")
	flag.Parse()

	err := func() error {
		var err error
		if o.hosts, err = parseHosts(hosts); err != nil {
			return err
		}
		if err := o.check(); err != nil {
			return err
		}
		res, err := run(context.Background(), o)
		if err != nil {
			return err
		}
		if asJSON {
			return json.NewEncoder(os.Stdout).Encode(res)
		}
		printText(os.Stdout, res)
		return nil
	}()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench/load:", err)
		os.Exit(1)
	}
}

func (o *options) check() error {
	u, err := url.Parse(o.url)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("-url %q: want http(s)://host[:port]", o.url)
	}
	o.url = strings.TrimRight(o.url, "/")
	if err := requireLoopback(u.Hostname(), net.DefaultResolver.LookupIPAddr); err != nil {
		return err
	}
	if len(o.hosts) == 0 {
		o.hosts = []string{u.Host}
	}
	switch {
	case o.mix != "read" && o.mix != "post":
		return fmt.Errorf("-mix %q: want read or post", o.mix)
	case o.conns < 1:
		return errors.New("-conns must be 1 or more")
	case o.duration <= 0 || o.warmup < 0:
		return errors.New("-duration must be positive and -warmup not negative")
	case o.mix == "read" && o.ids < 1:
		return errors.New("-ids must be 1 or more")
	}
	return nil
}

// requireLoopback fails unless host is a loopback IP or a name whose every
// address is loopback.
func requireLoopback(host string, lookup func(context.Context, string) ([]net.IPAddr, error)) error {
	if host == "" {
		return errors.New("no host in -url")
	}
	var ips []net.IP
	if ip := net.ParseIP(host); ip != nil {
		ips = []net.IP{ip}
	} else {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		addrs, err := lookup(ctx, host)
		if err != nil {
			return fmt.Errorf("resolve %s: %w", host, err)
		}
		for _, a := range addrs {
			ips = append(ips, a.IP)
		}
	}
	if len(ips) == 0 {
		return fmt.Errorf("%s resolves to no address", host)
	}
	for _, ip := range ips {
		if !ip.IsLoopback() {
			return fmt.Errorf("refusing %s: %s is not a loopback address (only loopback targets are allowed)", host, ip)
		}
	}
	return nil
}

// parseHosts reads -hosts: an existing file (one host a line, blank lines
// and # comments skipped) or a comma-separated list.
func parseHosts(s string) ([]string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	text, sep := s, ","
	if fi, err := os.Stat(s); err == nil && !fi.IsDir() {
		b, err := os.ReadFile(s)
		if err != nil {
			return nil, err
		}
		text, sep = string(b), "\n"
	}
	var hosts []string
	for h := range strings.SplitSeq(text, sep) {
		h = strings.TrimSpace(h)
		if h != "" && !strings.HasPrefix(h, "#") {
			hosts = append(hosts, h)
		}
	}
	if len(hosts) == 0 {
		return nil, fmt.Errorf("-hosts %q names no host", s)
	}
	return hosts, nil
}

// rotator hands out hosts round-robin across every worker.
type rotator struct {
	hosts []string
	n     atomic.Uint64
}

func (r *rotator) next() string {
	return r.hosts[(r.n.Add(1)-1)%uint64(len(r.hosts))]
}

// percentile is the nearest-rank percentile p (0 < p <= 100) of sorted.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	rank = min(max(rank, 1), len(sorted))
	return sorted[rank-1]
}

type worker struct {
	lat    []time.Duration
	status map[int]int
	errs   int
	sample []string
}

func (w *worker) fail(msg string) {
	w.errs++
	if len(w.sample) < 3 {
		w.sample = append(w.sample, msg)
	}
}

func run(ctx context.Context, o options) (Result, error) {
	rot := &rotator{hosts: o.hosts}
	idb := make([]byte, 4)
	_, _ = rand.Read(idb)
	runID := hex.EncodeToString(idb)

	start := time.Now()
	from, to := start.Add(o.warmup), start.Add(o.warmup+o.duration)
	ctx, cancel := context.WithDeadline(ctx, to.Add(drainTimeout))
	defer cancel()

	workers := make([]*worker, o.conns)
	var wg sync.WaitGroup
	for i := range workers {
		w := &worker{lat: make([]time.Duration, 0, 1<<14), status: map[int]int{}}
		workers[i] = w
		wg.Go(func() { w.loop(ctx, o, rot, runID, i, from, to) })
	}
	wg.Wait()

	res := Result{URL: o.url, Mix: o.mix, Hosts: len(o.hosts), Conns: o.conns,
		DurationS: o.duration.Seconds(), WarmupS: o.warmup.Seconds(), Status: map[string]int{}}
	var all []time.Duration
	for _, w := range workers {
		all = append(all, w.lat...)
		for code, n := range w.status {
			res.Status[strconv.Itoa(code)] += n
		}
		res.Errors += w.errs
		for _, s := range w.sample {
			if len(res.ErrorSample) < 5 {
				res.ErrorSample = append(res.ErrorSample, s)
			}
		}
	}
	slices.Sort(all)
	res.Requests = len(all)
	res.RPS = float64(len(all)) / o.duration.Seconds()
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	res.P50Ms, res.P90Ms, res.P99Ms = ms(percentile(all, 50)), ms(percentile(all, 90)), ms(percentile(all, 99))
	if len(all) > 0 {
		res.MaxMs = ms(all[len(all)-1])
	}
	return res, nil
}

// drainTimeout bounds how long requests still in flight at the end of the
// run may take before they are cancelled.
const drainTimeout = 30 * time.Second

// loop sends requests on one connection until to (or until ctx ends).
// Requests that finish inside [from, to) are counted (latency, status,
// errors); the one in flight at to is waited for but not counted.
func (w *worker) loop(ctx context.Context, o options, rot *rotator, runID string, id int, from, to time.Time) {
	tr := &http.Transport{
		Proxy:               nil,
		MaxConnsPerHost:     1,
		MaxIdleConnsPerHost: 1,
		DisableCompression:  true,
		IdleConnTimeout:     time.Minute,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	rng := mrand.New(mrand.NewPCG(uint64(time.Now().UnixNano()), uint64(id)))
	list := o.url + "/api/users?limit=" + strconv.Itoa(o.limit)
	for seq := 0; ctx.Err() == nil && time.Now().Before(to); seq++ {
		var req *http.Request
		var err error
		switch {
		case o.mix == "post":
			body := fmt.Sprintf(`{"name":"Load %d %d","email":"load-%s-%d-%d@example.com"}`, id, seq, runID, id, seq)
			req, err = http.NewRequestWithContext(ctx, http.MethodPost, o.url+"/api/users", bytes.NewReader([]byte(body)))
			if err == nil {
				req.Header.Set("Content-Type", "application/json")
			}
		case rng.IntN(10) == 0:
			req, err = http.NewRequestWithContext(ctx, http.MethodGet, o.url+"/api/users/"+strconv.Itoa(1+rng.IntN(o.ids)), nil)
		default:
			req, err = http.NewRequestWithContext(ctx, http.MethodGet, list, nil)
		}
		if err != nil {
			w.fail(err.Error())
			return
		}
		req.Host = rot.next()
		t0 := time.Now()
		resp, err := client.Do(req)
		var status int
		if err == nil {
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			status = resp.StatusCode
		}
		t1 := time.Now()
		if t1.Before(from) || !t1.Before(to) {
			continue // warm-up, or finished after the end of the run
		}
		if err != nil {
			if ctx.Err() != nil {
				continue // interrupted
			}
			w.fail(err.Error())
			continue
		}
		w.lat = append(w.lat, t1.Sub(t0))
		w.status[status]++
		if status < 200 || status > 299 {
			w.fail(fmt.Sprintf("%s %s (Host %s): %d", req.Method, req.URL.Path, req.Host, status))
		}
	}
}

func printText(out io.Writer, r Result) {
	fmt.Fprintf(out, "%s mix=%s conns=%d hosts=%d duration=%gs warmup=%gs\n", r.URL, r.Mix, r.Conns, r.Hosts, r.DurationS, r.WarmupS)
	fmt.Fprintf(out, "requests %d, %.1f req/s\n", r.Requests, r.RPS)
	fmt.Fprintf(out, "latency p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, max %.2f ms\n", r.P50Ms, r.P90Ms, r.P99Ms, r.MaxMs)
	codes := make([]string, 0, len(r.Status))
	for c := range r.Status {
		codes = append(codes, c)
	}
	slices.Sort(codes)
	for _, c := range codes {
		fmt.Fprintf(out, "status %s: %d\n", c, r.Status[c])
	}
	fmt.Fprintf(out, "errors %d\n", r.Errors)
	for _, s := range r.ErrorSample {
		fmt.Fprintf(out, "  e.g. %s\n", s)
	}
}
