package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"tenantry/internal/testenv"
)

// TestInvalidConfigStopsStartup: a bad value is an error naming the key and
// the allowed values, with a non-zero exit, before anything listens.
func TestInvalidConfigStopsStartup(t *testing.T) {
	bin := testenv.Binary(t)
	for _, tc := range []struct {
		env  string
		args []string
		want string
	}{
		{"TENANTRY_DATABASE_DRIVER=mysql", nil, "database.driver"},
		{"", []string{"--strategy", "rows"}, "tenancy.strategy"},
		{"TENANTRY_LOG_LEVEL=chatty", nil, "allowed: debug, info, warn, error"},
		// Values that do not parse, and variables set but empty, stop
		// every command, not only serve.
		{"TENANTRY_SERVER_READ_TIMEOUT=abc", []string{"migrate", "status"},
			`config: server.read_timeout: "abc" is not allowed (allowed: a positive duration such as 5s`},
		{"TENANTRY_DATABASE_MAX_OPEN_CONNS=lots", []string{"migrate", "status"},
			`config: database.max_open_conns: "lots" is not allowed (allowed: a whole number, 1 or more)`},
		{"TENANTRY_DATABASE_DSN=", []string{"migrate", "status"},
			"config: database.dsn: TENANTRY_DATABASE_DSN is set but empty (allowed: a SQLite file name or a PostgreSQL URL)"},
	} {
		cmd := exec.Command(bin, tc.args...)
		cmd.Dir = t.TempDir()
		cmd.Env = append(os.Environ(), tc.env)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() == 0 {
			t.Errorf("%s %v: err = %v, want a non-zero exit", tc.env, tc.args, err)
		}
		if !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("%s %v: stderr %q does not name %q", tc.env, tc.args, stderr.String(), tc.want)
		}
	}
}

// TestGracefulShutdown sends SIGTERM while a request is half sent: the
// request must still be served and acknowledged, the process must exit 0,
// and the acknowledged write must be there after a restart.
func TestGracefulShutdown(t *testing.T) {
	bin := testenv.Binary(t)
	dir := t.TempDir()
	p1, p2 := testenv.Port(testenv.FreeAddr(t)), testenv.Port(testenv.FreeAddr(t))
	cfg := fmt.Sprintf(`server:
  listen: ["127.0.0.1:%s", "127.0.0.1:%s"]
  shutdown_timeout: 10s
admin:
  listen: ""
database:
  driver: sqlite
  dsn: %s
tenants:
  - {name: one, schema: one, hosts: ["127.0.0.1:%s"]}
  - {name: two, schema: two, hosts: ["127.0.0.1:%s"]}
`, p1, p2, filepath.Join(dir, "t.db"), p1, p2)
	if err := os.WriteFile(filepath.Join(dir, "config.yaml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	start := func() (*exec.Cmd, *testenv.Buffer) {
		cmd := exec.Command(bin, "serve", "--config", filepath.Join(dir, "config.yaml"))
		logs := &testenv.Buffer{}
		cmd.Stderr = logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		testenv.WaitHealthy(t, "http://127.0.0.1:"+p1+"/healthz", 20*time.Second)
		return cmd, logs
	}
	cmd, logs := start()

	body := `{"name":"Late","email":"late@example.com"}`
	conn, err := net.Dial("tcp", "127.0.0.1:"+p1)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// Expect: 100-continue makes the server say when the handler starts
	// reading the body: past that interim answer the request is in
	// flight, however slowly the machine got there.
	fmt.Fprintf(conn, "POST /api/users HTTP/1.1\r\nHost: 127.0.0.1:%s\r\nContent-Type: application/json\r\nContent-Length: %d\r\nExpect: 100-continue\r\n\r\n", p1, len(body))
	br := bufio.NewReader(conn)
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if interim, err := http.ReadResponse(br, nil); err != nil || interim.StatusCode != http.StatusContinue {
		t.Fatalf("before the body: %v, %v; want 100 Continue\nlogs:\n%s", interim, err, logs)
	}
	_ = conn.SetReadDeadline(time.Time{})
	if _, err := conn.Write([]byte(body[:10])); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// Shutdown has begun once the process says so and its listener is
	// closed; the request, half sent, is in flight across it.
	testenv.Eventually(t, 10*time.Second, func() bool {
		if !strings.Contains(logs.String(), "shutting down") {
			return false
		}
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+p1, time.Second)
		if err == nil {
			_ = c.Close()
		}
		return err != nil
	}, "shutdown beginning after SIGTERM")
	if _, err := conn.Write([]byte(body[10:])); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("in-flight request: %v\nlogs:\n%s", err, logs)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Errorf("in-flight request: status %d, want 201", resp.StatusCode)
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("exit after SIGTERM: %v, want 0\nlogs:\n%s", err, logs)
	}
	if _, err := http.Get("http://127.0.0.1:" + p1 + "/healthz"); err == nil {
		t.Errorf("still accepting connections after exit")
	}

	cmd, _ = start()
	defer func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait() }()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://127.0.0.1:"+p1+"/api/users/1", nil)
	r, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != http.StatusOK {
		t.Errorf("acknowledged user after restart: status %d, want 200", r.StatusCode)
	}
}
