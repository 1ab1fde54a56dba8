package main

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	for _, c := range []struct {
		p    float64
		want time.Duration
	}{{50, 50 * time.Millisecond}, {90, 90 * time.Millisecond}, {99, 99 * time.Millisecond}, {100, 100 * time.Millisecond}, {0.1, time.Millisecond}} {
		if got := percentile(d, c.p); got != c.want {
			t.Errorf("percentile(1..100 ms, %v) = %v, want %v", c.p, got, c.want)
		}
	}
	if got := percentile(nil, 99); got != 0 {
		t.Errorf("percentile(empty) = %v, want 0", got)
	}
	one := []time.Duration{7}
	if got := percentile(one, 50); got != 7 {
		t.Errorf("percentile of one sample = %v, want 7", got)
	}
	if got := percentile([]time.Duration{1, 2, 3}, 50); got != 2 {
		t.Errorf("median of 1,2,3 = %v, want 2", got)
	}
}

func TestRequireLoopback(t *testing.T) {
	lookup := func(addrs ...string) func(context.Context, string) ([]net.IPAddr, error) {
		return func(context.Context, string) ([]net.IPAddr, error) {
			var out []net.IPAddr
			for _, a := range addrs {
				out = append(out, net.IPAddr{IP: net.ParseIP(a)})
			}
			return out, nil
		}
	}
	failing := func(context.Context, string) ([]net.IPAddr, error) { return nil, errors.New("no such host") }
	for _, c := range []struct {
		host   string
		lookup func(context.Context, string) ([]net.IPAddr, error)
		ok     bool
	}{
		{"127.0.0.1", failing, true},
		{"127.8.9.10", failing, true},
		{"::1", failing, true},
		{"10.0.0.1", failing, false},
		{"192.168.1.5", failing, false},
		{"::ffff:10.0.0.1", failing, false},
		{"localhost", lookup("127.0.0.1", "::1"), true},
		{"mixed.example", lookup("127.0.0.1", "93.184.216.34"), false},
		{"remote.example", lookup("93.184.216.34"), false},
		{"empty.example", lookup(), false},
		{"unknown.example", failing, false},
		{"", failing, false},
	} {
		err := requireLoopback(c.host, c.lookup)
		if (err == nil) != c.ok {
			t.Errorf("requireLoopback(%q) = %v, want ok=%v", c.host, err, c.ok)
		}
	}
}

func TestCheckRefusesNonLoopbackURL(t *testing.T) {
	o := options{url: "http://10.1.2.3:8080", conns: 1, duration: time.Second, mix: "read", ids: 1}
	if err := o.check(); err == nil {
		t.Fatal("check accepted a non-loopback URL")
	}
	o = options{url: "http://127.0.0.1:8080/", conns: 1, duration: time.Second, mix: "read", ids: 1}
	if err := o.check(); err != nil {
		t.Fatal(err)
	}
	if o.url != "http://127.0.0.1:8080" || !slices.Equal(o.hosts, []string{"127.0.0.1:8080"}) {
		t.Errorf("url %q hosts %q: want the trailing slash dropped and the URL's host as the only Host", o.url, o.hosts)
	}
}

func TestRotatorRoundRobin(t *testing.T) {
	r := &rotator{hosts: []string{"a", "b", "c"}}
	var got []string
	for range 7 {
		got = append(got, r.next())
	}
	if want := []string{"a", "b", "c", "a", "b", "c", "a"}; !slices.Equal(got, want) {
		t.Errorf("rotation %q, want %q", got, want)
	}
}

func TestParseHosts(t *testing.T) {
	got, err := parseHosts(" t0.bench:8082, t1.bench:8082 ,,")
	if err != nil || !slices.Equal(got, []string{"t0.bench:8082", "t1.bench:8082"}) {
		t.Errorf("comma list: %q, %v", got, err)
	}
	file := filepath.Join(t.TempDir(), "hosts")
	if err := os.WriteFile(file, []byte("# tenants\nt0.bench:8082\n\nt1.bench:8082\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err = parseHosts(file)
	if err != nil || !slices.Equal(got, []string{"t0.bench:8082", "t1.bench:8082"}) {
		t.Errorf("file: %q, %v", got, err)
	}
	if got, err := parseHosts(""); got != nil || err != nil {
		t.Errorf("empty: %q, %v", got, err)
	}
	if _, err := parseHosts(" , "); err == nil {
		t.Error("a list of no hosts was accepted")
	}
}

// TestRunLetsRequestsInFlightFinish: at the end of a run the requests in
// flight are waited for, not cancelled, so the server under test never sees
// its clients go away mid-request; they are not counted.
func TestRunLetsRequestsInFlightFinish(t *testing.T) {
	var started, cancelled atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started.Add(1)
		select {
		case <-time.After(150 * time.Millisecond): // a slow request
		case <-r.Context().Done():
			cancelled.Add(1)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()

	o := options{url: srv.URL, conns: 4, duration: 400 * time.Millisecond, mix: "read", ids: 1, limit: 50}
	if err := o.check(); err != nil {
		t.Fatal(err)
	}
	res, err := run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	srv.Close() // waits for the handlers, so every cancellation is counted
	if n := cancelled.Load(); n != 0 {
		t.Errorf("%d requests were cancelled at the end of the run, want 0", n)
	}
	if got, max := res.Requests, int(started.Load()); got >= max {
		t.Errorf("counted %d requests of %d started, want the ones in flight at the end left out", got, max)
	}
	if res.Errors != 0 {
		t.Errorf("errors %d (%v), want 0", res.Errors, res.ErrorSample)
	}
}
