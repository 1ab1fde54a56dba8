package app

import (
	"context"
	"fmt"

	"tenantry/migrations"
)

// ReadOnly makes Open apply nothing: the shared migrations stay pending,
// so that commands which only look (migrate --dry-run, migrate status)
// leave the database as they found it, even a fresh one. The catalog may
// then not exist yet (see SharedStatus); such an App is for reading
// migration state and must not Seed or Serve.
func ReadOnly() Option {
	return func(o *options) { o.readOnly = true }
}

// SharedStatus is where the shared (catalog) schema stands against the
// shared migrations this binary knows.
type SharedStatus struct {
	// Version is the last shared migration applied, 0 on a fresh database.
	Version int `json:"version"`
	// Latest is the last shared migration the binary knows.
	Latest int `json:"latest"`
	// Pending names, as NNNN_name in the order they apply, what
	// `tenantry migrate` (or serve) would apply.
	Pending []string `json:"pending"`
	// Catalog reports whether the catalog tables exist. Until the first
	// shared migration creates them there are no tenants to look at.
	Catalog bool `json:"catalog"`
}

// SharedStatus reads the shared schema's migration records, creating
// nothing. A changed or unknown applied migration is an error, as it would
// be for the run that applies them.
func (a *App) SharedStatus(ctx context.Context) (SharedStatus, error) {
	set := migrations.Shared()
	layout := a.Catalog.Layout()
	target := layout.SharedTarget()
	st := SharedStatus{Latest: set.Latest(), Pending: []string{}}
	version, pending, err := set.Plan(ctx, a.DB, target)
	if err != nil {
		return st, fmt.Errorf("shared migrations: %w", err)
	}
	st.Version, st.Pending = version, pending.Labels()
	if st.Catalog, err = migrations.HasTable(ctx, a.DB, target, "tenants"); err != nil {
		return st, fmt.Errorf("shared migrations: %w", err)
	}
	return st, nil
}
