package tenants

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"gorm.io/gorm"

	"tenantry/config"
	"tenantry/database"
	"tenantry/fault"
	"tenantry/migrations"
)

// ErrUnknownDatabase means a tenant was asked to go to a database that is
// not configured (config databases, or database.name for the control one).
var ErrUnknownDatabase = &fault.Error{Kind: fault.Invalid, Code: "unknown-database", Title: "Unknown database",
	Message: "No database of that name is configured.", Field: "database"}

// on returns a session on the database called placement ("" for the
// control database) for the catalog's own statements about a tenant's
// data: they carry no tenant, so the scope lets them name its schema, and
// database.OnPlacement sends them to the tenant's database.
func (c *Catalog) on(ctx context.Context, placement string) *gorm.DB {
	return c.db.WithContext(database.OnPlacement(ctx, placement))
}

// Databases returns the name of the control database and of every
// placement, the control one first. A catalog over a pool that Open did
// not make has only the control database, named config.DefaultPlacement.
func (c *Catalog) Databases() (control string, names []string) {
	p, err := database.PlacementsOf(c.db)
	if err != nil {
		return config.DefaultPlacement, []string{config.DefaultPlacement}
	}
	return p.Control(), p.Names()
}

// DatabaseName returns the configured name of the database holding t.
func (c *Catalog) DatabaseName(t *Tenant) string { return c.nameOf(t.Database) }

// nameOf returns the configured name of the placement p ("" is the
// control database): what MovingTo and reports hold, since "" in MovingTo
// would mean no move at all.
func (c *Catalog) nameOf(p string) string {
	if p == "" {
		control, _ := c.Databases()
		return control
	}
	return p
}

// placement returns the catalog's value for the database called name:
// "" for the control database, the name itself for another configured
// one, ErrUnknownDatabase (for the request's field) otherwise.
func (c *Catalog) placement(field, name string) (string, error) {
	control, names := c.Databases()
	switch {
	case name == "" || name == control:
		return "", nil
	case slices.Contains(names, name):
		return name, nil
	}
	return "", ErrUnknownDatabase.With(field, fmt.Sprintf("No database called %q is configured (configured: %s).", name, strings.Join(names, ", ")), nil)
}

// tenantsPerDatabase counts the catalog's tenants by placement ("" for
// the control database), read through db (the catalog, or a transaction
// of it).
func (c *Catalog) tenantsPerDatabase(ctx context.Context, db *gorm.DB) (map[string]int64, error) {
	var rows []struct {
		Database string
		N        int64
	}
	err := db.WithContext(ctx).Model(&Tenant{}).Select("database, count(*) AS n").Group("database").Scan(&rows).Error
	if err != nil {
		return nil, fmt.Errorf("count tenants per database: %w", err)
	}
	count := make(map[string]int64, len(rows))
	for _, r := range rows {
		count[r.Database] = r.N
	}
	return count, nil
}

// choosePlacement returns where a new tenant goes: the database named, or
// with none named the configured database holding the fewest tenants (the
// first in configuration order on a tie, so the control database while
// nothing else is configured). It reads the counts in tx, which holds the
// new tenant's lock: two tenants created at once may both pick the same
// database, which only skews the balance by one.
func (c *Catalog) choosePlacement(ctx context.Context, tx *gorm.DB, requested string) (string, error) {
	if requested != "" {
		return c.placement("database", requested)
	}
	control, names := c.Databases()
	if len(names) == 1 {
		return "", nil
	}
	count, err := c.tenantsPerDatabase(ctx, tx)
	if err != nil {
		return "", err
	}
	best, bestN := "", count[""]
	for _, name := range names {
		if name == control {
			continue
		}
		if n := count[name]; n < bestN {
			best, bestN = name, n
		}
	}
	return best, nil
}

// provisionOn creates t's schema on its placement (when create is set)
// and applies the pending tenant migrations there, in one transaction of
// that database under the tenant's advisory lock, and commits it: a
// tenant on another database than the catalog's is provisioned in two
// transactions, its data first, then its catalog rows (Catalog.provision
// drops the schema again when the second fails).
func (c *Catalog) provisionOn(ctx context.Context, t *Tenant, create bool) (migrations.Set, error) {
	var applied migrations.Set
	err := c.on(ctx, t.Database).Transaction(func(tx *gorm.DB) error {
		if err := c.lock(ctx, tx, "tenantry:tenant:"+t.Schema); err != nil {
			return err
		}
		if create {
			if err := tx.WithContext(ctx).Exec("CREATE SCHEMA " + migrations.Quote(t.Schema)).Error; err != nil {
				return fmt.Errorf("create schema %q on database %s: %w", t.Schema, t.Database, err)
			}
		}
		var err error
		applied, err = c.set.Apply(ctx, tx, c.layout.TenantTarget(t.Schema))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("migrate %q on database %s: %w", t.Name, t.Database, err)
	}
	return applied, nil
}

// dropCreated drops the schema provisionOn created for a tenant whose
// catalog rows were then not committed, so that nothing is left behind
// that no catalog row names. It runs even when ctx has ended.
func (c *Catalog) dropCreated(ctx context.Context, t *Tenant) {
	ctx = context.WithoutCancel(ctx)
	err := c.on(ctx, t.Database).Exec("DROP SCHEMA IF EXISTS " + migrations.Quote(t.Schema) + " CASCADE").Error
	if err != nil {
		c.log.ErrorContext(ctx, "tenant creation failed after its schema was made on another database; drop it by hand",
			"tenant", t.Name, "schema", t.Schema, "database", t.Database, "err", err)
	}
}
