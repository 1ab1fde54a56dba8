package testenv

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
)

func TestLeakCheck(t *testing.T) {
	for _, tc := range []struct {
		name   string
		writes []string
		leaks  int
	}{
		{"nothing personal", []string{"level=INFO msg=request tenant=acme status=201\n"}, 0},
		{"an email", []string{"level=DEBUG msg=\"request failed\" err=\"ann.lee+x@example.com is taken\"\n"}, 1},
		{"an email in JSON", []string{`{"level":"INFO","msg":"x","email":"bob@mail.example.org"}` + "\n"}, 1},
		{"two lines, one email", []string{"a=1\nb=carol@example.com\n"}, 1},
		{"a DSN's user and host", []string{"dsn=postgres://postgres@127.0.0.1:5432/x\n"}, 0},
		{"a local host", []string{"user postgres@localhost\n"}, 0},
		{"a module version", []string{"golang.org/x/text@v0.21.0/unicode.go:12\n"}, 0},
		{"the validation message's example", []string{`err="email: must be a valid email address, like name@example.com"` + "\n"}, 0},
		{"the example and an email", []string{`err="like name@example.com" got=dan@example.com` + "\n"}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c leakCheck
			for _, w := range tc.writes {
				_, _ = c.Write([]byte(w))
			}
			if c.count != tc.leaks {
				t.Errorf("leaks = %d, want %d (%q)", c.count, tc.leaks, c.leaks)
			}
			if err := c.err(); (err != nil) != (tc.leaks > 0) {
				t.Errorf("err() = %v, want an error: %v", err, tc.leaks > 0)
			}
		})
	}
}

// TestLeakFailsRun runs this test binary again, with only TestLogsAnEmail,
// which passes on its own but logs an email through Logger: the run must
// fail, naming the line. That is the check a package gets by calling Main
// from its TestMain, shown able to fail.
func TestLeakFailsRun(t *testing.T) {
	for _, tc := range []struct {
		how  string
		fail bool
	}{
		{"logger", true},
		{"buffer", true},
		{"none", false},
	} {
		t.Run(tc.how, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestLogsAnEmail$", "-test.count=1")
			cmd.Env = append(os.Environ(), "TESTENV_LOG_AN_EMAIL="+tc.how)
			out, err := cmd.CombinedOutput()
			if failed := err != nil; failed != tc.fail {
				t.Fatalf("run failed: %v, want %v\n%s", failed, tc.fail, out)
			}
			if tc.fail && !strings.Contains(string(out), "leak.test@example.com") {
				t.Errorf("the failed run does not show the line:\n%s", out)
			}
		})
	}
}

// TestLogsAnEmail is run only by TestLeakFailsRun, in a process of its own.
func TestLogsAnEmail(t *testing.T) {
	how := os.Getenv("TESTENV_LOG_AN_EMAIL")
	switch how {
	case "":
		t.Skip("run by TestLeakFailsRun")
	case "logger":
		Logger(t).DebugContext(context.Background(), "user created", "email", "leak.test@example.com")
	case "buffer":
		var b Buffer
		// Split across writes, as a child process's output may be.
		_, _ = b.Write([]byte("level=INFO msg=x email=leak.te"))
		_, _ = b.Write([]byte("st@example.com\n"))
	}
}
