package logging

import (
	"context"
	"log/slog"

	"tenantry/requestid"
	"tenantry/tenants"
)

// The keys Handler adds.
const (
	RequestIDKey = "request_id"
	TenantKey    = "tenant"
)

// Handler is a slog.Handler that adds a record's request id and tenant
// from its context (see the package documentation).
type Handler struct {
	next slog.Handler
	// hasID and hasTenant are set once the logger's own attributes
	// (WithAttrs) hold the key, so that no record of it gets it twice.
	hasID, hasTenant bool
}

var _ slog.Handler = (*Handler)(nil)

// NewHandler returns next wrapped.
func NewHandler(next slog.Handler) *Handler { return &Handler{next: next} }

// Enabled reports whether next handles records at level.
func (h *Handler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.next.Enabled(ctx, level)
}

// Handle adds request_id and tenant from ctx to r, unless r or the
// logger holds them already, and passes r to next.
func (h *Handler) Handle(ctx context.Context, r slog.Record) error {
	if ctx == nil {
		return h.next.Handle(ctx, r)
	}
	id, addID := requestid.FromContext(ctx)
	tenant, addTenant := tenants.NameFromContext(ctx)
	addID = addID && !h.hasID
	addTenant = addTenant && !h.hasTenant
	if !addID && !addTenant {
		return h.next.Handle(ctx, r)
	}
	r.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case RequestIDKey:
			addID = false
		case TenantKey:
			addTenant = false
		}
		return addID || addTenant
	})
	if addID {
		r.AddAttrs(slog.String(RequestIDKey, id))
	}
	if addTenant {
		r.AddAttrs(slog.String(TenantKey, tenant))
	}
	return h.next.Handle(ctx, r)
}

// WithAttrs returns a Handler whose records carry attrs; a key among them
// that Handle would add is then left to them.
func (h *Handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := *h
	c.next = h.next.WithAttrs(attrs)
	for _, a := range attrs {
		switch a.Key {
		case RequestIDKey:
			c.hasID = true
		case TenantKey:
			c.hasTenant = true
		}
	}
	return &c
}

// WithGroup returns a Handler whose records' attributes, the added ones
// included, are in the group name. Keys in the group are another name
// from the ones outside it, so the logger's own attributes no longer
// count as holding them.
func (h *Handler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	return &Handler{next: h.next.WithGroup(name)}
}
