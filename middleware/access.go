package middleware

import (
	"log/slog"
	"time"

	"github.com/gin-gonic/gin"

	"tenantry/tenants"
)

// Record is what is known about one served request once it has been
// answered: the access log writes it as one line and every Observer
// (metrics, per-tenant stats) counts it. It holds no body, no query string
// and nothing a user typed: Route is the route's pattern, never the path.
type Record struct {
	// Server names the listener's server: "tenants" or "admin".
	Server    string
	RequestID string
	// TraceID is the trace id of a valid W3C traceparent header, or "".
	TraceID string
	// Tenant is the resolved tenant's name, or "" when the request was
	// answered before a tenant was resolved (unknown host, /healthz).
	Tenant string
	Host   string
	Method string
	// Route is the pattern of the matched route (/api/users/:id), or ""
	// when no route matched.
	Route    string
	Status   int
	Bytes    int
	Duration time.Duration
	// DBTime and Statements are the time spent in, and the number of,
	// the statements the request ran through GORM.
	DBTime     time.Duration
	Statements int
}

// Observer is told of every answered request. Observe runs on the request's
// goroutine after the answer is written, once per request: it must be
// cheap, must not block and must not keep r's strings beyond a bounded
// structure of its own.
type Observer interface {
	Observe(r Record)
}

// AccessOptions configure Access.
type AccessOptions struct {
	// Server is copied into every Record ("tenants", "admin").
	Server string
	// Lines writes one log line per request at info level; false leaves
	// only the observers (log.access).
	Lines bool
}

// Access returns the middleware that measures every request, writes its
// access line and hands its Record to every observer. It must run first,
// so that it sees the final status of everything after it, a recovered
// panic included.
func Access(log *slog.Logger, opts AccessOptions, observers ...Observer) gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		c.Next()
		r := Record{
			Server:   opts.Server,
			Host:     c.Request.Host,
			Method:   c.Request.Method,
			Route:    c.FullPath(),
			Status:   c.Writer.Status(),
			Bytes:    max(c.Writer.Size(), 0),
			Duration: time.Since(start),
		}
		ctx := c.Request.Context()
		if t, ok := tenants.FromContext(ctx); ok {
			r.Tenant = t.Name
		}
		for _, o := range observers {
			o.Observe(r)
		}
		if opts.Lines && log.Enabled(ctx, slog.LevelInfo) {
			log.LogAttrs(ctx, slog.LevelInfo, "request",
				slog.String("server", r.Server),
				slog.String("tenant", r.Tenant),
				slog.String("host", r.Host),
				slog.String("method", r.Method),
				slog.String("route", r.Route),
				slog.Int("status", r.Status),
				slog.Int("bytes", r.Bytes),
				slog.Float64("duration_ms", float64(r.Duration.Microseconds())/1000),
			)
		}
	}
}
