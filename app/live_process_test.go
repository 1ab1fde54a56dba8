package app_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"tenantry/internal/testenv"
)

// The live catalog promise, measured over real processes: a change made
// through one instance's admin API, or through the CLI as a process of its
// own, is served by every other running instance within a second.
const propagationLimit = time.Second

// instance is one running tenantry server process.
type instance struct {
	name, addr, admin, token string
	log                      *testenv.Buffer
	cmd                      *exec.Cmd
	// killed is set by kill: the process is gone, not to be stopped.
	killed bool
}

// kill stops the process as a crash or kill -9 would.
func (in *instance) kill(t *testing.T) {
	t.Helper()
	if err := in.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = in.cmd.Wait()
	in.killed = true
}

// cluster is several instances (and CLI runs) over one database.
type cluster struct {
	bin, config string
	dbArgs      []string
}

func (c *cluster) start(t *testing.T, name, token string) *instance {
	t.Helper()
	in := &instance{name: name, addr: testenv.FreeAddr(t), admin: testenv.FreeAddr(t), token: token, log: &testenv.Buffer{}}
	args := append([]string{"serve", "--config", c.config, "--listen", in.addr, "--admin-listen", in.admin}, c.dbArgs...)
	cmd := exec.Command(c.bin, args...)
	cmd.Dir = t.TempDir()
	cmd.Env = append(os.Environ(), "TENANTRY_ADMIN_TOKEN="+token)
	cmd.Stderr = in.log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	in.cmd = cmd
	t.Cleanup(func() {
		if in.killed {
			return
		}
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("instance %s exited with %v", name, err)
			}
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			t.Errorf("instance %s did not stop within 15s", name)
		}
		if t.Failed() {
			t.Logf("log of instance %s:\n%s", name, in.log.String())
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if !testenv.Poll(ctx, func() bool { return status(t, in.addr, "seed.test") == http.StatusOK }) {
		t.Fatalf("instance %s not serving within 20s; log:\n%s", name, in.log.String())
	}
	if token == "" {
		// No admin.token: the process made one up and logged it once.
		m := regexp.MustCompile(`admin_token=(\S+)`).FindStringSubmatch(in.log.String())
		if m == nil || !strings.Contains(in.log.String(), "level=WARN") {
			t.Fatalf("instance %s: no generated admin token logged at WARN; log:\n%s", name, in.log.String())
		}
		in.token = m[1]
	}
	return in
}

// cli runs `tenantry args...` as a process of its own on the database.
func (c *cluster) cli(t *testing.T, args ...string) {
	t.Helper()
	cmd := exec.Command(c.bin, append(append(args, "--config", c.config), c.dbArgs...)...)
	cmd.Dir = t.TempDir()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("tenantry %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// adminCall sends one admin request and fails unless it gets want.
func (in *instance) adminCall(t *testing.T, method, path, body string, want int) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, "http://"+in.admin+path, r)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+in.token)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("%s %s on %s = %d, want %d: %s", method, path, in.name, resp.StatusCode, want, b)
	}
}

// status is what a tenant listener at addr answers for Host: host.
func status(t *testing.T, addr, host string) int {
	t.Helper()
	code, _ := testenv.TenantStatus(addr, host, 2*time.Second) // 0 while the process is not up
	return code
}

// propagation makes a change and polls another instance until host
// answers want there. It returns how long after the change was
// acknowledged (the admin response arrived, the CLI exited) it was served,
// zero when it was served even before that, and how long after the change
// was started.
func propagation(t *testing.T, on *instance, host string, want int, change func()) (afterAck, afterStart time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	seen := make(chan time.Time, 1)
	go func() {
		if testenv.Poll(ctx, func() bool { return status(t, on.addr, host) == want }) {
			seen <- time.Now()
		}
	}()
	start := time.Now()
	change()
	ack := time.Now()
	select {
	case at := <-seen:
		return max(at.Sub(ack), 0), at.Sub(start)
	case <-ctx.Done():
		t.Fatalf("host %s never answered %d on %s within 5s", host, want, on.name)
		return 0, 0
	}
}

func TestLiveCatalogAcrossProcesses(t *testing.T) {
	bin := testenv.Binary(t)
	for _, driver := range testenv.Drivers {
		t.Run(driver, func(t *testing.T) {
			db := testenv.Database(t, driver)
			config := filepath.Join(t.TempDir(), "config.yaml")
			// A long periodic refresh: on PostgreSQL only the notification
			// can explain a change seen within a second.
			yaml := "tenancy:\n  refresh_interval: 30s\n" +
				"tenants:\n  - {name: seed, schema: seed, hosts: [\"seed.test\"]}\n"
			if err := os.WriteFile(config, []byte(yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			c := &cluster{bin: bin, config: config, dbArgs: []string{"--db-driver", db.Driver, "--db-dsn", db.DSN}}
			a := c.start(t, "A", "token-of-a-0123456789")
			b := c.start(t, "B", "") // made-up token, read back from its log

			type step struct {
				name, host string
				want       int
				change     func()
			}
			steps := []step{
				{"A admin: create", "api.test", 200, func() {
					a.adminCall(t, "POST", "/admin/tenants", `{"name":"api-made","hosts":["api.test"]}`, 201)
				}},
				{"A admin: suspend", "api.test", 403, func() { a.adminCall(t, "POST", "/admin/tenants/api-made/suspend", "", 200) }},
				{"A admin: resume", "api.test", 200, func() { a.adminCall(t, "POST", "/admin/tenants/api-made/resume", "", 200) }},
				{"A admin: add host", "www.api.test", 200, func() {
					a.adminCall(t, "POST", "/admin/tenants/api-made/hosts", `{"host":"www.api.test"}`, 200)
				}},
				{"A admin: remove host", "www.api.test", 404, func() {
					a.adminCall(t, "DELETE", "/admin/tenants/api-made/hosts/www.api.test", "", 204)
				}},
				{"A admin: remove", "api.test", 404, func() { a.adminCall(t, "DELETE", "/admin/tenants/api-made", "", 200) }},
				{"CLI: tenants add", "cli.test", 200, func() { c.cli(t, "tenants", "add", "--name", "cli-made", "--host", "cli.test") }},
				{"CLI: tenants suspend", "cli.test", 403, func() { c.cli(t, "tenants", "suspend", "cli-made") }},
				{"CLI: tenants resume", "cli.test", 200, func() { c.cli(t, "tenants", "resume", "cli-made") }},
				{"CLI: tenants remove", "cli.test", 404, func() { c.cli(t, "tenants", "remove", "cli-made") }},
			}
			var report []string
			for _, s := range steps {
				afterAck, afterStart := propagation(t, b, s.host, s.want, s.change)
				report = append(report, fmt.Sprintf("%-22s seen on B %8v after acknowledgement (%v after the change started)",
					s.name, afterAck.Round(time.Millisecond), afterStart.Round(time.Millisecond)))
				if afterAck > propagationLimit {
					t.Errorf("%s: B served it %v after the change, want under %v", s.name, afterAck, propagationLimit)
				}
			}
			// And the other way: B's admin API, with the token it made up.
			afterAck, afterStart := propagation(t, a, "seed.test", 403, func() {
				b.adminCall(t, "POST", "/admin/tenants/seed/suspend", "", 200)
			})
			report = append(report, fmt.Sprintf("%-22s seen on A %8v after acknowledgement (%v after the change started)",
				"B admin: suspend", afterAck.Round(time.Millisecond), afterStart.Round(time.Millisecond)))
			if afterAck > propagationLimit {
				t.Errorf("B admin: suspend: A served it %v after the change, want under %v", afterAck, propagationLimit)
			}
			t.Logf("propagation on %s:\n  %s", driver, strings.Join(report, "\n  "))
		})
	}
}
