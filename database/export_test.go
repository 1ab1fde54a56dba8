package database

import "database/sql"

// GroupDB exposes group i's pool to the tests, which inspect its
// connections' settings.
func (r *Router) GroupDB(i int) *sql.DB { return r.groups[i].db }
