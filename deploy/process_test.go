package deploy_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"tenantry/internal/testenv"
)

// instance is one running `tenantry serve` process.
type instance struct {
	name, addr, admin string
	log               *testenv.Buffer
}

// startInstance runs `tenantry serve` with config, its own tenant and
// admin addresses from flags as deploy/README.md does, and env added to
// the environment; it returns once the instance serves host, the seeded
// tenant's nginx address, and stops it with SIGINT when t ends, which
// must exit 0.
func startInstance(t *testing.T, bin, config, name, host string, env []string) *instance {
	t.Helper()
	in := &instance{name: name, addr: testenv.FreeAddr(t), admin: testenv.FreeAddr(t), log: &testenv.Buffer{}}
	cmd := exec.Command(bin, "serve", "--config", config, "--listen", in.addr, "--admin-listen", in.admin)
	cmd.Dir = t.TempDir() // no config.yaml of the checkout's is read
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = in.log, in.log
	// Above server.shutdown_timeout (20s), which bounds its shutdown.
	p := start(t, "instance "+name, cmd, in.log, os.Interrupt, 25*time.Second)
	p.waitServing(t, func() bool {
		code, _ := testenv.TenantStatus(in.addr, host, 2*time.Second)
		return code == http.StatusOK
	})
	return in
}

// process is a child process that start started.
type process struct {
	what string
	log  *testenv.Buffer
	done chan struct{} // closed once it has exited; err is then its exit
	err  error
}

// start starts cmd, whose output goes to log, and stops it with signal
// when t ends: it must then exit 0 within stopWithin, or t fails (and it
// is killed). What it wrote is shown when t has failed.
func start(t *testing.T, what string, cmd *exec.Cmd, log *testenv.Buffer, signal os.Signal, stopWithin time.Duration) *process {
	t.Helper()
	p := &process{what: what, log: log, done: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", what, err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(signal)
		select {
		case <-p.done:
			if p.err != nil {
				t.Errorf("%s exited with %v after %v", what, p.err, signal)
			}
		case <-time.After(stopWithin):
			_ = cmd.Process.Kill()
			<-p.done
			t.Errorf("%s did not stop within %v of %v", what, stopWithin, signal)
		}
		if t.Failed() {
			t.Logf("%s wrote:\n%s", what, log.String())
		}
	})
	return p
}

// waitServing polls ready until it holds, failing t with what the process
// wrote if it exits first or ready does not hold within 30s (a first
// start migrates the database).
func (p *process) waitServing(t *testing.T, ready func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	exited := false
	ok := testenv.Poll(ctx, func() bool {
		select {
		case <-p.done:
			exited = true
			cancel()
			return false
		default:
			return ready()
		}
	})
	switch {
	case exited:
		t.Fatalf("%s exited before serving (%v); it wrote:\n%s", p.what, p.err, p.log.String())
	case !ok:
		t.Fatalf("%s not serving within 30s; it wrote:\n%s", p.what, p.log.String())
	}
}

// nginx is a running nginx master process in front of the instances.
type nginx struct {
	addr      string // host:port it listens on
	accessLog string // its access log, in the tenantry log_format
	log       *testenv.Buffer
}

// exampleFile reads a file of deploy/nginx.
func exampleFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testenv.ModuleRoot(t), "deploy", "nginx", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// substitute replaces every old in s by its new, failing t when one is
// missing: a test that silently ran the example's own addresses would
// prove nothing about it.
func substitute(t *testing.T, what, s string, oldNew ...string) string {
	t.Helper()
	for i := 0; i < len(oldNew); i += 2 {
		if !strings.Contains(s, oldNew[i]) {
			t.Fatalf("%s no longer holds %q, which the test substitutes; update deploy_test.go with it", what, oldNew[i])
		}
		s = strings.ReplaceAll(s, oldNew[i], oldNew[i+1])
	}
	return s
}

// startNginx runs Debian's nginx in the foreground with
// deploy/nginx/tenantry.conf, its listen address (addr), upstreams and
// log path replaced, inside a minimal main configuration that stands in for
// Debian's /etc/nginx/nginx.conf. It returns once nginx answers
// /healthz through an instance, and stops it when t ends.
func startNginx(t *testing.T, bin, addr string, upstreams [2]string) *nginx {
	t.Helper()
	// Not t.TempDir(): its parent is private to root, and nginx's workers
	// run as nobody when the test runs as root (user below), so they could
	// not reach their temporary files.
	dir, err := os.MkdirTemp("", "tenantry-nginx-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) }) // runs after the stop below
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	n := &nginx{addr: addr, accessLog: filepath.Join(dir, "access.log"), log: &testenv.Buffer{}}
	site := substitute(t, "deploy/nginx/tenantry.conf", exampleFile(t, "tenantry.conf"),
		"listen 127.0.0.1:8080;", "listen "+n.addr+";",
		"server 127.0.0.1:5001 ", "server "+upstreams[0]+" ",
		"server 127.0.0.1:5002 ", "server "+upstreams[1]+" ",
		"/var/log/nginx/tenantry.access.log", n.accessLog)
	write(t, filepath.Join(dir, "tenantry.conf"), site)
	// What Debian's nginx.conf gives the included file: an http block.
	// The temporary paths are Debian's compiled-in /var/lib/nginx/*
	// otherwise, which a test must not share with a system nginx.
	var main strings.Builder
	if os.Geteuid() == 0 {
		fmt.Fprintf(&main, "user %s;\n", workerUser(t))
	}
	// Two workers, as Debian's worker_processes auto gives on two CPUs:
	// requests reach both instances by the upstream's shared turns, not
	// by the luck of which worker took the connection.
	fmt.Fprintf(&main, "worker_processes 2;\nevents { worker_connections 128; }\nhttp {\n")
	for _, p := range []string{"client_body", "proxy", "fastcgi", "uwsgi", "scgi"} {
		fmt.Fprintf(&main, "    %s_temp_path %s;\n", p, filepath.Join(dir, p))
	}
	fmt.Fprintf(&main, "    include %s;\n}\n", filepath.Join(dir, "tenantry.conf"))
	conf := filepath.Join(dir, "nginx.conf")
	write(t, conf, main.String())

	args := []string{"-p", dir, "-c", conf, "-g", "daemon off; pid " + filepath.Join(dir, "nginx.pid") + "; error_log stderr;"}
	if out, err := exec.Command(bin, append([]string{"-t", "-q"}, args...)...).CombinedOutput(); err != nil {
		t.Fatalf("nginx -t: %v\n%s\nconfiguration:\n%s\n%s", err, out, main.String(), site)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = n.log, n.log
	// SIGTERM is nginx's fast shutdown: the master stops its workers and
	// exits 0.
	p := start(t, "nginx", cmd, n.log, syscall.SIGTERM, 10*time.Second)
	p.waitServing(t, func() bool {
		resp, err := http.Get("http://" + n.addr + "/healthz")
		if err != nil {
			return false
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return n
}

// workerUser is the user and group nginx's workers run as when the test
// runs as root: nobody and its own group, as Debian's nginx.conf runs them
// as www-data rather than root.
func workerUser(t *testing.T) string {
	t.Helper()
	u, err := user.Lookup("nobody")
	if err != nil {
		t.Fatalf("nginx workers: %v", err)
	}
	g, err := user.LookupGroupId(u.Gid)
	if err != nil {
		t.Fatalf("nginx workers: group of nobody: %v", err)
	}
	return u.Username + " " + g.Name
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
