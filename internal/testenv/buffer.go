package testenv

import (
	"bytes"
	"sync"
)

// Buffer collects what a child process writes (its log) while the test
// reads it: exec.Cmd copies into it from its own goroutine. Every whole
// line written to it is checked for personal data, as Logger's are (see
// Main).
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
	// checked is how many bytes of buf have been checked: up to the end
	// of the last whole line, since a process's writes may split lines.
	checked int
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n, err := b.buf.Write(p)
	rest := b.buf.Bytes()[b.checked:]
	if end := bytes.LastIndexByte(rest, '\n'); end >= 0 {
		logLeaks.check(rest[:end+1])
		b.checked += end + 1
	}
	return n, err
}

func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
