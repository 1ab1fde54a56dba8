package database

import "database/sql"

// GroupDB exposes group i's pool to the tests, which inspect its
// connections' settings.
func (r *Router) GroupDB(i int) *sql.DB { return r.groups[i].db }

// GroupPending exposes how many callers are inside group i's methods.
func (r *Router) GroupPending(i int) int64 { return r.groups[i].pending.Load() }
