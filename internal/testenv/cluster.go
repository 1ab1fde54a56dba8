package testenv

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"tenantry/config"
)

// Cluster is a PostgreSQL server of the test's own, on a free loopback
// port, for fault tests that stop, restart, pause or kill the database:
// things never to be done to the shared server the other tests use.
//
// StartCluster makes and starts it; t.Cleanup always stops it (resuming
// it first if it was paused) and shows its log when the test failed. It
// runs with fsync off: a test's data need not survive a crash of the
// machine, and the cluster starts and stops far faster.
//
// Its methods return errors rather than failing the test, so that they
// may be called from any goroutine (a fault injected while a load runs).
type Cluster struct {
	bin  string // directory of initdb, pg_ctl, postgres
	dir  string // holds data/, sock/ and server.log, owned by the server's user
	port int
	// runAs is the OS user the server runs as: "postgres" when the tests
	// run as root (PostgreSQL refuses to run as root), else nobody else.
	runAs string

	mu     sync.Mutex
	paused []int // PIDs stopped by Pause, resumed by Resume
}

// StartCluster initialises a cluster in t's temporary directory, starts it
// and waits until it accepts connections. It skips t when PostgreSQL's
// server binaries are missing (failing it under CI=true).
func StartCluster(t testing.TB) *Cluster {
	t.Helper()
	bin := serverBinDir()
	RequireTool(t, "PostgreSQL server binaries (initdb, pg_ctl)", bin != "")
	c := &Cluster{bin: bin, dir: t.TempDir()}
	if os.Geteuid() == 0 {
		c.runAs = "postgres"
		if err := c.handOver(); err != nil {
			t.Fatalf("testenv: cluster: %v", err)
		}
	}
	t.Cleanup(func() {
		if err := c.Stop(); err != nil {
			t.Errorf("testenv: cluster: %v", err)
		}
		if t.Failed() {
			t.Logf("testenv: cluster log (%s):\n%s", c.logFile(), c.Log())
		}
	})
	if err := c.initdb(); err != nil {
		t.Fatalf("testenv: cluster: %v", err)
	}
	if err := os.MkdirAll(c.sockDir(), 0o700); err != nil {
		t.Fatalf("testenv: cluster: %v", err)
	}
	if err := c.chown(c.sockDir()); err != nil {
		t.Fatalf("testenv: cluster: %v", err)
	}
	// A port that was free a moment ago may be taken by the time the
	// server binds it: try a few.
	var err error
	for range 3 {
		c.port, _ = strconv.Atoi(Port(FreeAddr(t)))
		if err = c.Start(); err == nil {
			return c
		}
	}
	t.Fatalf("testenv: cluster: %v", err)
	return nil
}

// initdb makes the cluster's data directory. initdb takes seconds on a
// busy machine, so in a package whose TestMain calls Main the first
// cluster's fresh data directory is kept as a template and later ones
// copy it.
func (c *Cluster) initdb() error {
	fresh := func(dir string) error {
		if out, err := c.run(filepath.Join(c.bin, "initdb"), "-D", dir, "-U", "postgres", "-A", "trust",
			"-E", "UTF8", "--locale=C", "--no-sync"); err != nil {
			return fmt.Errorf("initdb: %v\n%s", err, out)
		}
		return nil
	}
	if binDir == "" {
		return fresh(c.dataDir())
	}
	templateOnce.Do(func() {
		dir := filepath.Join(binDir, "pgtemplate")
		if templateErr = os.Mkdir(dir, 0o700); templateErr != nil {
			return
		}
		// binDir is 0700: the server's user must get through it.
		if templateErr = os.Chmod(binDir, 0o711); templateErr != nil {
			return
		}
		if templateErr = c.chown(dir); templateErr != nil {
			return
		}
		data := filepath.Join(dir, "data")
		if templateErr = fresh(data); templateErr == nil {
			templateDir = data
		}
	})
	if templateErr != nil {
		return templateErr
	}
	// cp -a keeps the owner and the 0700 mode the server insists on.
	if out, err := exec.Command("cp", "-a", templateDir, c.dataDir()).CombinedOutput(); err != nil {
		return fmt.Errorf("copy the template cluster: %v\n%s", err, out)
	}
	return nil
}

var (
	templateOnce sync.Once
	templateDir  string
	templateErr  error
)

// serverBinDir finds the directory of PostgreSQL's server programs: the
// one initdb on PATH lives in (links resolved, so pg_ctl finds postgres
// beside it), or the newest /usr/lib/postgresql/N/bin.
func serverBinDir() string {
	if p, err := exec.LookPath("initdb"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			if _, err := os.Stat(filepath.Join(filepath.Dir(real), "pg_ctl")); err == nil {
				return filepath.Dir(real)
			}
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d
		}
	}
	return ""
}

func version(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

func (c *Cluster) dataDir() string { return filepath.Join(c.dir, "data") }
func (c *Cluster) sockDir() string { return filepath.Join(c.dir, "sock") }
func (c *Cluster) logFile() string { return filepath.Join(c.dir, "server.log") }

// handOver gives the cluster's directory to the server's user and lets it
// through the test's temporary directories above (made 0700 by root).
func (c *Cluster) handOver() error {
	if err := c.chown(c.dir); err != nil {
		return err
	}
	for d := filepath.Dir(c.dir); d != os.TempDir() && d != "/" && d != "."; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return err
		}
		if err := os.Chmod(d, fi.Mode().Perm()|0o011); err != nil {
			return err
		}
	}
	return nil
}

func (c *Cluster) chown(path string) error {
	if c.runAs == "" {
		return nil
	}
	u, err := user.Lookup(c.runAs)
	if err != nil {
		return fmt.Errorf("user %s: %w", c.runAs, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return os.Chown(path, uid, gid)
}

// run runs a server program as the server's user.
func (c *Cluster) run(prog string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var cmd *exec.Cmd
	if c.runAs != "" {
		cmd = exec.CommandContext(ctx, "runuser", append([]string{"-u", c.runAs, "--", prog}, args...)...)
	} else {
		cmd = exec.CommandContext(ctx, prog, args...)
	}
	return cmd.CombinedOutput()
}

// Port returns the port the cluster listens on (127.0.0.1 only).
func (c *Cluster) Port() int { return c.port }

// DSN returns the URL of the cluster's "postgres" database as its
// superuser, which needs no password.
func (c *Cluster) DSN() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", c.port)
}

// Database returns the default database configuration over DSN, for
// testenv.WithDatabase or database.Open.
func (c *Cluster) Database() config.Database {
	d := config.Default().Database
	d.Driver, d.DSN = "postgres", c.DSN()
	return d
}

// Start starts the stopped cluster on its port and waits until it
// accepts connections.
func (c *Cluster) Start() error {
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off "+
		"-c full_page_writes=off -c shared_buffers=16MB -c max_connections=100", c.port, c.sockDir())
	out, err := c.run(filepath.Join(c.bin, "pg_ctl"), "-D", c.dataDir(), "-l", c.logFile(), "-o", opts, "-w", "-t", "60", "start")
	if err != nil {
		return fmt.Errorf("pg_ctl start on port %d: %v\n%s\n%s", c.port, err, out, c.Log())
	}
	return c.WaitReady(30 * time.Second)
}

// WaitReady waits until the cluster accepts a query, for at most within.
func (c *Cluster) WaitReady(within time.Duration) error {
	db, err := sql.Open("pgx", c.DSN())
	if err != nil {
		return err
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	var last error
	if !Poll(ctx, func() bool {
		pctx, pcancel := context.WithTimeout(ctx, time.Second)
		defer pcancel()
		last = db.PingContext(pctx)
		return last == nil
	}) {
		return fmt.Errorf("cluster on port %d not ready within %v: %v", c.port, within, last)
	}
	return nil
}

// Stop stops the cluster (fast shutdown: sessions are terminated, as
// on a real restart) and waits until it is down. A paused cluster is
// resumed first; stopping a stopped cluster does nothing.
func (c *Cluster) Stop() error {
	if err := c.Resume(); err != nil {
		return err
	}
	if !c.Running() {
		return nil
	}
	out, err := c.run(filepath.Join(c.bin, "pg_ctl"), "-D", c.dataDir(), "-m", "fast", "-w", "-t", "60", "stop")
	if err != nil {
		return fmt.Errorf("pg_ctl stop: %v\n%s", err, out)
	}
	return nil
}

// Restart stops the cluster and starts it again on the same port.
func (c *Cluster) Restart() error {
	if err := c.Stop(); err != nil {
		return err
	}
	return c.Start()
}

// Running reports whether the cluster's postmaster is up.
func (c *Cluster) Running() bool {
	pid, err := c.postmaster()
	return err == nil && syscall.Kill(pid, 0) == nil
}

// Pause stalls the cluster: SIGSTOP to the postmaster and every process
// it started, so that connections stay open and nothing answers, as a
// database host that froze. Resume (or Stop, or the test's end) undoes it.
func (c *Cluster) Pause() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.paused) > 0 {
		return nil
	}
	pid, err := c.postmaster()
	if err != nil {
		return err
	}
	// The postmaster first, so that it starts no process we would miss.
	pids := append([]int{pid}, children(pid)...)
	for _, p := range pids {
		if err := syscall.Kill(p, syscall.SIGSTOP); err != nil && !errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("pause %d: %w", p, err)
		}
	}
	c.paused = pids
	return nil
}

// Resume undoes Pause.
func (c *Cluster) Resume() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	for _, p := range c.paused {
		if err := syscall.Kill(p, syscall.SIGCONT); err != nil && !errors.Is(err, syscall.ESRCH) {
			errs = append(errs, fmt.Errorf("resume %d: %w", p, err))
		}
	}
	c.paused = nil
	return errors.Join(errs...)
}

// Log returns the server's log so far.
func (c *Cluster) Log() string {
	b, err := os.ReadFile(c.logFile())
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	return string(b)
}

// postmaster returns the postmaster's PID from postmaster.pid.
func (c *Cluster) postmaster() (int, error) {
	b, err := os.ReadFile(filepath.Join(c.dataDir(), "postmaster.pid"))
	if err != nil {
		return 0, err
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	return strconv.Atoi(strings.TrimSpace(string(line)))
}

// children returns the PIDs of the processes whose parent is pid, read
// from /proc.
func children(pid int) []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces and parentheses,
		// so the fields are read after its last ')'.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) > 1 {
			if ppid, _ := strconv.Atoi(f[1]); ppid == pid {
				out = append(out, p)
			}
		}
	}
	return out
}
