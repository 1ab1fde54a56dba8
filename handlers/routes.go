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
	// No redirects: Gin's would answer before the tenant is resolved, so an
	// unknown host would get a 301 rather than its 404, and the trailing
	// slash one builds its Location from X-Forwarded-Prefix, which anyone
	// can send. A path with a stray slash is a plain 404 of its host.
	e.RedirectTrailingSlash = false
	e.RedirectFixedPath = false

	// GET only, unlike the pages: the contract tests hold these routes to
	// openapi.yaml, which documents no HEAD operation.
	e.GET("/healthz", s.handleHealth)
	e.GET("/readyz", s.handleReady)

	// sameOrigin refuses unsafe requests a browser sends from another
	// origin (another workspace's port included); programs pass.
	t := e.Group("/", s.Tenants.Handler(s.respondError), s.Limits.Handler(s.respondError), s.sameOrigin, s.limitBody, s.idempotent)
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
		p := e.Group("/", s.pageRoute, s.Tenants.Handler(s.respondError), s.Limits.Handler(s.respondError), s.sameOrigin, s.limitBody, s.idempotent)
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
	// API paths with problem+json). The tenant is resolved first, as for
	// every other answer: an unknown host is 404 whatever the method, and
	// without the Allow header Gin has set, which would describe routes of
	// hosts it does not serve.
	e.NoMethod(s.pageRoute, s.Tenants.Handler(func(c *gin.Context, err error) {
		c.Writer.Header().Del("Allow")
		s.respondError(c, err)
	}), func(c *gin.Context) { s.respondError(c, errNoMethod) })
}
