// Package testenv gives tests real databases and real running servers.
//
// Postgres creates a fresh PostgreSQL database for the calling test and
// drops it when the test ends; SQLite gives a file in the test's temporary
// directory. Start runs the whole service, as main does, on two real
// loopback listeners with one tenant each. Nothing here mocks a database.
package testenv

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver for creating test databases

	"tenantry/app"
	"tenantry/config"
	"tenantry/logging"
)

// DefaultDSN is the server the tests use unless TENANTRY_TEST_DSN says otherwise.
const DefaultDSN = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// Drivers are the databases every end-to-end test runs on.
var Drivers = []string{"sqlite", "postgres"}

// AdminDSN is the DSN tests connect to in order to create databases.
func AdminDSN() string {
	if dsn := os.Getenv("TENANTRY_TEST_DSN"); dsn != "" {
		return dsn
	}
	return DefaultDSN
}

// Postgres creates an empty database for t and drops it afterwards.
func Postgres(t testing.TB) config.Database {
	t.Helper()
	admin, err := sql.Open("pgx", AdminDSN())
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(func() { _ = admin.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := admin.PingContext(ctx); err != nil {
		t.Fatalf("testenv: PostgreSQL is not reachable at %s: %v\n"+
			"Start it (pg_ctlcluster --skip-systemctl-redirect 15 main start) or point the tests at one with\n"+
			"  TENANTRY_TEST_DSN='postgres://USER@HOST:PORT/postgres?sslmode=disable' go test ./...", AdminDSN(), err)
	}
	name := "tenantry_test_" + randomHex(6)
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("testenv: create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := admin.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("testenv: drop database %s: %v", name, err)
		}
	})
	u, err := url.Parse(AdminDSN())
	if err != nil {
		t.Fatalf("testenv: TENANTRY_TEST_DSN: %v", err)
	}
	u.Path = "/" + name
	d := config.Default().Database
	d.Driver, d.DSN = "postgres", u.String()
	return d
}

// SQLite returns a database file in t's temporary directory.
func SQLite(t testing.TB) config.Database {
	t.Helper()
	d := config.Default().Database
	d.Driver, d.DSN = "sqlite", filepath.Join(t.TempDir(), "tenantry.db")
	return d
}

// Database returns a fresh database of the named driver.
func Database(t testing.TB, driver string) config.Database {
	t.Helper()
	switch driver {
	case "postgres":
		return Postgres(t)
	case "sqlite":
		return SQLite(t)
	}
	t.Fatalf("testenv: unknown driver %q", driver)
	return config.Database{}
}

// Config returns a valid configuration over db with no tenants, no
// listeners and no admin API; tests fill in what they need.
func Config(db config.Database) config.Config {
	c := config.Default()
	c.Database = db
	c.Tenancy.Strategy = config.DefaultStrategy(db.Driver)
	c.Tenants = nil
	c.Admin.Listen = ""
	return c
}

// Logger returns a logger like the process's (package logging adds each
// request's id and tenant) at debug level, which writes to t's log only
// when -v is set, keeping expected error logs out of passing runs. Every
// line, at every level, is also checked for personal data: a package
// whose TestMain calls Main fails its run if any line held an e-mail
// address.
func Logger(t testing.TB) *slog.Logger {
	var w io.Writer = &logLeaks
	if testing.Verbose() {
		w = io.MultiWriter(testWriter{t}, &logLeaks)
	}
	return slog.New(logging.NewHandler(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug})))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// Env is a running service with two tenants on two real listeners.
type Env struct {
	App *app.App
	// URL1 and URL2 are http://127.0.0.1:PORT of tenants "tenant1" and
	// "tenant2"; each tenant also answers on localhost:PORT.
	URL1, URL2 string
	// Addr1 and Addr2 are the listeners' host:port.
	Addr1, Addr2 string
	// AdminURL is http://127.0.0.1:PORT of the admin API when Start ran
	// with WithAdmin, and "" otherwise.
	AdminURL string
}

// Option changes the configuration Start uses.
type Option func(*config.Config)

// WithAdmin serves the admin API too, on a free loopback port, behind
// token (which must not be empty).
func WithAdmin(token string) Option {
	return func(c *config.Config) { c.Admin.Listen, c.Admin.Token = "127.0.0.1:0", token }
}

// Start runs the service on driver's fresh database, as main does, and
// stops it when t ends.
func Start(t testing.TB, driver string, opts ...Option) *Env {
	t.Helper()
	return StartWithLog(t, driver, Logger(t), opts...)
}

// StartWithLog is Start with the service logging to log, for tests that
// read what it logs.
func StartWithLog(t testing.TB, driver string, log *slog.Logger, opts ...Option) *Env {
	t.Helper()
	var lns []net.Listener
	for range 2 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("testenv: listen: %v", err)
		}
		lns = append(lns, ln)
	}
	a1, a2 := lns[0].Addr().String(), lns[1].Addr().String()
	p1, p2 := Port(a1), Port(a2)
	cfg := Config(Database(t, driver))
	cfg.Server.Listen = []string{a1, a2}
	cfg.Tenants = []config.TenantSeed{
		{Name: "tenant1", Schema: "tenant1", Hosts: []string{"127.0.0.1:" + p1, "localhost:" + p1}},
		{Name: "tenant2", Schema: "tenant2", Hosts: []string{"127.0.0.1:" + p2, "localhost:" + p2}},
	}
	for _, o := range opts {
		o(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	a, err := app.Open(ctx, cfg, log, app.WithOpenAPI(OpenAPI(t)), app.WithAdminOpenAPI(AdminOpenAPI(t)))
	if err != nil {
		cancel()
		t.Fatalf("testenv: open: %v", err)
	}
	if err := a.Seed(ctx); err != nil {
		cancel()
		t.Fatalf("testenv: seed: %v", err)
	}
	// The tenant listeners are open already; this opens the admin one,
	// when the configuration asks for it.
	if err := a.ListenAdmin(); err != nil {
		cancel()
		for _, ln := range lns {
			_ = ln.Close()
		}
		_ = a.Close()
		t.Fatalf("testenv: admin listener: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, lns) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("testenv: serve: %v", err)
		}
		_ = a.Close()
	})
	env := &Env{App: a, URL1: "http://" + a1, URL2: "http://" + a2, Addr1: a1, Addr2: a2}
	if addr := a.AdminAddr(); addr != "" {
		env.AdminURL = "http://" + addr
	}
	WaitHealthy(t, env.URL1+"/healthz", 10*time.Second)
	return env
}

// TenantStatus sends GET /api/tenant to the listener at addr with the
// Host header host and returns the status: how that listener resolves
// host (200, 403 suspended, 404 unknown, 503 behind).
func TenantStatus(addr, host string, timeout time.Duration) (int, error) {
	req, err := http.NewRequest(http.MethodGet, "http://"+addr+"/api/tenant", nil)
	if err != nil {
		return 0, err
	}
	req.Host = host
	resp, err := (&http.Client{Timeout: timeout}).Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode, nil
}

// WaitHealthy polls url until it answers 200, failing t after within.
func WaitHealthy(t testing.TB, url string, within time.Duration) {
	t.Helper()
	Eventually(t, within, func() bool {
		resp, err := http.Get(url)
		if err != nil {
			return false
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, url, " healthy")
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// RequireTool skips the test when a tool is missing locally, and fails it
// under CI=true, where a skip would hide a missing install step.
func RequireTool(t testing.TB, name string, found bool) {
	t.Helper()
	if found {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is required under CI=true but was not found; .ci/run must install it", name)
	}
	t.Skipf("%s not installed; skipping (this fails under CI=true)", name)
}

// ModuleRoot returns the directory holding go.mod, found by walking up from
// the working directory (a test's package directory).
func ModuleRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatalf("testenv: no go.mod above the working directory")
		}
		dir = parent
	}
}

// OpenAPI returns openapi.yaml from the module root: the document that main
// embeds, so the services that Start runs serve exactly what the binary does.
func OpenAPI(t testing.TB) []byte {
	t.Helper()
	return moduleFile(t, "openapi.yaml")
}

// AdminOpenAPI returns openapi-admin.yaml from the module root, the admin
// API's document that main embeds and the admin listener serves.
func AdminOpenAPI(t testing.TB) []byte {
	t.Helper()
	return moduleFile(t, "openapi-admin.yaml")
}

func moduleFile(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(ModuleRoot(t), name))
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return b
}

// Unique returns a string unique to this run, for emails and names.
func Unique(prefix string) string { return fmt.Sprintf("%s-%s", prefix, randomHex(4)) }

// Binary returns the tenantry command, built once per test process, for
// tests that need real processes (signals, several instances, the CLI).
// The package's TestMain must call Main, which removes it afterwards.
func Binary(t testing.TB) string {
	t.Helper()
	if binDir == "" {
		t.Fatal("testenv.Binary: call testenv.Main from the package's TestMain")
	}
	binOnce.Do(func() {
		bin := filepath.Join(binDir, "tenantry")
		out, err := exec.Command("go", "build", "-o", bin, "tenantry").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
			return
		}
		binPath = bin
	})
	if binErr != nil {
		t.Fatalf("testenv: %v", binErr)
	}
	return binPath
}

var (
	binDir  string // set by Main
	binOnce sync.Once
	binPath string
	binErr  error
)

// Main runs a package's tests (call it from TestMain) and then removes
// what they shared, such as the binary Binary built. It fails the run,
// however the tests went, if any line logged through Logger or written to
// a Buffer held an e-mail address: every address a test of the package
// created is one, so no personal data reached the log at any level.
func Main(m *testing.M) {
	dir, err := os.MkdirTemp("", "tenantry-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "testenv:", err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	_ = os.RemoveAll(dir)
	if err := logLeaks.err(); err != nil {
		fmt.Fprintln(os.Stderr, "FAIL testenv:", err)
		code = 1
	}
	os.Exit(code)
}

// Port returns the port of a host:port address.
func Port(addr string) string { return addr[strings.LastIndexByte(addr, ':')+1:] }

// FreeAddr returns a loopback host:port that was free a moment ago.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
