// Package app assembles a tenantry process from its configuration: it
// opens the pool, builds the catalog, the resolver, the scope and the
// handlers with explicit constructors, and serves every listener. main and
// the end-to-end tests both start the service through it.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"gorm.io/gorm"

	"tenantry/admin"
	"tenantry/config"
	"tenantry/database"
	"tenantry/fault"
	"tenantry/handlers"
	"tenantry/metrics"
	"tenantry/middleware"
	"tenantry/migrations"
	"tenantry/stats"
	"tenantry/tenants"
	"tenantry/web"
)

// App is a built, not yet serving, tenantry process.
type App struct {
	Config   config.Config
	Log      *slog.Logger
	DB       *gorm.DB
	Catalog  *tenants.Catalog
	Resolver *tenants.Resolver
	// Limits applies the tenants' rate and concurrency limits.
	Limits  *tenants.Limiter
	Handler http.Handler
	// Metrics count both servers' requests and the catalog's work, and
	// are served at GET /metrics on the admin listener.
	Metrics *metrics.Metrics
	// Stats keeps every tenant's request figures of the last 15 minutes,
	// shown at GET /admin/tenants/{name}/stats.
	Stats *stats.Stats

	// randomSessionKey is set when web.session_key was empty; Serve warns,
	// so one-shot CLI commands do not.
	randomSessionKey bool

	// admin and adminLn are set by Listen when admin.listen is configured;
	// adminOpenAPI is the document the admin API serves.
	admin        *admin.Server
	adminLn      net.Listener
	adminOpenAPI []byte
}

// Option supplies what Open needs besides the configuration.
type Option func(*options)

type options struct {
	openAPI          []byte
	adminOpenAPI     []byte
	tenantMigrations migrations.Set
	readOnly         bool
	// health follows the database for the pool and the readiness check;
	// Open makes it.
	health *database.Health
}

// WithOpenAPI makes every tenant host serve spec at GET /openapi.yaml.
func WithOpenAPI(spec []byte) Option {
	return func(o *options) { o.openAPI = spec }
}

// WithAdminOpenAPI makes the admin listener serve spec at
// GET /admin/openapi.yaml, behind the admin token like every admin route.
func WithAdminOpenAPI(spec []byte) Option {
	return func(o *options) { o.adminOpenAPI = spec }
}

// WithTenantMigrations makes the process provision, migrate and require
// set instead of migrations.Tenant(); tests use it to put tenants behind.
func WithTenantMigrations(set migrations.Set) Option {
	return func(o *options) { o.tenantMigrations = set }
}

// Open connects to the database, installs the tenant scope and brings the
// shared catalog up to date (unless ReadOnly). It does not seed or serve.
func Open(ctx context.Context, cfg config.Config, log *slog.Logger, opts ...Option) (*App, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	o.health = database.NewHealth(log)
	db, dialect, err := database.Open(ctx, cfg.Database, log, database.RouteBy(tenants.RouteKey), database.WithHealth(o.health),
		database.LogSlowerThan(cfg.Log.SlowStatement), database.WithPlacements(cfg.Databases, tenants.PlacementKey))
	if err != nil {
		return nil, err
	}
	a, err := build(ctx, cfg, log, db, dialect, o)
	if err != nil {
		_ = database.Close(db)
		return nil, err
	}
	return a, nil
}

func build(ctx context.Context, cfg config.Config, log *slog.Logger, db *gorm.DB, dialect migrations.Dialect, o options) (*App, error) {
	layout, err := tenants.NewLayout(tenants.Strategy(cfg.Tenancy.Strategy), dialect)
	if err != nil {
		return nil, err
	}
	scope, err := tenants.NewScope(db, layout)
	if err != nil {
		return nil, err
	}
	var catOpts []tenants.CatalogOption
	if o.tenantMigrations != nil {
		catOpts = append(catOpts, tenants.WithMigrations(o.tenantMigrations))
	}
	catalog := tenants.NewCatalog(db, layout, log, catOpts...)
	if !o.readOnly {
		if err := catalog.Bootstrap(ctx); err != nil {
			return nil, fmt.Errorf("bootstrap catalog: %w", err)
		}
	}
	resolver := tenants.NewResolver(catalog, cfg.Tenancy.NegativeCacheTTL)
	// Every committed change drops this process's cache at once and, on
	// PostgreSQL, is announced to the other processes on the database
	// (see Serve). The CLI builds its catalog here too, so its changes are
	// announced the same way.
	var notifier *tenants.Notifier
	if dialect == migrations.Postgres {
		notifier = tenants.NewNotifier(db, processName(), log)
	}
	catalog.OnChange(func(ctx context.Context) {
		resolver.Invalidate()
		if notifier != nil {
			_ = notifier.Notify(ctx) // logged there; the periodic refresh covers a lost one
		}
	})
	mw, err := tenants.NewMiddleware(resolver, cfg.Server.TrustedProxies, catalog.Migrations().Latest())
	if err != nil {
		return nil, err
	}
	placements, err := database.PlacementsOf(db)
	if err != nil {
		return nil, err
	}
	pool, _ := placements.Router("")
	dbs := []metrics.DatabaseSource{{Name: placements.Control(), Pool: pool, Health: o.health}}
	for _, name := range placements.Names()[1:] {
		r, _ := placements.Router(name)
		h, _ := placements.Health(name)
		dbs = append(dbs, metrics.DatabaseSource{Name: name, Pool: r, Health: h})
	}
	// Built once the resolver and pools exist: a scrape reads them.
	m := metrics.New(metrics.Options{TenantSeries: cfg.Metrics.TenantSeries},
		metrics.Sources{Resolver: resolver, Databases: dbs})
	catalog.OnEvents(m.CatalogEvents())
	pages, err := web.New()
	if err != nil {
		return nil, err
	}
	sessionKey, generated := web.SessionKey(cfg.Web.SessionKey)
	limits := tenants.NewLimiter(tenants.LimitDefaults{Rate: cfg.Tenancy.RateLimit, Burst: cfg.Tenancy.RateBurst,
		Concurrency: cfg.Tenancy.MaxConcurrentPerTenant, Wait: cfg.Tenancy.ConcurrencyWait,
		Lend: config.LendLimit(cfg.Database.MaxOpenConns), RefusalHold: cfg.Tenancy.RefusalHold,
		MaxHeld: cfg.Tenancy.MaxHeldRefusals}, tenants.LimiterLog(log))
	// Bounded (database.ReadyTimeout) so that /readyz answers in time
	// during any fault, and reported to the same Health as every statement.
	ready := func(ctx context.Context) error { return o.health.Check(ctx, pool.PingContext) }
	// Per-tenant request figures for every tenant, in bounded memory.
	st := stats.New()
	h := handlers.New(handlers.Deps{
		Log:         log,
		Scope:       scope,
		Tenants:     mw,
		Limits:      limits,
		Ready:       ready,
		MaxBody:     cfg.Server.MaxBodyBytes,
		OpenAPI:     o.openAPI,
		Pages:       pages,
		SessionKey:  sessionKey,
		AccessLines: cfg.Log.Access,
		Observers:   []middleware.Observer{m, st},
	})
	// Every request of the tenant listeners gets server.request_timeout.
	handler := m.Track("tenants", middleware.Deadline(h, cfg.Server.RequestTimeout, nil))
	return &App{Config: cfg, Log: log, DB: db, Catalog: catalog, Resolver: resolver, Limits: limits, Handler: handler,
		Metrics: m, Stats: st, randomSessionKey: generated, adminOpenAPI: o.adminOpenAPI}, nil
}

// Seed ensures every tenant of the configuration exists and is migrated.
func (a *App) Seed(ctx context.Context) error {
	for _, s := range a.Config.Tenants {
		t, err := a.Catalog.Ensure(ctx, tenants.Spec{Name: s.Name, Schema: s.Schema, Hosts: s.Hosts})
		if err != nil {
			return fmt.Errorf("seed tenant %q: %w", s.Name, err)
		}
		a.Log.InfoContext(ctx, "tenant ready", "tenant", t.Name, "schema", t.Schema, "hosts", t.HostNames())
	}
	return nil
}

// Close closes the pool.
func (a *App) Close() error { return database.Close(a.DB) }

// Listen opens every configured listener, so that a port in use fails
// start-up before anything is served.
func (a *App) Listen() ([]net.Listener, error) {
	var lns []net.Listener
	for _, addr := range a.Config.Server.Listen {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			for _, l := range lns {
				_ = l.Close()
			}
			return nil, fmt.Errorf("listen on %s: %w", addr, err)
		}
		lns = append(lns, ln)
	}
	if err := a.ListenAdmin(); err != nil {
		for _, l := range lns {
			_ = l.Close()
		}
		return nil, err
	}
	return lns, nil
}

// ListenAdmin opens the admin listener and builds the admin API when
// admin.listen is set; Serve then serves it. With an empty admin.token it
// generates a token for this process and logs it once at WARN, so the
// admin API is never open without one (config refuses an empty token on a
// non-loopback address outright). Listen calls it; a caller that opens the
// tenant listeners itself (testenv) calls it alone.
func (a *App) ListenAdmin() error {
	ac := a.Config.Admin
	if ac.Listen == "" {
		return nil
	}
	ln, err := net.Listen("tcp", ac.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s (admin): %w", ac.Listen, err)
	}
	token := ac.Token
	if token == "" {
		if token, err = admin.NewToken(); err != nil {
			_ = ln.Close()
			return err
		}
		a.Log.Warn("admin.token is empty: generated a token valid for this process only; set admin.token (or TENANTRY_ADMIN_TOKEN) to choose one",
			"admin_addr", ln.Addr().String(), "admin_token", token)
	}
	srv, err := admin.NewServer(admin.Deps{Log: a.Log, Catalog: a.Catalog, Token: token, OpenAPI: a.adminOpenAPI,
		AccessLines: a.Config.Log.Access, Observers: []middleware.Observer{a.Metrics},
		Metrics: a.Metrics.Handler(), MetricsToken: ac.MetricsToken, Stats: a.Stats})
	if err != nil {
		_ = ln.Close()
		return err
	}
	a.admin, a.adminLn = srv, ln
	return nil
}

// AdminAddr returns the address the admin API listens on, or "" when
// Listen opened none.
func (a *App) AdminAddr() string {
	if a.adminLn == nil {
		return ""
	}
	return a.adminLn.Addr().String()
}

// sqliteRefresh is how often a SQLite process reloads the catalog. SQLite
// has no LISTEN/NOTIFY, so a short refresh is what makes another process's
// change take effect within a second.
const sqliteRefresh = 500 * time.Millisecond

// refreshInterval is the period of the full catalog reload: the safety net
// under LISTEN/NOTIFY on PostgreSQL, the only mechanism on SQLite.
func (a *App) refreshInterval() time.Duration {
	if a.Config.Database.Driver == "sqlite" {
		return min(a.Config.Tenancy.RefreshInterval, sqliteRefresh)
	}
	return a.Config.Tenancy.RefreshInterval
}

// processName names this process in catalog-change notifications.
func processName() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s:%d", host, os.Getpid())
}

// Serve serves the tenant handler on every listener, and the admin API on
// the admin listener that Listen opened, until ctx ends; then it stops
// accepting, lets in-flight requests (and a running admin migration)
// finish within server.shutdown_timeout and returns. Meanwhile it keeps
// the resolver in step with the catalog: a full reload every
// refreshInterval and, on PostgreSQL, a reload on every change any
// process announces. The pool is left open for the caller to close.
func (a *App) Serve(ctx context.Context, lns []net.Listener) error {
	sc := a.Config.Server
	if a.randomSessionKey {
		a.Log.Warn("web.session_key is not set; flash messages are signed with a random key, so they do not survive a restart or reach another process")
	}
	var live *tenants.Listener
	if a.Config.Database.Driver == "postgres" {
		var err error
		if live, err = tenants.NewListener(a.Config.Database.DSN, a.Resolver, a.Log); err != nil {
			for _, ln := range lns {
				_ = ln.Close()
			}
			if a.adminLn != nil {
				_ = a.adminLn.Close()
			}
			return err
		}
		live.ReportLag = a.Metrics.CatalogLag
	}

	type served struct {
		srv  *http.Server
		ln   net.Listener
		what string
	}
	var all []served
	for _, ln := range lns {
		all = append(all, served{a.httpServer(ctx, a.Handler), ln, "tenants"})
	}
	if a.adminLn != nil {
		h := a.Metrics.Track("admin", middleware.Deadline(a.admin, sc.RequestTimeout, adminOutlasts))
		all = append(all, served{a.httpServer(ctx, h), a.adminLn, "admin"})
	}
	errc := make(chan error, len(all))
	for _, s := range all {
		a.Log.Info("listening", "addr", s.ln.Addr().String(), "serves", s.what)
		go func() {
			if err := s.srv.Serve(s.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("serve %s: %w", s.ln.Addr(), err)
			}
		}()
	}

	bgCtx, stopBg := context.WithCancel(ctx)
	var bg sync.WaitGroup
	defer func() { stopBg(); bg.Wait() }()
	bg.Go(func() {
		a.Resolver.Run(bgCtx, a.refreshInterval(), func(err error) {
			a.Log.Warn("catalog refresh failed; keeping the cached catalog", "err", err)
		})
	})
	// Re-ranks the tenants that keep metrics series of their own.
	bg.Go(func() { a.Metrics.Run(bgCtx) })
	// A move that a killed process left half-way keeps its tenant's writes
	// paused (or its source unretired) until someone finishes it: every
	// instance looks at start and every RecoverMovesEvery after, so a
	// crashed mover pauses its tenant's writes for seconds, not until the
	// next deploy. Moves still running hold their lock and are left alone.
	bg.Go(func() { a.recoverMoves(bgCtx) })
	if live != nil {
		bg.Go(func() {
			if err := live.Run(bgCtx); err != nil {
				a.Log.Error("catalog listener stopped; changes by other processes now wait for the periodic refresh", "err", err)
			}
		})
	}

	var serveErr error
	select {
	case <-ctx.Done():
		a.Log.Info("shutting down", "timeout", sc.ShutdownTimeout)
	case serveErr = <-errc:
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), sc.ShutdownTimeout)
	defer cancel()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	for _, s := range all {
		wg.Go(func() {
			if err := s.srv.Shutdown(shutdownCtx); err != nil {
				_ = s.srv.Close()
				mu.Lock()
				errs = append(errs, fmt.Errorf("shutdown: %w", err))
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if pool, err := database.Pool(a.DB); err == nil {
		// How the tenant-affine pool held up over the process's life.
		st := pool.Stats()
		a.Log.Info("database pool", "groups", pool.Groups(), "overflows", pool.Overflows(),
			"waits", st.WaitCount, "wait_time", st.WaitDuration.String())
	}
	if a.admin != nil {
		// No admin request can start a run any more; let a running one end.
		if err := a.admin.Shutdown(shutdownCtx); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(append([]error{serveErr}, errs...)...)
}

// RecoverMovesEvery is how often a serving instance finishes the moves
// that a killed process left (tenants.Catalog.RecoverMoves): one query
// when there are none.
const RecoverMovesEvery = 5 * time.Second

func (a *App) recoverMoves(ctx context.Context) {
	tick := time.NewTicker(RecoverMovesEvery)
	defer tick.Stop()
	for {
		// A database that is down is the health log's to report, once,
		// not this loop's every few seconds.
		if err := a.Catalog.RecoverMoves(ctx); err != nil && ctx.Err() == nil && !fault.KindOf(err).Transient() {
			a.Log.Warn("could not finish the moves a stopped process left; trying again", "err", err, "in", RecoverMovesEvery)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// adminOutlasts reports the admin requests that keep no request
// deadline: starting a migration run (the run itself goes on in the
// background, on the admin server's own context, so a deadline on its
// request would bound nothing but the start), and the profiles, which run
// for as many seconds as the operator asks.
func adminOutlasts(r *http.Request) bool {
	return (r.Method == http.MethodPost && r.URL.Path == "/admin/migrate") ||
		strings.HasPrefix(r.URL.Path, "/debug/pprof/")
}

// httpServer returns a server for h with the configured timeouts. Its
// requests' contexts outlive ctx, so that shutdown lets them finish.
func (a *App) httpServer(ctx context.Context, h http.Handler) *http.Server {
	sc := a.Config.Server
	return &http.Server{
		Handler:           h,
		ReadTimeout:       sc.ReadTimeout,
		ReadHeaderTimeout: sc.ReadHeaderTimeout,
		WriteTimeout:      sc.WriteTimeout,
		IdleTimeout:       sc.IdleTimeout,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(a.Log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
}
