package admin

import (
	"net/http/pprof"
	"strings"

	"github.com/gin-gonic/gin"
)

// pprofPrefix is where the Go runtime's profiles are served.
const pprofPrefix = "/debug/pprof/"

// pprofProfiles are the runtime/pprof profiles served by name. The block
// and mutex profiles stay empty until something sets their rate
// (runtime.SetBlockProfileRate, runtime.SetMutexProfileFraction); nothing
// in tenantry does.
var pprofProfiles = []string{"allocs", "block", "goroutine", "heap", "mutex", "threadcreate"}

// pprofRoutes serves net/http/pprof under /debug/pprof/ on the admin
// engine, so that profiles are taken behind the admin token and its
// throttle like every other admin route, and never on a tenant listener.
// The handlers are registered here one by one: net/http/pprof also
// registers them on http.DefaultServeMux when imported, but nothing in
// tenantry serves that mux.
//
// A CPU profile or trace may last longer than the server's WriteTimeout:
// pprof.Profile and pprof.Trace push the write deadline back by the
// requested duration themselves (through http.ResponseController, which
// reaches the connection through Gin's writer).
func (s *Server) pprofRoutes(e *gin.Engine) {
	g := e.Group(pprofPrefix)
	g.GET("/", gin.WrapF(pprof.Index))
	g.GET("/cmdline", gin.WrapF(pprof.Cmdline))
	g.GET("/profile", gin.WrapF(pprof.Profile))
	// go tool pprof may POST the addresses it wants symbolised; the body
	// is bounded by Deps.MaxBody like every admin request's.
	g.GET("/symbol", gin.WrapF(pprof.Symbol))
	g.POST("/symbol", gin.WrapF(pprof.Symbol))
	g.GET("/trace", gin.WrapF(pprof.Trace))
	for _, name := range pprofProfiles {
		g.GET("/"+name, gin.WrapH(pprof.Handler(name)))
	}
}

// isPprofRoute reports whether r is one of the routes pprofRoutes adds.
func isPprofRoute(r gin.RouteInfo) bool { return strings.HasPrefix(r.Path, pprofPrefix) }
