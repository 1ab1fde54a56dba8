package testenv

import (
	"bytes"
	"fmt"
	"regexp"
	"strings"
	"sync"
)

// emailAddress matches what looks like an e-mail address in a log line: a
// local part, @, and a domain that ends in a name of letters, so that
// user@127.0.0.1 (a DSN's user and host) and module@v1.2.3 are not taken
// for one.
var emailAddress = regexp.MustCompile(`[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b`)

// placeholder is the one address a log line may hold: the example in the
// API's own validation message (models), which it shows to every client
// and which is nobody's. No test may create a user with it.
const placeholder = "name@example.com"

// maxLeaks is how many offending lines a leakCheck keeps to show.
const maxLeaks = 20

// leakCheck reads log lines as they are written and keeps those that hold
// personal data (an e-mail address). Every line is checked when it is
// written rather than kept, so a whole test run costs no memory beyond the
// offending lines. It is safe for concurrent use.
type leakCheck struct {
	mu    sync.Mutex
	leaks []string
	count int
}

// logLeaks checks every line of every logger Logger makes and of every
// Buffer, for the whole test process; Main fails the run when it found
// any. A package variable because it must outlive each test and see them
// all, which is what a test process's TestMain can report on.
var logLeaks leakCheck

// Write checks p, one or more whole lines (a slog handler writes each
// record with one Write).
func (c *leakCheck) Write(p []byte) (int, error) {
	c.check(p)
	return len(p), nil
}

func (c *leakCheck) check(p []byte) {
	// Most lines hold no @ at all; they cost one scan of their bytes.
	if bytes.IndexByte(p, '@') < 0 {
		return
	}
	for line := range bytes.Lines(p) {
		if !leaks(line) {
			continue
		}
		c.mu.Lock()
		c.count++
		if len(c.leaks) < maxLeaks {
			c.leaks = append(c.leaks, strings.TrimRight(string(line), "\n"))
		}
		c.mu.Unlock()
	}
}

// leaks reports whether line holds an e-mail address other than the
// placeholder.
func leaks(line []byte) bool {
	for _, m := range emailAddress.FindAll(line, -1) {
		if string(m) != placeholder {
			return true
		}
	}
	return false
}

// err describes the offending lines, or returns nil when there were none.
func (c *leakCheck) err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.count == 0 {
		return nil
	}
	return fmt.Errorf("%d log lines hold an e-mail address (personal data must never be logged, at any level); the first:\n  %s",
		c.count, strings.Join(c.leaks, "\n  "))
}
