package database

import (
	"context"
	"sync/atomic"
	"time"
)

// Usage counts the statements one unit of work (a request) ran through the
// pool and the time they took, as GORM measured them: from the start of a
// statement's callbacks to the end of reading its rows. BEGIN and COMMIT
// are not statements GORM traces and are not counted. A Usage is safe for
// concurrent use, so a request may run statements from several
// goroutines.
type Usage struct {
	nanos      atomic.Int64
	statements atomic.Int64
}

// Time returns the total time of the statements counted so far.
func (u *Usage) Time() time.Duration { return time.Duration(u.nanos.Load()) }

// Statements returns how many statements were counted so far.
func (u *Usage) Statements() int { return int(u.statements.Load()) }

func (u *Usage) add(d time.Duration) {
	u.nanos.Add(int64(d))
	u.statements.Add(1)
}

// NewUsageContext returns a copy of parent that carries a fresh Usage, and
// that Usage: every statement the pool runs with the returned context, or
// a context derived from it, is counted in it.
func NewUsageContext(parent context.Context) (context.Context, *Usage) {
	c := &usageCtx{Context: parent}
	return c, &c.usage
}

// usageCtx is the context node that carries a Usage. Node and counter are
// one allocation, where context.WithValue and a separate Usage would be
// two, on a path every request takes; it answers its key with a pointer,
// which boxes for free.
type usageCtx struct {
	context.Context
	usage Usage
}

type usageKey struct{}

func (c *usageCtx) Value(k any) any {
	if k == (usageKey{}) {
		return &c.usage
	}
	return c.Context.Value(k)
}

// usageFrom returns the Usage ctx carries, or nil.
func usageFrom(ctx context.Context) *Usage {
	u, _ := ctx.Value(usageKey{}).(*Usage)
	return u
}
