package handlers

import (
	"net/http"

	"github.com/gin-gonic/gin"
)

// getHead is the methods of a page: HEAD answers as GET does, without the
// body.
var getHead = []string{http.MethodGet, http.MethodHead}

// routes lists every route. Health checks answer on any host; everything
// else first resolves the tenant from the Host header.
func (s *Server) routes(e *gin.Engine) {
	// GET only, unlike the pages: the contract tests hold these routes to
	// openapi.yaml, which documents no HEAD operation.
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
		// Pages and their assets answer HEAD as GET: browsers, link
		// checkers and uptime monitors send it. net/http drops the body of
		// a HEAD response, so the GET handlers serve both.
		e.Match(getHead, "/static/*file", s.handleStatic)
		p := e.Group("/", s.pageRoute, s.Tenants.Handler(s.respondError), s.sameOrigin, s.limitBody)
		p.Match(getHead, "/", s.handlePageRoot)
		p.Match(getHead, "/users", s.handlePageUsers)
		p.POST("/users", s.handlePageUserCreate)
		p.Match(getHead, "/users/:id/edit", s.handlePageUserEdit)
		p.POST("/users/:id", s.handlePageUserUpdate)
		p.Match(getHead, "/users/:id/delete", s.handlePageUserDeleteConfirm)
		p.POST("/users/:id/delete", s.handlePageUserDelete)
	}

	e.NoRoute(s.Tenants.Handler(s.respondError), func(c *gin.Context) { s.respondError(c, errNoRoute) })
	// Gin answers a wrong method outside the page group: pageRoute marks
	// it, so that on a page's path it is a page (wantsHTML still answers
	// API paths with problem+json).
	e.NoMethod(s.pageRoute, func(c *gin.Context) { s.respondError(c, errNoMethod) })
}
