package tenants

import (
	"context"
	"errors"
	"time"
)

// Status says whether a tenant is served.
type Status string

// Tenant statuses.
const (
	StatusActive    Status = "active"
	StatusSuspended Status = "suspended"
)

// Tenant is one customer: a row of the catalog in the shared schema.
type Tenant struct {
	ID     uint64 `json:"-" gorm:"primaryKey"`
	Name   string `json:"name" gorm:"not null;uniqueIndex"`
	Schema string `json:"schema" gorm:"not null;uniqueIndex"`
	Status Status `json:"status" gorm:"not null"`
	// SchemaVersion is the newest tenant migration applied to the schema.
	SchemaVersion int          `json:"schema_version" gorm:"not null"`
	Hosts         []TenantHost `json:"-" gorm:"foreignKey:TenantID;constraint:OnDelete:CASCADE"`
	CreatedAt     time.Time    `json:"created_at"`
	UpdatedAt     time.Time    `json:"updated_at"`
}

// TableName keeps the catalog's table name independent of GORM's pluraliser.
func (Tenant) TableName() string { return "tenants" }

// HostNames returns the tenant's hosts in the catalog's order.
func (t *Tenant) HostNames() []string {
	out := make([]string, 0, len(t.Hosts))
	for _, h := range t.Hosts {
		out = append(out, h.Host)
	}
	return out
}

// TenantHost maps one normalized host to the tenant that answers on it.
type TenantHost struct {
	Host      string    `gorm:"primaryKey"`
	TenantID  uint64    `gorm:"not null;index"`
	CreatedAt time.Time `gorm:""`
}

// TableName keeps the catalog's table name independent of GORM's pluraliser.
func (TenantHost) TableName() string { return "tenant_hosts" }

// Errors returned (wrapped) by this package; test with errors.Is.
var (
	// ErrUnknownHost means no tenant answers on the request's host.
	ErrUnknownHost = errors.New("unknown host")
	// ErrMalformedHost means the Host header is not a valid host[:port].
	ErrMalformedHost = errors.New("malformed host")
	// ErrSuspended means the tenant exists but is not being served.
	ErrSuspended = errors.New("tenant suspended")
	// ErrBehind means the tenant's schema is older than the code and must be
	// migrated before it is served.
	ErrBehind = errors.New("tenant schema not migrated")
	// ErrNoTenant means a tenant-owned table was queried with no tenant in
	// the statement's context.
	ErrNoTenant = errors.New("no tenant in context")
	// ErrOutsideScope means a tenant-scoped statement tried to reach
	// something other than that tenant's own tables.
	ErrOutsideScope = errors.New("statement outside the tenant scope")
	// ErrInvalidName means a tenant or schema name breaks the naming rules.
	ErrInvalidName = errors.New("invalid name")
	// ErrNotFound means no tenant has the given name.
	ErrNotFound = errors.New("tenant not found")
	// ErrExists means a tenant with that name or schema already exists.
	ErrExists = errors.New("tenant already exists")
	// ErrHostTaken means the host already belongs to another tenant.
	ErrHostTaken = errors.New("host belongs to another tenant")
)

type ctxKey struct{}

// NewContext returns a context that carries t. Statements run with such a
// context reach only t's tables.
func NewContext(ctx context.Context, t *Tenant) context.Context {
	return context.WithValue(ctx, ctxKey{}, t)
}

// FromContext returns the tenant carried by ctx, if any.
func FromContext(ctx context.Context) (*Tenant, bool) {
	t, ok := ctx.Value(ctxKey{}).(*Tenant)
	return t, ok && t != nil
}

// RouteKey is the key the database pool routes ctx's statements by (see
// database.Router): the tenant's schema, which no two tenants share. It
// only chooses a connection; what a statement may reach is the scope's
// business, whatever connection runs it.
func RouteKey(ctx context.Context) (string, bool) {
	t, ok := FromContext(ctx)
	if !ok {
		return "", false
	}
	return t.Schema, true
}
