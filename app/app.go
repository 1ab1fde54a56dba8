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
	"sync"

	"gorm.io/gorm"

	"tenantry/config"
	"tenantry/database"
	"tenantry/handlers"
	"tenantry/migrations"
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
	Handler  http.Handler
}

// Option supplies what Open needs besides the configuration.
type Option func(*options)

type options struct {
	openAPI []byte
}

// WithOpenAPI makes every tenant host serve spec at GET /openapi.yaml.
func WithOpenAPI(spec []byte) Option {
	return func(o *options) { o.openAPI = spec }
}

// Open connects to the database, installs the tenant scope and brings the
// shared catalog up to date. It does not seed or serve.
func Open(ctx context.Context, cfg config.Config, log *slog.Logger, opts ...Option) (*App, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	db, dialect, err := database.Open(ctx, cfg.Database, log)
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
	catalog := tenants.NewCatalog(db, layout, log)
	if err := catalog.Bootstrap(ctx); err != nil {
		return nil, fmt.Errorf("bootstrap catalog: %w", err)
	}
	resolver := tenants.NewResolver(catalog, cfg.Tenancy.NegativeCacheTTL)
	catalog.OnChange(func(context.Context) { resolver.Invalidate() })
	mw, err := tenants.NewMiddleware(resolver, cfg.Server.TrustedProxies, migrations.Tenant().Latest())
	if err != nil {
		return nil, err
	}
	sqlDB, err := db.DB()
	if err != nil {
		return nil, err
	}
	pages, err := web.New()
	if err != nil {
		return nil, err
	}
	sessionKey, generated := web.SessionKey(cfg.Web.SessionKey)
	if generated {
		log.Warn("web.session_key is not set; flash messages are signed with a random key, so they do not survive a restart or reach another process")
	}
	h := handlers.New(handlers.Deps{
		Log:        log,
		Scope:      scope,
		Tenants:    mw,
		Ready:      sqlDB.PingContext,
		MaxBody:    cfg.Server.MaxBodyBytes,
		OpenAPI:    o.openAPI,
		Pages:      pages,
		SessionKey: sessionKey,
	})
	return &App{Config: cfg, Log: log, DB: db, Catalog: catalog, Resolver: resolver, Handler: h}, nil
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
	return lns, nil
}

// Serve serves the tenant handler on every listener until ctx ends, then
// stops accepting, lets in-flight requests finish within
// server.shutdown_timeout and returns. The pool is left open for the
// caller to close.
func (a *App) Serve(ctx context.Context, lns []net.Listener) error {
	sc := a.Config.Server
	servers := make([]*http.Server, len(lns))
	errc := make(chan error, len(lns))
	for i, ln := range lns {
		srv := &http.Server{
			Handler:           a.Handler,
			ReadTimeout:       sc.ReadTimeout,
			ReadHeaderTimeout: sc.ReadHeaderTimeout,
			WriteTimeout:      sc.WriteTimeout,
			IdleTimeout:       sc.IdleTimeout,
			MaxHeaderBytes:    64 << 10,
			ErrorLog:          slog.NewLogLogger(a.Log.Handler(), slog.LevelWarn),
			BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
		}
		servers[i] = srv
		a.Log.Info("listening", "addr", ln.Addr().String())
		go func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("serve %s: %w", ln.Addr(), err)
			}
		}()
	}

	refreshCtx, stopRefresh := context.WithCancel(ctx)
	defer stopRefresh()
	go a.Resolver.Run(refreshCtx, a.Config.Tenancy.RefreshInterval, func(err error) {
		a.Log.Warn("catalog refresh failed; keeping the cached catalog", "err", err)
	})

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
	for _, srv := range servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := srv.Shutdown(shutdownCtx); err != nil {
				_ = srv.Close()
				mu.Lock()
				errs = append(errs, fmt.Errorf("shutdown: %w", err))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return errors.Join(append([]error{serveErr}, errs...)...)
}
