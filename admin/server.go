package admin

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"tenantry/middleware"
	"tenantry/stats"
	"tenantry/tenants"
)

// DefaultMaxBody bounds admin request bodies when Deps.MaxBody is zero:
// no admin request needs more than a tenant's name, schema and hosts.
const DefaultMaxBody = 64 << 10

// Deps are everything the admin API needs, passed in explicitly.
type Deps struct {
	Log *slog.Logger
	// Catalog is the one implementation of every tenant operation, shared
	// with the CLI; the handlers only decode, call it and encode.
	Catalog *tenants.Catalog
	// Token is the bearer token every request must present. It must not
	// be empty: an admin API without a token is never served.
	Token string
	// MaxBody is the largest request body accepted (413 beyond it);
	// DefaultMaxBody when zero.
	MaxBody int64
	// OpenAPI is the admin API's OpenAPI document (openapi-admin.yaml),
	// served at GET /admin/openapi.yaml; without it that path is 404.
	OpenAPI []byte
	// AccessLines writes one access line per request (log.access);
	// Observers are told of every request either way (middleware.Access).
	AccessLines bool
	Observers   []middleware.Observer
	// Metrics, when set, is served at GET /metrics (MetricsPath): package
	// metrics' Handler. MetricsToken, when set, is a second bearer token
	// accepted on that route and nowhere else (admin.metrics_token), so
	// that a scraper never holds the token that can remove tenants.
	Metrics      http.Handler
	MetricsToken string
	// Stats, when set, gives GET /admin/tenants/{name}/stats its request
	// figures (the same Stats the tenant server observes); without it
	// they are null.
	Stats *stats.Stats
	// MoveTimeout bounds a move started by POST
	// /admin/tenants/{name}/move, which runs past server.request_timeout
	// (handleTenantMove); DefaultMoveTimeout when zero.
	MoveTimeout time.Duration
}

// Server is the admin API: an http.Handler plus the background migration
// run it may have started, which Shutdown waits for.
type Server struct {
	log       *slog.Logger
	catalog   *tenants.Catalog
	tokenHash [sha256.Size]byte
	maxBody   int64
	openAPI   []byte
	engine    *gin.Engine
	migration *migration
	throttle  *throttle

	// ctx is the parent of background work (migration runs); stop
	// cancels it when the server shuts down.
	ctx  context.Context
	stop context.CancelFunc

	// metrics is Deps.Metrics; metricsTokenHash is the digest of
	// Deps.MetricsToken, when hasMetricsToken.
	metrics          http.Handler
	metricsTokenHash [sha256.Size]byte
	hasMetricsToken  bool

	// stats is Deps.Stats.
	stats *stats.Stats

	// moveTimeout is Deps.MoveTimeout.
	moveTimeout time.Duration
}

// NewServer returns the admin API over d. It refuses an empty token.
func NewServer(d Deps) (*Server, error) {
	if d.Token == "" {
		return nil, errors.New("admin: empty token; the admin API is never served without one")
	}
	if d.MaxBody <= 0 {
		d.MaxBody = DefaultMaxBody
	}
	if d.MoveTimeout <= 0 {
		d.MoveTimeout = DefaultMoveTimeout
	}
	ctx, stop := context.WithCancel(context.Background())
	s := &Server{
		log:       d.Log,
		catalog:   d.Catalog,
		tokenHash: sha256.Sum256([]byte(d.Token)),
		maxBody:   d.MaxBody,
		openAPI:   d.OpenAPI,
		migration: &migration{},
		throttle:  newThrottle(FailedAuthEvery, FailedAuthBurst, time.Now),
		ctx:       ctx,
		stop:      stop,

		metrics:          d.Metrics,
		metricsTokenHash: sha256.Sum256([]byte(d.MetricsToken)),
		hasMetricsToken:  d.MetricsToken != "",
		stats:            d.Stats,
		moveTimeout:      d.MoveTimeout,
	}
	gin.SetMode(gin.ReleaseMode)
	e := gin.New()
	_ = e.SetTrustedProxies(nil)
	e.HandleMethodNotAllowed = true
	// A redirect would answer before the route's own checks; a wrong path
	// is a plain 404 problem.
	e.RedirectTrailingSlash = false
	e.Use(middleware.Access(s.log, middleware.AccessOptions{Server: "admin", Lines: d.AccessLines}, d.Observers...),
		middleware.Recover(s.log, s.writeProblem), s.authenticate, middleware.LimitBody(s.maxBody, s.tooLarge))
	s.routes(e)
	s.engine = e
	return s, nil
}

// ServeHTTP serves the admin API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.engine.ServeHTTP(w, r) }

// Shutdown lets a running migration finish until ctx ends, then cancels it
// (the tenant being migrated rolls back; a later run picks it up) and waits
// for it to stop. Call it once the admin listener no longer accepts
// requests.
func (s *Server) Shutdown(ctx context.Context) error {
	defer s.stop()
	done := s.migration.running()
	if done == nil {
		return nil
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.stop()
		<-done
		return fmt.Errorf("admin: migration run cancelled by shutdown: %w", ctx.Err())
	}
}

// NewToken returns a random bearer token (256 bits, URL-safe base64), for
// processes started with an empty admin.token.
func NewToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("admin: generate token: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// authenticate refuses every request, known route or not, that lacks the
// token, so that nothing about the API can be learnt without it. Both
// sides are hashed before the constant-time comparison:
// subtle.ConstantTimeCompare returns early on a length mismatch, and
// comparing fixed-size digests keeps even the token's length secret.
//
// An address that sent too many wrong tokens is answered 429 before its
// token is looked at (throttle.go).
func (s *Server) authenticate(c *gin.Context) {
	addr := c.RemoteIP()
	if wait := s.throttle.wait(addr); wait > 0 {
		c.Header("Retry-After", strconv.Itoa(int((wait+time.Second-1)/time.Second)))
		s.respondError(c, errTooManyWrongTokens)
		c.Abort()
		return
	}
	scheme, token, _ := strings.Cut(c.GetHeader("Authorization"), " ")
	token = strings.TrimSpace(token)
	if !strings.EqualFold(scheme, "Bearer") || token == "" {
		// No credentials at all: challenge without an error code (RFC 6750).
		c.Header("WWW-Authenticate", `Bearer realm="tenantry-admin"`)
		s.respondError(c, errUnauthorized)
		c.Abort()
		return
	}
	if !s.tokenMatches(token) && !s.metricsTokenMatches(c, token) {
		s.throttle.failed(addr)
		s.log.WarnContext(c.Request.Context(), "admin request with a wrong token", "remote", c.Request.RemoteAddr, "route", middleware.Route(c))
		c.Header("WWW-Authenticate", `Bearer realm="tenantry-admin", error="invalid_token"`)
		s.respondError(c, errUnauthorized)
		c.Abort()
		return
	}
	c.Next()
}

// tokenMatches compares token with the admin token in constant time: both
// sides are SHA-256 digests of the same size, so neither how much of the
// token a guess gets right nor the token's length shows in the time taken
// (BenchmarkTokenMatches, docs/BENCHMARKS.md).
func (s *Server) tokenMatches(token string) bool {
	got := sha256.Sum256([]byte(token))
	return subtle.ConstantTimeCompare(got[:], s.tokenHash[:]) == 1
}

// metricsTokenMatches reports whether c is a request for the metrics route
// carrying the metrics token, compared as tokenMatches compares the admin
// token. On any other route the metrics token is a wrong token.
func (s *Server) metricsTokenMatches(c *gin.Context, token string) bool {
	if !s.hasMetricsToken || c.FullPath() != MetricsPath {
		return false
	}
	got := sha256.Sum256([]byte(token))
	return subtle.ConstantTimeCompare(got[:], s.metricsTokenHash[:]) == 1
}

// tooLarge answers a body whose Content-Length is over maxBody (see
// middleware.LimitBody).
func (s *Server) tooLarge(c *gin.Context) { s.respondError(c, errTooLarge) }
