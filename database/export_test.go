package database

import (
	"database/sql"
	"time"
)

// GroupDB exposes group i's pool to the tests, which inspect its
// connections' settings.
func (r *Router) GroupDB(i int) *sql.DB { return r.groups[i].db }

// GroupPending exposes how many callers are inside group i's methods.
func (r *Router) GroupPending(i int) int64 { return r.groups[i].pending.Load() }

// LogSlowerThan makes the pool log statements slower than d (instead of
// 500 ms), so that a test can make any statement a slow one.
func LogSlowerThan(d time.Duration) Option { return func(o *options) { o.slow = d } }
