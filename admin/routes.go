package admin

import "github.com/gin-gonic/gin"

// routes lists every admin route. All of them, and the 404 and 405
// answers, sit behind authenticate (see NewServer).
func (s *Server) routes(e *gin.Engine) {
	e.GET("/admin/tenants", s.handleTenantList)
	e.POST("/admin/tenants", s.handleTenantCreate)
	e.GET("/admin/tenants/:name", s.handleTenantShow)
	e.PATCH("/admin/tenants/:name", s.handleTenantPatch)
	e.DELETE("/admin/tenants/:name", s.handleTenantDelete)
	e.POST("/admin/tenants/:name/hosts", s.handleHostAdd)
	e.DELETE("/admin/tenants/:name/hosts/:host", s.handleHostRemove)
	e.POST("/admin/tenants/:name/suspend", s.handleTenantSuspend)
	e.POST("/admin/tenants/:name/resume", s.handleTenantResume)
	e.GET("/admin/tenants/:name/stats", s.handleTenantStats)
	e.POST("/admin/tenants/:name/move", s.handleTenantMove)

	e.GET("/admin/databases", s.handleDatabaseList)

	e.POST("/admin/migrate", s.handleMigrateStart)
	e.GET("/admin/migrate", s.handleMigrateStatus)

	if len(s.openAPI) > 0 {
		// Without a document the path is 404, as any unknown path.
		e.GET("/admin/openapi.yaml", s.handleOpenAPI)
	}

	// The Go runtime's profiles, behind the token as everything here.
	s.pprofRoutes(e)

	if s.metrics != nil {
		// Prometheus' scrape target; the metrics token is accepted here
		// and only here (authenticate).
		e.GET(MetricsPath, gin.WrapH(s.metrics))
	}

	e.NoRoute(func(c *gin.Context) { s.respondError(c, errNoRoute) })
	e.NoMethod(func(c *gin.Context) { s.respondError(c, errNoMethod) })
}

// MetricsPath is where the Prometheus metrics are served, when Deps.Metrics
// is set.
const MetricsPath = "/metrics"

// Routes lists every route of the admin API, as method and gin path
// (/admin/tenants/:name), so that tests can hold them against the API's
// OpenAPI description (openapi-admin.yaml). It leaves out the profiling
// routes under /debug/pprof/ (pprof.go) and GET /metrics, and only those:
// they are net/http/pprof's and Prometheus', whose answers those projects
// define (profiles in their own formats, an HTML index, the exposition
// format), not operations of this API, and the document does not describe
// them. They sit behind the same token all the same (TestPprof,
// TestMetricsRoute).
func (s *Server) Routes() gin.RoutesInfo {
	var api gin.RoutesInfo
	for _, r := range s.engine.Routes() {
		if !isPprofRoute(r) && r.Path != MetricsPath {
			api = append(api, r)
		}
	}
	return api
}
