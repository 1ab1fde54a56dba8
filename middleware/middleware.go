package middleware

import (
	"log/slog"
	"net/http"
	"runtime/debug"

	"github.com/gin-gonic/gin"

	"tenantry/fault"
	"tenantry/problem"
)

// Recover returns middleware that turns a panic in a later handler into a
// 500: the panic value and its stack go to log at error level, and, unless
// the answer has begun already, write sends problem.Internal(), which says
// nothing about the cause. http.ErrAbortHandler is re-panicked: it is
// net/http's way of abandoning a response on purpose.
func Recover(log *slog.Logger, write func(*gin.Context, problem.Problem)) gin.HandlerFunc {
	return func(c *gin.Context) {
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			if v == http.ErrAbortHandler {
				panic(v)
			}
			log.ErrorContext(c.Request.Context(), "panic", "panic", v, "method", c.Request.Method,
				"route", Route(c), "stack", string(debug.Stack()))
			if !c.Writer.Written() {
				write(c, problem.Internal())
			}
			c.Abort()
		}()
		c.Next()
	}
}

// LimitBody returns middleware that refuses request bodies over max bytes:
// at once, with onTooLarge, when Content-Length says so, and while reading
// otherwise, where the reader (http.MaxBytesReader) fails with an
// *http.MaxBytesError that problem.From shows as 413. onTooLarge answers
// the request; the middleware then aborts it.
//
// net/http gives a request without a body (every GET) http.NoBody, which
// reads nothing: it needs no limit, and the reader would be an allocation
// on every read request, the servers' hot path.
func LimitBody(max int64, onTooLarge func(*gin.Context)) gin.HandlerFunc {
	return func(c *gin.Context) {
		if c.Request.ContentLength > max {
			onTooLarge(c)
			c.Abort()
			return
		}
		if c.Request.Body != nil && c.Request.Body != http.NoBody {
			c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, max)
		}
		c.Next()
	}
}

// LogError logs err, which failed c's request, as the package
// documentation says; known is whether problem.From recognised it. msg
// names the server ("request failed", "admin request failed").
func LogError(c *gin.Context, log *slog.Logger, msg string, err error, known bool) {
	ctx, r := c.Request.Context(), c.Request
	if !known {
		// err's text is its whole wrapped chain: the cause an operator
		// needs, which the client was not shown.
		log.ErrorContext(ctx, msg, "err", err, "method", r.Method, "route", Route(c))
		return
	}
	kind := fault.KindOf(err)
	switch kind {
	case fault.Unavailable, fault.Timeout, fault.Contention:
		return
	}
	if !log.Enabled(ctx, slog.LevelDebug) {
		return
	}
	// A client error of package problem has no kind; only a classified
	// error's kind is worth a field.
	if kind == fault.Internal {
		log.DebugContext(ctx, msg, "err", err, "method", r.Method, "route", Route(c))
		return
	}
	log.DebugContext(ctx, msg, "err", err, "kind", kind.String(), "method", r.Method, "route", Route(c))
}
