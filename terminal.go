package main

import (
	"io"
	"sync"

	"github.com/schollz/progressbar/v3"
)

// terminal is stderr shared by log lines and a progress bar. The bar
// redraws one line in place; a log line written over it would be cut into
// the bar's remains. While a bar is shown, a log line first erases it and
// the bar is drawn again below the line, and every write, the bar's
// included, goes through one lock.
type terminal struct {
	mu  sync.Mutex
	w   io.Writer
	bar *progressbar.ProgressBar
}

func newTerminal(w io.Writer) *terminal { return &terminal{w: w} }

// Write writes a log line.
func (t *terminal) Write(b []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.bar != nil {
		_ = t.bar.Clear()
	}
	n, err := t.w.Write(b)
	if t.bar != nil {
		_ = t.bar.RenderBlank()
	}
	return n, err
}

// withBar runs fn, which updates the bar, under the lock.
func (t *terminal) withBar(fn func(*progressbar.ProgressBar)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.bar != nil {
		fn(t.bar)
	}
}

// setBar shows bar (nil: none) from now on.
func (t *terminal) setBar(bar *progressbar.ProgressBar) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.bar = bar
}
