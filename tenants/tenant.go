package tenants

import (
	"context"
	"errors"
	"time"

	"tenantry/database"
	"tenantry/fault"
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
	// RateLimit (requests/s), RateBurst and MaxConcurrent are the tenant's
	// own limits (Limits, Limiter); nil takes the configured default. The
	// tenant API does not show them: they are the operator's business.
	RateLimit     *float64 `json:"-" gorm:"column:rate_limit"`
	RateBurst     *int     `json:"-" gorm:"column:rate_burst"`
	MaxConcurrent *int     `json:"-" gorm:"column:max_concurrent"`
	// Removing is set from the committed start of a removal
	// (Catalog.Remove) until the tenant's rows are gone, and stays set
	// after a removal that failed half-way, until it is sent again. Such a
	// tenant is not served: ErrRemoving.
	Removing bool `json:"-" gorm:"column:removing;not null"`
	// Database is the placement holding the tenant's schema: "" for the
	// control database (config database.name), else one of the configured
	// databases. Statements for the tenant go to its pool (PlacementKey).
	Database string `json:"-" gorm:"column:database;not null;default:''"`
	// MovingTo names the database a move is copying the tenant to, while
	// it runs (Catalog.Move); "" otherwise.
	MovingTo string `json:"-" gorm:"column:moving_to;not null;default:''"`
	// WritesPaused is set for the final catch-up and switch of a move:
	// the tenant's reads are served, its writes refused (ErrWritesPaused).
	WritesPaused bool      `json:"-" gorm:"column:writes_paused;not null;default:false"`
	CreatedAt    time.Time `json:"created_at"`
	UpdatedAt    time.Time `json:"updated_at"`
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

// Errors returned (wrapped) by this package; test with errors.Is. Those a
// client or an operator may cause are *fault.Error values: their kind,
// code, title and message are what the APIs show (problem.From), and a
// construction site that knows more gives a copy its own field and message
// with With, which errors.Is still matches. Messages speak to whoever is
// shown them: the tenant API's people (a "workspace") for the errors of
// serving a host, the operator (a "tenant") for the catalog's.
var (
	// ErrUnknownHost means no tenant answers on the request's host.
	ErrUnknownHost = &fault.Error{Kind: fault.NotFound, Code: "unknown-host", Title: "Unknown host",
		Message: "No workspace is served on this host."}
	// ErrMalformedHost means a host is not a valid host[:port]. It is the
	// operator's input to the catalog (422), but a Host header to the
	// tenant API, which shows it as an unknown host (package handlers).
	ErrMalformedHost = &fault.Error{Kind: fault.Invalid, Code: "invalid-host", Title: "Invalid host",
		Message: "not a valid host[:port]", Field: "host"}
	// ErrSuspended means the tenant exists but is not being served.
	ErrSuspended = &fault.Error{Kind: fault.Forbidden, Code: "tenant-suspended", Title: "Workspace suspended",
		Message: "This workspace is suspended."}
	// ErrRemoving means the tenant is being removed: no new request is
	// served while in-flight ones drain and its data is dropped or archived.
	// It is 404 (unknown host) once the removal is done.
	ErrRemoving = &fault.Error{Kind: fault.Unavailable, Code: "tenant-removing", Title: "Workspace being removed",
		Message: "This workspace is being removed."}
	// ErrBehind means the tenant's schema is older than the code and must be
	// migrated before it is served.
	ErrBehind = &fault.Error{Kind: fault.Unavailable, Code: "tenant-migrating", Title: "Workspace being upgraded",
		Message: "This workspace's data is being upgraded; try again shortly."}
	// ErrWritesPaused means the tenant is being moved to another database
	// and is in the final seconds of the move: reads are served, writes
	// wait for the switch.
	ErrWritesPaused = &fault.Error{Kind: fault.Unavailable, Code: "tenant-moving", Title: "Workspace being moved",
		Message: "This workspace is being moved; writes resume within seconds. Retry after the number of seconds in Retry-After."}
	// ErrMoved means the tenant's tables went away, or refused a write,
	// under a request because a move switched the tenant to another
	// database: a write sent to the sealed source, or a statement that
	// found the source retired (handlers tell that from a removal).
	// Retried, the request is served from the new database.
	ErrMoved = database.ErrMoved
	// ErrNoTenant means a tenant-owned table was queried with no tenant in
	// the statement's context: a fault of the code, never of the client.
	ErrNoTenant = errors.New("no tenant in context")
	// ErrOutsideScope means a tenant-scoped statement tried to reach
	// something other than that tenant's own tables: a fault of the code.
	ErrOutsideScope = errors.New("statement outside the tenant scope")
	// ErrInvalidName means a tenant or schema name breaks the naming rules.
	ErrInvalidName = &fault.Error{Kind: fault.Invalid, Code: "invalid-name", Title: "Invalid name",
		Message: "invalid name", Field: "name"}
	// ErrNotFound means no tenant has the given name.
	ErrNotFound = &fault.Error{Kind: fault.NotFound, Code: "tenant-not-found", Title: "Tenant not found",
		Message: "No tenant has this name."}
	// ErrExists means a tenant with that name or schema already exists.
	ErrExists = &fault.Error{Kind: fault.Conflict, Code: "tenant-exists", Title: "Tenant already exists",
		Message: "Conflicts with an existing tenant."}
	// ErrHostTaken means the host already belongs to another tenant.
	ErrHostTaken = &fault.Error{Kind: fault.Conflict, Code: "host-taken", Title: "Host taken",
		Message: "The host already belongs to another tenant."}
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

type refusedKey struct{}

// withRefused returns a context that names t as the tenant a refused
// request was for (suspended, being removed, behind), for logs, metrics
// and stats only: FromContext stays empty, so no handler and no statement
// ever runs as t.
func withRefused(ctx context.Context, t *Tenant) context.Context {
	return context.WithValue(ctx, refusedKey{}, t.Name)
}

// NameFromContext returns the name of the tenant ctx's request is counted
// for: the tenant it is served as (FromContext), or the one it was refused
// for by Middleware.Handler (a suspended tenant's requests are that
// tenant's 403s in its figures, not anonymous ones).
func NameFromContext(ctx context.Context) (string, bool) {
	if t, ok := FromContext(ctx); ok {
		return t.Name, true
	}
	name, ok := ctx.Value(refusedKey{}).(string)
	return name, ok
}

// PlacementKey names the placement ctx's statements go to (see
// database.Placements): the tenant's database, "" (the control database)
// without a tenant. Like RouteKey it picks where a statement runs; the
// scope still decides what it may reach.
func PlacementKey(ctx context.Context) string {
	if t, ok := FromContext(ctx); ok {
		return t.Database
	}
	return ""
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
