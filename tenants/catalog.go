package tenants

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"gorm.io/gorm"

	"tenantry/migrations"
)

// Catalog reads and changes the tenant catalog and provisions tenants'
// storage. It is the single implementation behind the CLI, start-up seeding
// and the admin API.
type Catalog struct {
	db      *gorm.DB
	layout  Layout
	log     *slog.Logger
	set     migrations.Set
	changed func(ctx context.Context)
	// events is told what the catalog did, for metrics (OnEvents).
	events Events
	// removal bounds how Remove waits and retries (remove.go).
	removal RemovalPolicy
}

// CatalogOption changes a catalog built by NewCatalog.
type CatalogOption func(*Catalog)

// WithMigrations makes the catalog provision and migrate tenants with set
// instead of migrations.Tenant(). Tests use it to add a column or a
// deliberately failing migration; whoever serves tenants must then take
// the required version from the same set (Catalog.Migrations).
func WithMigrations(set migrations.Set) CatalogOption {
	return func(c *Catalog) { c.set = set }
}

// NewCatalog returns a catalog over db, which must have a Scope installed.
func NewCatalog(db *gorm.DB, layout Layout, log *slog.Logger, opts ...CatalogOption) *Catalog {
	c := &Catalog{db: db, layout: layout, log: log, set: migrations.Tenant(), changed: func(context.Context) {}}
	for _, o := range opts {
		o(c)
	}
	return c
}

// Migrations returns the tenant migrations the catalog applies. Its
// Latest() is the version a tenant must have reached to be served.
func (c *Catalog) Migrations() migrations.Set { return c.set }

// OnChange registers fn to run after every committed catalog change, e.g.
// to invalidate a resolver's cache or notify other processes.
func (c *Catalog) OnChange(fn func(ctx context.Context)) { c.changed = fn }

// Spec describes a tenant to create or ensure.
type Spec struct {
	Name   string
	Schema string // derived from Name when empty
	Hosts  []string
	// Database names the placement to create the tenant on; empty picks
	// the configured database with the fewest tenants. An existing
	// tenant (Ensure) stays where it is.
	Database string
}

// Bootstrap applies the shared migrations that build the catalog itself.
func (c *Catalog) Bootstrap(ctx context.Context) error {
	return c.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := c.lock(ctx, tx, "tenantry:shared"); err != nil {
			return err
		}
		if c.layout.Dialect == migrations.Postgres && c.layout.Strategy == StrategyPrefix {
			if err := tx.Exec("CREATE SCHEMA IF NOT EXISTS " + migrations.Quote(PrefixSchema)).Error; err != nil {
				return fmt.Errorf("create %s: %w", PrefixSchema, err)
			}
		}
		if _, err := migrations.Shared().Apply(ctx, tx, c.layout.SharedTarget()); err != nil {
			return fmt.Errorf("shared migrations: %w", err)
		}
		return nil
	})
}

// lock takes a transaction-scoped advisory lock on PostgreSQL. SQLite
// serialises writers itself.
func (c *Catalog) lock(ctx context.Context, tx *gorm.DB, key string) error {
	if c.layout.Dialect != migrations.Postgres {
		return nil
	}
	if err := tx.WithContext(ctx).Exec("SELECT pg_advisory_xact_lock(hashtext(?))", key).Error; err != nil {
		return fmt.Errorf("advisory lock %s: %w", key, err)
	}
	return nil
}

// List returns every tenant with its hosts, ordered by name.
func (c *Catalog) List(ctx context.Context) ([]Tenant, error) {
	var ts []Tenant
	if err := c.db.WithContext(ctx).Order("name").Find(&ts).Error; err != nil {
		return nil, fmt.Errorf("list tenants: %w", err)
	}
	var hosts []TenantHost
	if err := c.db.WithContext(ctx).Order("host").Find(&hosts).Error; err != nil {
		return nil, fmt.Errorf("list hosts: %w", err)
	}
	byID := make(map[uint64]*Tenant, len(ts))
	for i := range ts {
		byID[ts[i].ID] = &ts[i]
	}
	for _, h := range hosts {
		if t := byID[h.TenantID]; t != nil {
			t.Hosts = append(t.Hosts, h)
		}
	}
	return ts, nil
}

// Get returns the tenant called name, with its hosts, or ErrNotFound.
func (c *Catalog) Get(ctx context.Context, name string) (*Tenant, error) {
	return c.get(ctx, c.db, name)
}

func (c *Catalog) get(ctx context.Context, db *gorm.DB, name string) (*Tenant, error) {
	var t Tenant
	err := db.WithContext(ctx).Where("name = ?", name).Take(&t).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, fmt.Errorf("tenant %q: %w", name, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get tenant %q: %w", name, err)
	}
	if err := db.WithContext(ctx).Where("tenant_id = ?", t.ID).Order("host").Find(&t.Hosts).Error; err != nil {
		return nil, fmt.Errorf("get hosts of %q: %w", name, err)
	}
	return &t, nil
}

// ByHost returns the tenant answering on a normalized host, or ErrUnknownHost.
func (c *Catalog) ByHost(ctx context.Context, host string) (*Tenant, error) {
	var h TenantHost
	err := c.db.WithContext(ctx).Where("host = ?", host).Take(&h).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, fmt.Errorf("host %s: %w", host, ErrUnknownHost)
	}
	if err != nil {
		return nil, fmt.Errorf("look up host %s: %w", host, err)
	}
	var t Tenant
	err = c.db.WithContext(ctx).Where("id = ?", h.TenantID).Take(&t).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		// Removed between the two reads (Remove): the host is no longer
		// served, as the next lookup will say.
		return nil, fmt.Errorf("host %s: %w", host, ErrUnknownHost)
	}
	if err != nil {
		return nil, fmt.Errorf("look up tenant of host %s: %w", host, err)
	}
	if err := c.db.WithContext(ctx).Where("tenant_id = ?", t.ID).Order("host").Find(&t.Hosts).Error; err != nil {
		return nil, fmt.Errorf("get hosts of %q: %w", t.Name, err)
	}
	return &t, nil
}

func (c *Catalog) normalize(s Spec) (Spec, error) {
	if s.Schema == "" {
		s.Schema = SchemaFromName(s.Name)
	}
	if err := ValidateName(s.Name); err != nil {
		return s, err
	}
	if err := c.layout.ValidateSchema(s.Schema); err != nil {
		return s, err
	}
	hosts := make([]string, 0, len(s.Hosts))
	for _, h := range s.Hosts {
		n, err := NormalizeHost(h, false)
		if err != nil {
			return s, err
		}
		if !slices.Contains(hosts, n) {
			hosts = append(hosts, n)
		}
	}
	s.Hosts = hosts
	return s, nil
}

// Create provisions a new tenant: its schema or tables, every tenant
// migration and its catalog rows, in one transaction. A tenant of the same
// name is ErrExists.
func (c *Catalog) Create(ctx context.Context, s Spec) (*Tenant, error) {
	return c.provision(ctx, s, false)
}

// Ensure makes sure the tenant exists as specified: created when missing,
// migrated and given any missing hosts when present. Safe to run from
// several processes at once.
func (c *Catalog) Ensure(ctx context.Context, s Spec) (*Tenant, error) {
	return c.provision(ctx, s, true)
}

func (c *Catalog) provision(ctx context.Context, s Spec, ensure bool) (*Tenant, error) {
	s, err := c.normalize(s)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	var out *Tenant
	created := false
	// placed is a tenant whose schema was made, and committed, on another
	// database than the catalog's: dropped again if its rows are not.
	var placed *Tenant
	err = c.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := c.lock(ctx, tx, "tenantry:tenant:"+s.Schema); err != nil {
			return err
		}
		t, err := c.get(ctx, tx, s.Name)
		switch {
		case err == nil && !ensure:
			return ErrExists.With("", fmt.Sprintf("Conflicts with an existing tenant: %q.", s.Name), nil)
		case err == nil && t.Schema != s.Schema:
			return ErrExists.With("", fmt.Sprintf("Conflicts with an existing tenant: %q uses schema %q, not %q.", s.Name, t.Schema, s.Schema), nil)
		case errors.Is(err, ErrNotFound):
			t, err = c.create(ctx, tx, s)
			if t != nil && t.Database != "" {
				placed = t
			}
			if err != nil {
				return err
			}
			created = true
		case err != nil:
			return err
		default:
			if _, err := c.migrate(ctx, tx, t); err != nil {
				return err
			}
		}
		for _, h := range s.Hosts {
			if err := c.addHost(ctx, tx, t, h); err != nil {
				return err
			}
		}
		out, err = c.get(ctx, tx, s.Name)
		return err
	})
	if err != nil {
		if placed != nil {
			c.dropCreated(ctx, placed)
		}
		return nil, fmt.Errorf("provision tenant %q: %w", s.Name, err)
	}
	if created {
		// Logged after the commit: a host taken by another tenant rolls
		// the whole creation back, and the log must not say otherwise.
		c.log.InfoContext(ctx, "tenant created", "tenant", out.Name, "schema", out.Schema)
		c.events.provisioned(time.Since(start))
	}
	c.changed(ctx)
	return out, nil
}

func (c *Catalog) create(ctx context.Context, tx *gorm.DB, s Spec) (*Tenant, error) {
	var n int64
	if err := tx.WithContext(ctx).Model(&Tenant{}).Where("schema = ?", s.Schema).Count(&n).Error; err != nil {
		return nil, fmt.Errorf("check schema: %w", err)
	}
	if n > 0 {
		return nil, ErrExists.With("", fmt.Sprintf("Conflicts with an existing tenant: schema %q is used by another tenant.", s.Schema), nil)
	}
	placement, err := c.choosePlacement(ctx, tx, s.Database)
	if err != nil {
		return nil, err
	}
	t := &Tenant{Name: s.Name, Schema: s.Schema, Status: StatusActive, Database: placement}
	if placement != "" {
		if _, err := c.provisionOn(ctx, t, true); err != nil {
			return nil, err
		}
		t.SchemaVersion = c.set.Latest()
		if err := tx.WithContext(ctx).Create(t).Error; err != nil {
			return t, fmt.Errorf("insert tenant: %w", err)
		}
		return t, nil
	}
	if c.layout.Strategy == StrategySchema {
		if err := tx.WithContext(ctx).Exec("CREATE SCHEMA " + migrations.Quote(s.Schema)).Error; err != nil {
			return nil, fmt.Errorf("create schema %q: %w", s.Schema, err)
		}
	}
	if _, err := c.migrate(ctx, tx, t); err != nil {
		return nil, err
	}
	if err := tx.WithContext(ctx).Create(t).Error; err != nil {
		return nil, fmt.Errorf("insert tenant: %w", err)
	}
	return t, nil
}

// migrate applies the pending tenant migrations to t inside tx, which
// holds t's advisory lock, and records the resulting version on t (and in
// the catalog when t is stored). The schema's own records decide what is
// pending, so a runner that waited for the lock finds nothing left to do.
//
// A tenant on another database than the catalog's is migrated there in a
// transaction of its own (provisionOn), committed before tx records the
// version: a failure between the two leaves the catalog behind the
// schema, which the next run corrects, never ahead of it.
func (c *Catalog) migrate(ctx context.Context, tx *gorm.DB, t *Tenant) (migrations.Set, error) {
	var (
		applied migrations.Set
		err     error
	)
	if t.Database == "" {
		applied, err = c.set.Apply(ctx, tx, c.layout.TenantTarget(t.Schema))
	} else {
		applied, err = c.provisionOn(ctx, t, false)
	}
	if err != nil {
		return nil, fmt.Errorf("migrate %q: %w", t.Name, err)
	}
	latest := c.set.Latest()
	// The catalog is also corrected when it lags records that are already
	// complete, so the middleware serves the tenant again.
	if t.ID != 0 && (len(applied) > 0 || t.SchemaVersion != latest) {
		err := tx.WithContext(ctx).Model(&Tenant{}).Where("id = ?", t.ID).
			Updates(map[string]any{"schema_version": latest}).Error
		if err != nil {
			return nil, fmt.Errorf("record version of %q: %w", t.Name, err)
		}
	}
	t.SchemaVersion = latest
	return applied, nil
}

func (c *Catalog) addHost(ctx context.Context, tx *gorm.DB, t *Tenant, host string) error {
	var h TenantHost
	err := tx.WithContext(ctx).Where("host = ?", host).Take(&h).Error
	switch {
	case err == nil && h.TenantID == t.ID:
		return nil
	case err == nil:
		return ErrHostTaken.With("", fmt.Sprintf("Host %s already belongs to another tenant.", host), nil)
	case !errors.Is(err, gorm.ErrRecordNotFound):
		return fmt.Errorf("check host %s: %w", host, err)
	}
	if err := tx.WithContext(ctx).Create(&TenantHost{Host: host, TenantID: t.ID}).Error; err != nil {
		if errors.Is(err, gorm.ErrDuplicatedKey) {
			return ErrHostTaken.With("", fmt.Sprintf("Host %s already belongs to another tenant.", host), err)
		}
		return fmt.Errorf("add host %s: %w", host, err)
	}
	return nil
}

// AddHost makes the tenant answer on host too.
func (c *Catalog) AddHost(ctx context.Context, name, host string) (*Tenant, error) {
	n, err := NormalizeHost(host, false)
	if err != nil {
		return nil, err
	}
	var out *Tenant
	err = c.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		t, err := c.get(ctx, tx, name)
		if err != nil {
			return err
		}
		if err := c.addHost(ctx, tx, t, n); err != nil {
			return err
		}
		out, err = c.get(ctx, tx, name)
		return err
	})
	if err != nil {
		return nil, err
	}
	c.changed(ctx)
	return out, nil
}

// RemoveHost stops the tenant answering on host.
func (c *Catalog) RemoveHost(ctx context.Context, name, host string) error {
	n, err := NormalizeHost(host, false)
	if err != nil {
		return err
	}
	t, err := c.Get(ctx, name)
	if err != nil {
		return err
	}
	res := c.db.WithContext(ctx).Where("host = ? AND tenant_id = ?", n, t.ID).Delete(&TenantHost{})
	if res.Error != nil {
		return fmt.Errorf("remove host %s: %w", n, res.Error)
	}
	if res.RowsAffected == 0 {
		return ErrNotFound.With("", fmt.Sprintf("Tenant %q does not answer on host %s.", name, n), nil)
	}
	c.changed(ctx)
	return nil
}

// SetStatus suspends or resumes a tenant.
func (c *Catalog) SetStatus(ctx context.Context, name string, st Status) (*Tenant, error) {
	if st != StatusActive && st != StatusSuspended {
		return nil, ErrInvalidName.With("status", fmt.Sprintf("status %q must be %q or %q", st, StatusActive, StatusSuspended), nil)
	}
	res := c.db.WithContext(ctx).Model(&Tenant{}).Where("name = ?", name).
		// An operator setting a status also ends a removal that stopped
		// half-way (Remove): resume puts the tenant back in service.
		Updates(map[string]any{"status": st, "removing": false})
	if res.Error != nil {
		return nil, fmt.Errorf("set status of %q: %w", name, res.Error)
	}
	if res.RowsAffected == 0 {
		return nil, fmt.Errorf("tenant %q: %w", name, ErrNotFound)
	}
	c.changed(ctx)
	return c.Get(ctx, name)
}

// Layout returns where the catalog keeps tenants' tables.
func (c *Catalog) Layout() Layout { return c.layout }
