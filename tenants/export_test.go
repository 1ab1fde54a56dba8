package tenants

import "context"

// WithMoveHook returns a context under which Catalog.Move calls fn at
// each of its phases ("marked", "target", "copy <table>", "copied",
// "paused", "fenced", "caught-up", "verified", "switched", "retired");
// an error from fn fails the move there, as a fault would.
func WithMoveHook(ctx context.Context, fn func(phase string) error) context.Context {
	return context.WithValue(ctx, moveHookKey{}, fn)
}

// ErrAbandonMove, returned by a move hook, stops the move as a killed
// process would: its connections are closed (releasing its locks and
// rolling back its transactions) and nothing is cleaned up.
var ErrAbandonMove = errAbandon
