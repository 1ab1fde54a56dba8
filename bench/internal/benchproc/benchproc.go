// Package benchproc starts and stops the server processes the benchmark
// programs measure (tenantry, the plain app), and waits until they answer.
package benchproc

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// Proc is a started server process.
type Proc struct {
	Name    string
	Cmd     *exec.Cmd
	Started time.Time // just before the exec
	done    chan struct{}
	err     error
}

// Start runs bin with its output in work/name.log.
func Start(work, name, bin string, args ...string) (*Proc, error) {
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
	p := &Proc{Name: name, Cmd: cmd, Started: started, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		logFile.Close()
		close(p.done)
	}()
	return p, nil
}

// Stop sends SIGTERM and waits, killing the process after 30 s.
func (p *Proc) Stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		_ = p.Cmd.Process.Kill()
		<-p.done
	}
}

// PID is the process's id.
func (p *Proc) PID() int { return p.Cmd.Process.Pid }

// ReadyPoll is how often WaitReady asks; it bounds the start-up time's
// resolution.
const ReadyPoll = 10 * time.Millisecond

// WaitReady asks GET u (with hostHeader, if any) every ReadyPoll until p
// answers 200, and returns the time from p's exec to that answer.
func (p *Proc) WaitReady(ctx context.Context, u, hostHeader string) (time.Duration, error) {
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	deadline := p.Started.Add(5 * time.Minute)
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
				return time.Since(p.Started), nil
			}
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		select {
		case <-p.done:
			return 0, fmt.Errorf("%s exited before it was ready: %v (log in the work directory)", p.Name, p.err)
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(ReadyPoll):
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("%s not ready 5 minutes after its start (last: %v)", p.Name, err)
		}
	}
}
