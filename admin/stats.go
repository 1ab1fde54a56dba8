package admin

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"tenantry/stats"
	"tenantry/tenants"
)

// TenantStats is GET /admin/tenants/{name}/stats: what a tenant's
// requests were on this instance over the last 1, 5 and 15 minutes, and
// what its data takes in the database. `tenantry tenants stats` prints
// it, and builds one without Requests when no instance answers.
type TenantStats struct {
	Name string `json:"name"`
	// Requests are this instance's windows (package stats), the shortest
	// first; nil (null) when the figures are not at hand: an instance
	// built without them, or the CLI reading the database alone.
	Requests []stats.Window `json:"requests"`
	// Storage is read from the database at the time of the request
	// (tenants.Usage): exact row counts, so its cost grows with the
	// tenant's data.
	Storage *tenants.Storage `json:"storage"`
}

// handleTenantStats answers 404 for a tenant the catalog does not have,
// even if this instance still holds figures under its name (a removed
// tenant's entry lasts until the stats' sweep).
func (s *Server) handleTenantStats(c *gin.Context) {
	ctx := c.Request.Context()
	t, err := s.catalog.Get(ctx, c.Param("name"))
	if err != nil {
		s.respondError(c, err)
		return
	}
	st, err := tenants.NewUsage(s.catalog).Measure(ctx, t)
	if err != nil {
		s.respondError(c, err)
		return
	}
	out := TenantStats{Name: t.Name, Storage: st}
	if s.stats != nil {
		out.Requests = s.stats.Tenant(t.Name, t.CreatedAt)
	}
	s.writeJSON(c, http.StatusOK, out)
}
