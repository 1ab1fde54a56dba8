package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// proc is a server process compare started.
type proc struct {
	name    string
	cmd     *exec.Cmd
	started time.Time // just before the exec
	done    chan struct{}
	err     error
}

// requireFree fails when something already listens on one of addrs:
// waitReady and the load would then measure that process instead of the
// one compare starts (another sitting's, say).
func requireFree(addrs ...string) error {
	for _, a := range addrs {
		ln, err := net.Listen("tcp", a)
		if err != nil {
			return fmt.Errorf("%s is taken (another sitting running?): %w", a, err)
		}
		_ = ln.Close()
	}
	return nil
}

// start runs bin with its output in work/name.log.
func start(work, name, bin string, args ...string) (*proc, error) {
	logFile, err := os.Create(filepath.Join(work, name+".log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	started := time.Now()
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, started: started, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		logFile.Close()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// cpu is the process's user+system CPU time so far, from /proc.
func (p *proc) cpu() time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.pid()))
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:]) // f[0] is field 3 (state); utime is field 14, stime 15
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / 100 // USER_HZ is 100 on Linux
}

// readyPoll is how often waitReady asks; it bounds the start-up time's
// resolution.
const readyPoll = 10 * time.Millisecond

// waitReady asks GET u (with hostHeader, if any) every readyPoll until p
// answers 200, and returns the time from p's exec to that answer.
func waitReady(ctx context.Context, u, hostHeader string, p *proc) (time.Duration, error) {
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	deadline := p.started.Add(5 * time.Minute)
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return 0, err
		}
		if hostHeader != "" {
			req.Host = hostHeader
		}
		resp, err := client.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return time.Since(p.started), nil
			}
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		select {
		case <-p.done:
			return 0, fmt.Errorf("%s exited before it was ready: %v (log in the work directory)", p.name, p.err)
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(readyPoll):
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("%s not ready 5 minutes after its start (last: %v)", p.name, err)
		}
	}
}
