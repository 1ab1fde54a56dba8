package handlers

import "github.com/gin-gonic/gin"

// routes lists every route. Health checks answer on any host; everything
// else first resolves the tenant from the Host header.
func (s *Server) routes(e *gin.Engine) {
	e.GET("/healthz", s.handleHealth)
	e.GET("/readyz", s.handleReady)

	// sameOrigin refuses unsafe requests a browser sends from another
	// origin (another workspace's port included); programs pass.
	t := e.Group("/", s.Tenants.Handler(s.respondError), s.sameOrigin, s.limitBody)
	t.GET("/openapi.yaml", s.handleOpenAPI)
	t.GET("/api/tenant", s.handleTenantShow)
	t.GET("/api/users", s.handleUserList)
	t.POST("/api/users", s.handleUserCreate)
	t.GET("/api/users/:id", s.handleUserShow)
	t.PUT("/api/users/:id", s.handleUserReplace)
	t.PATCH("/api/users/:id", s.handleUserPatch)
	t.DELETE("/api/users/:id", s.handleUserDelete)

	// HTML pages for people (issue #3): server-rendered, no JavaScript, and
	// every error on them is an HTML page (pageRoute, wantsHTML). The
	// stylesheet answers on any host: the unknown-host page needs it too.
	if s.Pages != nil {
		e.GET("/static/*file", s.handleStatic)
		p := e.Group("/", s.pageRoute, s.Tenants.Handler(s.respondError), s.sameOrigin, s.limitBody)
		p.GET("/", s.handlePageRoot)
		p.GET("/users", s.handlePageUsers)
		p.POST("/users", s.handlePageUserCreate)
		p.GET("/users/:id/edit", s.handlePageUserEdit)
		p.POST("/users/:id", s.handlePageUserUpdate)
		p.GET("/users/:id/delete", s.handlePageUserDeleteConfirm)
		p.POST("/users/:id/delete", s.handlePageUserDelete)
	}

	e.NoRoute(s.Tenants.Handler(s.respondError), func(c *gin.Context) { s.respondError(c, errNoRoute) })
	e.NoMethod(func(c *gin.Context) { s.respondError(c, errNoMethod) })
}
