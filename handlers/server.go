package handlers

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/gin-gonic/gin"
	"gorm.io/gorm"

	"tenantry/middleware"
	"tenantry/tenants"
	"tenantry/web"
)

// Deps are everything the handlers need, passed in explicitly.
type Deps struct {
	Log     *slog.Logger
	Scope   *tenants.Scope
	Tenants *tenants.Middleware
	// Limits applies each tenant's rate and concurrency limits after the
	// tenant is resolved; nil limits nothing.
	Limits  *tenants.Limiter
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
	// Idempotency holds the keys of the requests in flight and the clock
	// of safe retries (idempotency.go); nil gets a fresh one on the real
	// clock.
	Idempotency *Idempotency
	// AccessLines writes one access line per request (log.access);
	// Observers (metrics, per-tenant stats) are told of every request
	// either way (middleware.Access).
	AccessLines bool
	Observers   []middleware.Observer
}

// Server holds the handlers' dependencies.
type Server struct {
	Deps
	// limitBody refuses bodies over MaxBody (middleware.LimitBody).
	limitBody gin.HandlerFunc
}

// New returns the handler served on every tenant listener.
func New(d Deps) http.Handler {
	gin.SetMode(gin.ReleaseMode)
	s := &Server{Deps: d}
	if s.Idempotency == nil {
		s.Idempotency = &Idempotency{}
	}
	// limitBody runs in the route groups that read bodies, after the
	// tenant middleware and pageRoute, so that its 413 is shown like every
	// other error of the route: a page naming the workspace on a page
	// route, problem+json on the API (see routes.go). Routes outside those
	// groups never read the body.
	s.limitBody = middleware.LimitBody(d.MaxBody, s.tooLarge)
	e := gin.New()
	// Gin trusts every proxy by default; the tenant middleware decides
	// about forwarding headers itself, from server.trusted_proxies.
	_ = e.SetTrustedProxies(nil)
	e.HandleMethodNotAllowed = true
	e.Use(middleware.Access(s.Log, middleware.AccessOptions{Server: "tenants", Lines: d.AccessLines}, d.Observers...),
		middleware.Recover(s.Log, s.writeProblem))
	s.routes(e)
	return e
}

// tooLarge answers a body whose Content-Length is over MaxBody (see
// middleware.LimitBody, which routes.go runs as limitBody).
func (s *Server) tooLarge(c *gin.Context) { s.respondError(c, errTooLarge) }

// tenantDB returns the request's tenant session, or answers the error
// (as a page or as problem+json) and returns false.
func (s *Server) tenantDB(c *gin.Context) (*gorm.DB, bool) {
	// A request with an idempotency key runs in the transaction that
	// stores its answer (idempotency.go).
	if tx := keyedTx(c); tx != nil {
		return tx, true
	}
	db, err := s.Scope.DB(c.Request.Context())
	if err != nil {
		s.respondError(c, err)
		return nil, false
	}
	return db, true
}
