package handlers

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"gorm.io/gorm"

	"tenantry/problem"
	"tenantry/tenants"
	"tenantry/web"
)

// Deps are everything the handlers need, passed in explicitly.
type Deps struct {
	Log     *slog.Logger
	Scope   *tenants.Scope
	Tenants *tenants.Middleware
	Ready   func(ctx context.Context) error
	MaxBody int64
	// OpenAPI is the OpenAPI document served at GET /openapi.yaml on every
	// tenant host; when empty that path answers 404.
	OpenAPI []byte
	// Pages renders the HTML pages and serves their stylesheet; when nil
	// the pages are not served and every error is problem+json.
	Pages *web.Renderer
	// SessionKey signs the pages' flash cookies (HMAC-SHA256).
	SessionKey []byte
}

// Server holds the handlers' dependencies.
type Server struct {
	Deps
}

// New returns the handler served on every tenant listener.
func New(d Deps) http.Handler {
	gin.SetMode(gin.ReleaseMode)
	s := &Server{Deps: d}
	e := gin.New()
	// Gin trusts every proxy by default; the tenant middleware decides
	// about forwarding headers itself, from server.trusted_proxies.
	_ = e.SetTrustedProxies(nil)
	e.HandleMethodNotAllowed = true
	e.Use(s.recover, s.accessLog)
	s.routes(e)
	return e
}

// recover turns a panic into a logged 500 problem instead of a dropped
// connection.
func (s *Server) recover(c *gin.Context) {
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.Log.ErrorContext(c.Request.Context(), "panic", "panic", v, "path", c.Request.URL.Path)
			if !c.Writer.Written() {
				s.writeProblem(c, problem.Internal())
			}
			c.Abort()
		}
	}()
	c.Next()
}

// accessLog records every request at debug level. The record is built
// only when debug is enabled: its attributes cost allocations on every
// request, and in production the level is info.
func (s *Server) accessLog(c *gin.Context) {
	start := time.Now()
	c.Next()
	ctx := c.Request.Context()
	if !s.Log.Enabled(ctx, slog.LevelDebug) {
		return
	}
	attrs := []slog.Attr{
		slog.String("method", c.Request.Method), slog.String("path", c.Request.URL.Path), slog.String("host", c.Request.Host),
		slog.Int("status", c.Writer.Status()), slog.Int64("duration_ms", time.Since(start).Milliseconds()),
	}
	if t, ok := tenants.FromContext(ctx); ok {
		attrs = append(attrs, slog.String("tenant", t.Name))
	}
	s.Log.LogAttrs(ctx, slog.LevelDebug, "request", attrs...)
}

// limitBody refuses bodies over MaxBody: at once when Content-Length says
// so, and while reading otherwise. It runs in the route groups that read
// bodies, after the tenant middleware and pageRoute, so that its 413 is
// shown like every other error of the route: a page naming the workspace
// on a page route, problem+json on the API (see routes.go). Routes outside
// those groups never read the body.
func (s *Server) limitBody(c *gin.Context) {
	if c.Request.ContentLength > s.MaxBody {
		s.respondError(c, errTooLarge)
		c.Abort()
		return
	}
	// net/http gives a request without a body (every GET) http.NoBody,
	// which reads nothing: it needs no limit, and the reader would be an
	// allocation on every read request.
	if c.Request.Body != http.NoBody {
		c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, s.MaxBody)
	}
	c.Next()
}

// tenantDB returns the request's tenant session, or answers the error
// (as a page or as problem+json) and returns false.
func (s *Server) tenantDB(c *gin.Context) (*gorm.DB, bool) {
	db, err := s.Scope.DB(c.Request.Context())
	if err != nil {
		s.respondError(c, err)
		return nil, false
	}
	return db, true
}
