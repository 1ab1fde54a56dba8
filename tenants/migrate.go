package tenants

import (
	"context"
	"fmt"
)

// MigrateOptions controls Catalog.Migrate.
type MigrateOptions struct {
	// Jobs is how many tenants are migrated at once (default 1).
	Jobs int
	// Tenant limits the run to one tenant by name.
	Tenant string
	// DryRun reports what would be applied without applying it.
	DryRun bool
	// Progress, when set, is called after each tenant finishes.
	Progress func(Progress)
}

// Progress is reported after each tenant of a run finishes.
type Progress struct {
	Done, Failed, Total int
	Tenant              string
	Err                 error
}

// TenantFailure is one tenant whose migration failed and was rolled back.
type TenantFailure struct {
	Tenant string `json:"tenant"`
	Error  string `json:"error"`
}

// MigrateReport summarises a run.
type MigrateReport struct {
	Total    int             `json:"total"`
	Migrated int             `json:"migrated"`
	UpToDate int             `json:"up_to_date"`
	Failed   int             `json:"failed"`
	Failures []TenantFailure `json:"failures,omitempty"`
}

// Migrate applies pending tenant migrations to every tenant (or one).
// A failing tenant is rolled back and reported; the others go on.
//
// This first version migrates one tenant at a time through Ensure.
func (c *Catalog) Migrate(ctx context.Context, opts MigrateOptions) (MigrateReport, error) {
	ts, err := c.List(ctx)
	if err != nil {
		return MigrateReport{}, err
	}
	var rep MigrateReport
	for _, t := range ts {
		if opts.Tenant != "" && t.Name != opts.Tenant {
			continue
		}
		rep.Total++
	}
	if opts.Tenant != "" && rep.Total == 0 {
		return rep, fmt.Errorf("%w: %q", ErrNotFound, opts.Tenant)
	}
	for _, t := range ts {
		if opts.Tenant != "" && t.Name != opts.Tenant {
			continue
		}
		_, err := c.Ensure(ctx, Spec{Name: t.Name, Schema: t.Schema})
		if err != nil {
			rep.Failed++
			rep.Failures = append(rep.Failures, TenantFailure{Tenant: t.Name, Error: err.Error()})
		} else {
			rep.Migrated++
		}
		if opts.Progress != nil {
			opts.Progress(Progress{Done: rep.Migrated + rep.Failed, Failed: rep.Failed, Total: rep.Total, Tenant: t.Name, Err: err})
		}
	}
	if rep.Failed > 0 {
		return rep, fmt.Errorf("%d of %d tenants failed to migrate", rep.Failed, rep.Total)
	}
	return rep, nil
}
