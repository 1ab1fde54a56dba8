package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"tenantry/fault"
	"tenantry/problem"
	"tenantry/tenants"
)

// tenantView is what the admin API shows of a tenant.
type tenantView struct {
	Name          string         `json:"name"`
	Schema        string         `json:"schema"`
	Status        tenants.Status `json:"status"`
	SchemaVersion int            `json:"schema_version"`
	Hosts         []string       `json:"hosts"`
	Limits        limitsView     `json:"limits"`
	// Database is the configured name of the database holding the
	// tenant's data; MovingTo, shown only during a move, the one it is
	// being copied to.
	Database string `json:"database"`
	MovingTo string `json:"moving_to,omitempty"`
	// Removing is shown only when set: a removal is under way, or failed
	// and must be sent again (tenants.ErrRemovalBlocked).
	Removing  bool      `json:"removing,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// limitsView is a tenant's own limits; null is the configured default.
type limitsView struct {
	Rate        *float64 `json:"rate"`
	Burst       *int     `json:"burst"`
	Concurrency *int     `json:"concurrency"`
}

func (s *Server) viewOf(t *tenants.Tenant) tenantView {
	l := t.Limits()
	return tenantView{Name: t.Name, Schema: t.Schema, Status: t.Status, SchemaVersion: t.SchemaVersion,
		Hosts: t.HostNames(), Limits: limitsView{Rate: l.Rate, Burst: l.Burst, Concurrency: l.Concurrency},
		Database: s.catalog.DatabaseName(t), MovingTo: t.MovingTo,
		Removing: t.Removing, CreatedAt: t.CreatedAt, UpdatedAt: t.UpdatedAt}
}

// tenantURL is where a tenant is found, for Location headers.
func tenantURL(name string) string { return "/admin/tenants/" + url.PathEscape(name) }

func (s *Server) handleTenantList(c *gin.Context) {
	ts, err := s.catalog.List(c.Request.Context())
	if err != nil {
		s.respondError(c, err)
		return
	}
	out := make([]tenantView, 0, len(ts))
	for i := range ts {
		out = append(out, s.viewOf(&ts[i]))
	}
	s.writeJSON(c, http.StatusOK, map[string]any{"tenants": out})
}

// createRequest is the body of POST /admin/tenants.
type createRequest struct {
	Name   string   `json:"name"`
	Schema string   `json:"schema"`
	Hosts  []string `json:"hosts"`
	// Database names the configured database to create the tenant on;
	// empty picks the one with the fewest tenants. The catalog refuses
	// an unknown name (tenants.ErrUnknownDatabase, 422).
	Database string `json:"database"`
}

// Valid checks each field with the catalog's own rules, so that the client
// learns about every bad field at once and by name. The catalog checks
// them again (and the layout's length limit) when it creates the tenant.
func (r createRequest) Valid() error {
	var fields []FieldError
	if err := tenants.ValidateName(r.Name); err != nil {
		fields = append(fields, FieldError{Field: "name", Message: message(err)})
	}
	if r.Schema != "" {
		if err := tenants.ValidateSchema(r.Schema); err != nil {
			fields = append(fields, FieldError{Field: "schema", Message: message(err)})
		}
	}
	if len(r.Hosts) == 0 {
		fields = append(fields, FieldError{Field: "hosts", Message: "must list at least one host[:port]"})
	}
	for i, h := range r.Hosts {
		if _, err := tenants.NormalizeHost(h, false); err != nil {
			fields = append(fields, FieldError{Field: fmt.Sprintf("hosts[%d]", i), Message: message(err)})
		}
	}
	if fields != nil {
		return invalid(fields...)
	}
	return nil
}

func (s *Server) handleTenantCreate(c *gin.Context) {
	var req createRequest
	if !s.read(c, &req, mediaJSON) {
		return
	}
	t, err := s.catalog.Create(c.Request.Context(), tenants.Spec{Name: req.Name, Schema: req.Schema, Hosts: req.Hosts, Database: req.Database})
	if err != nil {
		s.respondError(c, err)
		return
	}
	c.Header("Location", tenantURL(t.Name))
	s.writeJSON(c, http.StatusCreated, s.viewOf(t))
}

func (s *Server) handleTenantShow(c *gin.Context) {
	t, err := s.catalog.Get(c.Request.Context(), c.Param("name"))
	if err != nil {
		s.respondError(c, err)
		return
	}
	s.writeJSON(c, http.StatusOK, s.viewOf(t))
}

// patchRequest is the body of PATCH /admin/tenants/{name}, a JSON merge
// patch. Only the status and the limits can change: names and schemas are
// fixed, and hosts have their own resource so that each change is one
// transaction.
type patchRequest struct {
	Status *tenants.Status `json:"status"`
	// Limits is merged as RFC 7396 says: a member left out keeps its
	// value, a null one (or a null limits) goes back to the configured
	// default, and so does 0.
	Limits optional[limitsPatch] `json:"limits"`
}

// limitsPatch is the limits member of a tenant merge patch.
type limitsPatch struct {
	Rate        optional[float64] `json:"rate"`
	Burst       optional[int]     `json:"burst"`
	Concurrency optional[int]     `json:"concurrency"`
}

// change is the catalog change r asks for: nil for a limit r leaves
// alone, 0 for one it returns to the default.
func (r patchRequest) change() tenants.LimitsChange {
	if !r.Limits.Set {
		return tenants.LimitsChange{}
	}
	if r.Limits.Value == nil {
		zero, zeroRate := 0, 0.0
		return tenants.LimitsChange{Rate: &zeroRate, Burst: &zero, Concurrency: &zero}
	}
	l := r.Limits.Value
	return tenants.LimitsChange{Rate: l.Rate.orZero(), Burst: l.Burst.orZero(), Concurrency: l.Concurrency.orZero()}
}

func (r patchRequest) Valid() error {
	var fields []FieldError
	if r.Status != nil && *r.Status != tenants.StatusActive && *r.Status != tenants.StatusSuspended {
		fields = append(fields, FieldError{Field: "status", Message: fmt.Sprintf("must be %q or %q", tenants.StatusActive, tenants.StatusSuspended)})
	}
	if err := r.change().Valid(); err != nil {
		// Valid joins one ErrInvalidLimit per field, each naming it.
		var joined interface{ Unwrap() []error }
		errs := []error{err}
		if errors.As(err, &joined) {
			errs = joined.Unwrap()
		}
		for _, e := range errs {
			if fe, ok := fault.As(e); ok {
				fields = append(fields, FieldError{Field: "limits." + fe.Field, Message: fe.Message})
			}
		}
	}
	if fields != nil {
		return invalid(fields...)
	}
	return nil
}

func (s *Server) handleTenantPatch(c *gin.Context) {
	var req patchRequest
	if !s.read(c, &req, mediaMergePatch, mediaJSON) {
		return
	}
	ch := req.change()
	if req.Status == nil && ch.Empty() {
		// An empty merge patch changes nothing.
		s.handleTenantShow(c)
		return
	}
	ctx, name := c.Request.Context(), c.Param("name")
	var t *tenants.Tenant
	var err error
	// Status first, then limits: each is one catalog change, announced
	// to every process as such.
	if req.Status != nil {
		t, err = s.catalog.SetStatus(ctx, name, *req.Status)
	}
	if err == nil && !ch.Empty() {
		t, err = s.catalog.SetLimits(ctx, name, ch)
	}
	if err != nil {
		s.respondError(c, err)
		return
	}
	s.writeJSON(c, http.StatusOK, s.viewOf(t))
}

// optional is a member of a JSON merge patch: Set tells a member that is
// present (Value nil for null) from one left out, which a plain pointer
// cannot.
type optional[T any] struct {
	Set   bool
	Value *T
}

// UnmarshalJSON records that the member is present; encoding/json calls
// it for null too. An object member refuses unknown fields, as the
// request's top level does.
func (o *optional[T]) UnmarshalJSON(b []byte) error {
	o.Set, o.Value = true, nil
	if bytes.Equal(b, []byte("null")) {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var v T
	if err := dec.Decode(&v); err != nil {
		return err
	}
	o.Value = &v
	return nil
}

// orZero is the member as a limits change: nil when left out, 0 when
// null, the value otherwise.
func (o optional[T]) orZero() *T {
	switch {
	case !o.Set:
		return nil
	case o.Value == nil:
		var zero T
		return &zero
	}
	return o.Value
}

func (s *Server) handleTenantSuspend(c *gin.Context) { s.setStatus(c, tenants.StatusSuspended) }

func (s *Server) handleTenantResume(c *gin.Context) { s.setStatus(c, tenants.StatusActive) }

func (s *Server) setStatus(c *gin.Context, st tenants.Status) {
	t, err := s.catalog.SetStatus(c.Request.Context(), c.Param("name"), st)
	if err != nil {
		s.respondError(c, err)
		return
	}
	s.writeJSON(c, http.StatusOK, s.viewOf(t))
}

// removal is the answer to DELETE /admin/tenants/{name}.
type removal struct {
	Name        string `json:"name"`
	DataDropped bool   `json:"data_dropped"`
	// ArchivedAs is where the data was kept, unless it was dropped.
	ArchivedAs string `json:"archived_as,omitempty"`
}

func (s *Server) handleTenantDelete(c *gin.Context) {
	drop := false
	if v, ok := c.GetQuery("drop_data"); ok {
		b, err := strconv.ParseBool(v)
		if err != nil {
			s.respondError(c, problem.BadQuery(FieldError{Field: "drop_data", Message: "must be true or false"}))
			return
		}
		drop = b
	}
	name := c.Param("name")
	// Once started, a removal keeps the tenant out of service until it
	// completes, so it is not abandoned when the operator's client goes
	// away; the request's deadline still bounds it.
	ctx := context.WithoutCancel(c.Request.Context())
	if d, ok := c.Request.Context().Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, d)
		defer cancel()
	}
	archived, err := s.catalog.Remove(ctx, name, drop)
	if err != nil {
		s.respondError(c, err)
		return
	}
	s.writeJSON(c, http.StatusOK, removal{Name: name, DataDropped: drop, ArchivedAs: archived})
}

// hostRequest is the body of POST /admin/tenants/{name}/hosts.
type hostRequest struct {
	Host string `json:"host"`
}

func (r hostRequest) Valid() error {
	if _, err := tenants.NormalizeHost(r.Host, false); err != nil {
		return invalid(FieldError{Field: "host", Message: message(err)})
	}
	return nil
}

// handleHostAdd adds a host and answers with the tenant. Adding a host the
// tenant already has changes nothing and is not an error.
func (s *Server) handleHostAdd(c *gin.Context) {
	var req hostRequest
	if !s.read(c, &req, mediaJSON) {
		return
	}
	t, err := s.catalog.AddHost(c.Request.Context(), c.Param("name"), req.Host)
	if err != nil {
		s.respondError(c, err)
		return
	}
	s.writeJSON(c, http.StatusOK, s.viewOf(t))
}

func (s *Server) handleHostRemove(c *gin.Context) {
	ctx, name, host := c.Request.Context(), c.Param("name"), c.Param("host")
	err := s.catalog.RemoveHost(ctx, name, host)
	switch {
	case err == nil:
		c.Status(http.StatusNoContent)
		return
	case errors.Is(err, tenants.ErrNotFound) || errors.Is(err, tenants.ErrMalformedHost):
		// A host that cannot be parsed cannot be in the catalog either.
		// Say which of tenant and host is missing.
		if _, gerr := s.catalog.Get(ctx, name); gerr != nil {
			s.respondError(c, gerr)
			return
		}
		s.respondError(c, newRequestError(http.StatusNotFound, "host-not-found", "Host not found",
			fmt.Sprintf("Tenant %q does not answer on host %q.", name, host)))
		return
	}
	s.respondError(c, err)
}
