package middleware

import (
	"context"
	"log/slog"
	"time"

	"github.com/gin-gonic/gin"

	"tenantry/database"
	"tenantry/requestid"
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
	// Route is the pattern of the matched route (/api/users/:id), or
	// Unmatched when no route matched (Route).
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

// Header keys as net/http keeps them (textproto's canonical form), so that
// reading and setting them skips canonicalising on every request.
const (
	requestIDKey   = "X-Request-Id" // requestid.Header
	traceParentKey = "Traceparent"  // requestid.TraceParentHeader
)

// Unmatched is the route logged, and the route label counted, for a
// request no route matched: a 404 or 405 of the router itself.
const Unmatched = "unmatched"

// Route is what logs name a request by: its route's pattern, or
// Unmatched. Never the path, which a client chooses and may fill with an
// e-mail address.
func Route(c *gin.Context) string {
	if r := c.FullPath(); r != "" {
		return r
	}
	return Unmatched
}

// Access returns the middleware that names, measures and records every
// request. It must run first, so that every later handler, the problem
// writers and the log see the request's id, and so that it sees the final
// status of everything after it, a recovered panic included.
//
// Before the handlers run it takes the request's id from a valid
// X-Request-ID header (requestid.Valid) or makes one (requestid.New),
// sets it on the response's X-Request-ID header and puts it in the
// request's context, with a database.Usage that counts the statements the
// request runs. Once they have answered it hands the request's Record to
// every observer and, with opts.Lines, writes the access line at info
// level.
func Access(log *slog.Logger, opts AccessOptions, observers ...Observer) gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		req := c.Request
		id := first(req.Header[requestIDKey])
		if !requestid.Valid(id) {
			id = requestid.New()
		}
		c.Writer.Header()[requestIDKey] = []string{id}
		traceID, _ := requestid.TraceID(first(req.Header[traceParentKey]))
		ctx, usage := database.NewUsageContext(requestid.NewContext(req.Context(), id))
		c.Request = req.WithContext(ctx)

		c.Next()

		r := Record{
			Server:     opts.Server,
			RequestID:  id,
			TraceID:    traceID,
			Host:       c.Request.Host,
			Method:     c.Request.Method,
			Route:      Route(c),
			Status:     c.Writer.Status(),
			Bytes:      max(c.Writer.Size(), 0),
			Duration:   time.Since(start),
			DBTime:     usage.Time(),
			Statements: usage.Statements(),
		}
		// The handlers may have replaced the request (the tenant
		// middleware does, to put the tenant in its context).
		ctx = c.Request.Context()
		if name, ok := tenants.NameFromContext(ctx); ok {
			r.Tenant = name
		}
		for _, o := range observers {
			o.Observe(r)
		}
		if opts.Lines && log.Enabled(ctx, slog.LevelInfo) {
			writeLine(ctx, log, &r)
		}
	}
}

// writeLine writes r as the access line. Its keys are the ones
// docs/OPERATIONS.md lists; request_id and tenant are written here even
// when empty, so that the log handler (package logging) adds neither
// again.
func writeLine(ctx context.Context, log *slog.Logger, r *Record) {
	attrs := [...]slog.Attr{
		slog.String("server", r.Server),
		slog.String("request_id", r.RequestID),
		slog.String("tenant", r.Tenant),
		slog.String("host", r.Host),
		slog.String("method", r.Method),
		slog.String("route", r.Route),
		slog.Int("status", r.Status),
		slog.Int("bytes", r.Bytes),
		slog.Float64("duration_ms", milliseconds(r.Duration)),
		slog.Float64("db_ms", milliseconds(r.DBTime)),
		slog.Int("statements", r.Statements),
		slog.String("trace_id", r.TraceID),
	}
	n := len(attrs)
	if r.TraceID == "" {
		n-- // trace_id, last, only when the client sent one
	}
	log.LogAttrs(ctx, slog.LevelInfo, "request", attrs[:n]...)
}

// milliseconds is d in milliseconds to the microsecond.
func milliseconds(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// first is a header's first value, or "".
func first(values []string) string {
	if len(values) == 0 {
		return ""
	}
	return values[0]
}
