package contract

import (
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"tenantry/config"
	"tenantry/internal/testenv"
)

// service is a tenantry process started from the built binary, as an
// operator starts it: `tenantry serve` with a config file and TENANTRY_*
// variables. It serves the tenants of config.Default, localhost1 and
// localhost2, each on localhost:PORT and 127.0.0.1:PORT like the
// defaults, but on free loopback ports, so that the Postman environments
// as shipped need only their ports changed.
type service struct {
	// URL1 and URL2 are http://127.0.0.1:PORT of localhost1 and localhost2.
	URL1, URL2 string
	// AdminURL is http://127.0.0.1:PORT of the admin API, or "" when the
	// service runs without one.
	AdminURL string
	// ports maps each default port (5000, 8000, 9000 for the admin API)
	// to the port this service uses instead.
	ports map[string]string

	cmd  *exec.Cmd
	log  *testenv.Buffer
	done chan struct{} // closed once the process has exited
	err  error         // cmd.Wait's result, once done is closed
}

// startService runs bin on db and waits until it serves. With a non-empty
// token it serves the admin API too, behind that token. A port taken
// between choosing it and binding it is chosen again, up to three times.
// The service is killed when t ends unless stop ended it first.
func startService(t *testing.T, bin string, db config.Database, token string) *service {
	t.Helper()
	for attempt := 1; ; attempt++ {
		s, err := tryService(t, bin, db, token)
		if err == nil {
			return s
		}
		if attempt == 3 || !strings.Contains(s.log.String(), "address already in use") {
			t.Fatalf("tenantry serve: %v; log:\n%s", err, s.log.String())
		}
	}
}

func tryService(t *testing.T, bin string, db config.Database, token string) (*service, error) {
	t.Helper()
	def := config.Default()
	s := &service{ports: map[string]string{}, log: &testenv.Buffer{}, done: make(chan struct{})}
	var yaml strings.Builder
	yaml.WriteString("server:\n  listen:\n")
	var tenants strings.Builder
	for i, seed := range def.Tenants {
		addr := testenv.FreeAddr(t)
		s.ports[testenv.Port(seed.Hosts[0])] = testenv.Port(addr)
		fmt.Fprintf(&yaml, "    - %q\n", addr)
		fmt.Fprintf(&tenants, "  - {name: %q, schema: %q, hosts: [\"localhost:%s\", \"127.0.0.1:%s\"]}\n",
			seed.Name, seed.Schema, testenv.Port(addr), testenv.Port(addr))
		switch i {
		case 0:
			s.URL1 = "http://" + addr
		case 1:
			s.URL2 = "http://" + addr
		}
	}
	admin := ""
	if token != "" {
		admin = testenv.FreeAddr(t)
		s.ports[testenv.Port(def.Admin.Listen)] = testenv.Port(admin)
		s.AdminURL = "http://" + admin
	}
	fmt.Fprintf(&yaml, "admin:\n  listen: %q\ntenants:\n%slog:\n  level: info\n", admin, tenants.String())
	dir := t.TempDir()
	file := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(file, []byte(yaml.String()), 0o600); err != nil {
		t.Fatal(err)
	}

	// The database and the token come from the environment, as a
	// deployment passes secrets; nothing of the caller's TENANTRY_*
	// variables leaks in.
	env := []string{"TENANTRY_DATABASE_DRIVER=" + db.Driver, "TENANTRY_DATABASE_DSN=" + db.DSN}
	if token != "" {
		env = append(env, "TENANTRY_ADMIN_TOKEN="+token)
	}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TENANTRY_") {
			env = append(env, kv)
		}
	}
	s.cmd = exec.Command(bin, "serve", "--config", file)
	s.cmd.Dir, s.cmd.Env, s.cmd.Stdout, s.cmd.Stderr = dir, env, s.log, s.log
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	go func() { s.err = s.cmd.Wait(); close(s.done) }()
	t.Cleanup(func() {
		select {
		case <-s.done:
		default:
			_ = s.cmd.Process.Kill()
			<-s.done
		}
		if t.Failed() && testing.Verbose() {
			t.Logf("log of tenantry serve:\n%s", s.log.String())
		}
	})

	deadline := time.Now().Add(20 * time.Second)
	for {
		select {
		case <-s.done:
			return s, fmt.Errorf("exited before serving: %v", s.err)
		default:
		}
		if s.serving() {
			return s, nil
		}
		if time.Now().After(deadline) {
			return s, fmt.Errorf("not serving within 20s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// serving reports whether every listener of s answers.
func (s *service) serving() bool {
	client := &http.Client{Timeout: time.Second}
	for _, u := range []string{s.URL1 + "/healthz", s.URL2 + "/healthz"} {
		resp, err := client.Get(u)
		if err != nil {
			return false
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return false
		}
	}
	if s.AdminURL != "" {
		c, err := net.DialTimeout("tcp", strings.TrimPrefix(s.AdminURL, "http://"), time.Second)
		if err != nil {
			return false
		}
		_ = c.Close()
	}
	return true
}

// stop sends SIGTERM and fails t unless the process exits with status 0
// within the shutdown timeout.
func (s *service) stop(t *testing.T) {
	t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	select {
	case <-s.done:
		if s.err != nil {
			t.Errorf("tenantry serve after SIGTERM: %v, want exit status 0; log:\n%s", s.err, s.log.String())
		}
	case <-time.After(25 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
		t.Errorf("tenantry serve did not exit within 25s of SIGTERM; log:\n%s", s.log.String())
	}
}

// envVars returns, for newman's --env-var, every variable of the Postman
// environment file (relative to the module root) whose value is a URL on
// a default port, moved to the port s serves it on. Nothing else of the
// environment changes.
func (s *service) envVars(t *testing.T, file string) []string {
	t.Helper()
	var vars []string
	for key, val := range environmentValues(t, file) {
		u, err := url.Parse(val)
		if err != nil || u.Host == "" {
			continue
		}
		p, ok := s.ports[u.Port()]
		if !ok {
			t.Fatalf("%s: %s = %s is on no port that the defaults serve", file, key, val)
		}
		u.Host = net.JoinHostPort(u.Hostname(), p)
		vars = append(vars, key+"="+u.String())
	}
	if len(vars) == 0 {
		t.Fatalf("%s: no URL to point at the service", file)
	}
	return vars
}
