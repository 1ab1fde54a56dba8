package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/creack/pty"

	"tenantry/internal/testenv"
)

// TestMigrateProgressOnATerminal runs the real binary under a pseudo
// terminal, as an operator would: 200 tenants behind the code, one of
// which fails half-way. The bar must show the count and the failure, and
// every log line (the failure's WARN) must stand on a line of its own,
// not be written into the middle of the bar.
func TestMigrateProgressOnATerminal(t *testing.T) {
	bin := testenv.Binary(t)
	dbc := testenv.SQLite(t)
	mustCLI(t, dbc, "migrate") // the catalog, no tenants yet
	const n = 200
	for i := range n {
		legacyTenant(t, dbc, fmt.Sprintf("t%03d", i), i == 150)
	}

	cfg := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(cfg, []byte("tenants: []\nadmin:\n  listen: \"\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--config", cfg, "--db-driver", dbc.Driver, "--db-dsn", dbc.DSN, "migrate")
	cmd.Dir = t.TempDir()
	tty, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 40, Cols: 160})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	_, _ = io.Copy(&out, tty) // ends with EIO once the process has exited
	_ = tty.Close()
	var exit *exec.ExitError
	if err := cmd.Wait(); !errors.As(err, &exit) || exit.ExitCode() == 0 {
		t.Errorf("exit: %v, want a non-zero exit for the failed tenant", err)
	}

	got := out.String()
	for _, want := range []string{fmt.Sprintf("(%d/%d", n, n), "(1 failed)", "1 failed"} {
		if !strings.Contains(got, want) {
			t.Errorf("terminal output lacks %q:\n%s", want, got)
		}
	}
	logLines := 0
	for _, line := range strings.Split(got, "\n") {
		// What the line finally shows: the text after its last carriage
		// return (the terminal's own \r\n aside).
		line = strings.TrimRight(line, "\r")
		shown := line[strings.LastIndex(line, "\r")+1:]
		if !strings.Contains(line, "level=") {
			continue
		}
		logLines++
		if !strings.HasPrefix(strings.TrimSpace(shown), "time=") {
			t.Errorf("a log line shares its line with the bar: %q", shown)
		}
	}
	if !strings.Contains(got, "tenant migration failed") || logLines == 0 {
		t.Errorf("no WARN line for the failed tenant:\n%s", got)
	}
}
