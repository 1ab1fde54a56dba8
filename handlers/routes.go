package handlers

import "github.com/gin-gonic/gin"

// routes lists every route. Health checks answer on any host; everything
// else first resolves the tenant from the Host header.
func (s *Server) routes(e *gin.Engine) {
	e.GET("/healthz", s.handleHealth)
	e.GET("/readyz", s.handleReady)

	t := e.Group("/", s.Tenants.Handler(s.respondError))
	t.GET("/openapi.yaml", s.handleOpenAPI)
	t.GET("/api/tenant", s.handleTenantShow)
	t.GET("/api/users", s.handleUserList)
	t.POST("/api/users", s.handleUserCreate)
	t.GET("/api/users/:id", s.handleUserShow)
	t.PUT("/api/users/:id", s.handleUserReplace)
	t.PATCH("/api/users/:id", s.handleUserPatch)
	t.DELETE("/api/users/:id", s.handleUserDelete)

	e.NoRoute(s.Tenants.Handler(s.respondError), func(c *gin.Context) { s.respondError(c, errNoRoute) })
	e.NoMethod(func(c *gin.Context) { s.respondError(c, errNoMethod) })
}
