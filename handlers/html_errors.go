package handlers

import (
	"fmt"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"tenantry/middleware"
	"tenantry/problem"
	"tenantry/web"
)

// pageRouteKey marks, in the Gin context, a request routed to an HTML page.
const pageRouteKey = "tenantry.pageRoute"

// pageRoute marks the request as one for an HTML page, so that its errors,
// including those of the tenant middleware after it, are pages too.
func (s *Server) pageRoute(c *gin.Context) {
	c.Set(pageRouteKey, true)
	c.Next()
}

// machinePath reports whether path is for programs only: the JSON API, its
// OpenAPI document and the health checks answer problem+json whatever the
// Accept header says, so clients can always parse an error.
func machinePath(path string) bool {
	return path == "/api" || strings.HasPrefix(path, "/api/") || path == "/openapi.yaml" ||
		path == "/healthz" || path == "/readyz"
}

// wantsHTML decides how an error is shown: as an HTML page on an HTML
// route, or on any other path outside machinePath when the Accept header
// prefers text/html (a browser); as problem+json otherwise. It is the one
// place that makes this choice (see writeProblem). Everything a page
// route answers, its 413 included (limitBody), comes after pageRoute, so
// a page route answers with a page whatever the Accept header says.
func (s *Server) wantsHTML(c *gin.Context) bool {
	if s.Pages == nil || machinePath(c.Request.URL.Path) {
		return false
	}
	return c.GetBool(pageRouteKey) || prefersHTML(c.GetHeader("Accept"))
}

// writeProblemHTML shows pr as a page: the same status, title, detail and
// request id as the problem+json variant, never more.
func (s *Server) writeProblemHTML(c *gin.Context, pr Problem) {
	v := web.ErrorView{Layout: s.layout(c, pr.Title), Status: pr.Status, Detail: pr.Detail, Fields: pr.Errors,
		RequestID: pr.RequestID}
	if err := s.Pages.Render(c.Writer, pr.Status, v); err != nil {
		// Only a broken error template gets here; a plain line still says
		// what happened.
		s.Log.ErrorContext(c.Request.Context(), "render error page", "err", err)
		c.Header("Content-Type", "text/plain; charset=utf-8")
		c.Status(pr.Status)
		_, _ = c.Writer.WriteString(pr.Title + ": " + pr.Detail + "\n")
	}
}

// prefersHTML reports whether an Accept header ranks text/html above
// problem+json and JSON, as browsers' page requests do. No header, */* and
// ties go to JSON, the API's format.
func prefersHTML(accept string) bool {
	if accept == "" {
		return false
	}
	html := acceptQuality(accept, "text/html")
	json := max(acceptQuality(accept, "application/problem+json"), acceptQuality(accept, "application/json"))
	return html > 0 && html > json
}

// acceptQuality is the q value that the most specific range of accept
// matching mediaType gives it (RFC 9110, section 12.5.1); 0 when none does.
// Malformed ranges are skipped.
func acceptQuality(accept, mediaType string) float64 {
	typ, sub, _ := strings.Cut(mediaType, "/")
	bestSpecificity, q := 0, 0.0
	for r := range strings.SplitSeq(accept, ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(r))
		if err != nil {
			continue
		}
		rt, rs, _ := strings.Cut(mt, "/")
		specificity := 0
		switch {
		case rt == typ && rs == sub:
			specificity = 3
		case rt == typ && rs == "*":
			specificity = 2
		case rt == "*" && rs == "*":
			specificity = 1
		}
		if specificity <= bestSpecificity {
			continue
		}
		rq := 1.0
		if v, ok := params["q"]; ok {
			if rq, err = strconv.ParseFloat(v, 64); err != nil || rq < 0 || rq > 1 {
				continue
			}
		}
		bestSpecificity, q = specificity, rq
	}
	return q
}

// errCrossOrigin is an unsafe request that a browser sent from a page of
// another origin: another site, or another workspace on the same host.
var errCrossOrigin = problem.New(http.StatusForbidden, "cross-origin", "Request refused",
	"This form was sent from another site or workspace, so it was not accepted. Go back to the page, reload it and try again.")

// sameOrigin refuses POST, PUT, PATCH and DELETE requests that a browser
// sends from another origin, with http.CrossOriginProtection: a request
// whose Sec-Fetch-Site is anything but same-origin or none is refused, and
// so is one without Sec-Fetch-Site whose Origin's host:port differs from
// the Host header. "same-site" is refused too, which matters here: two
// workspaces on one host (localhost:5000 and localhost:8000) are the same
// site but different origins. Requests with neither header (curl, Postman,
// other programs) pass, because no browser sends them without one and they
// carry no ambient credentials to abuse.
//
// Behind a trusted proxy (server.trusted_proxies) that forwarded the
// client's host or scheme, the Host header is the proxy's upstream, not
// what the browser put in Origin, so an Origin is compared instead with
// the origin the client used (tenants.Middleware.Origin): same scheme, host
// and port. Forwarding headers from anyone else change nothing.
// Sec-Fetch-Site needs no such care: the browser computed it against the
// very origin it sent the request to.
func (s *Server) sameOrigin(c *gin.Context) {
	req := c.Request
	// The zero value trusts no other origin and has no bypass; building it
	// per request keeps Server free of shared mutable state.
	var cop http.CrossOriginProtection
	err := cop.Check(req)
	// Only the case CrossOriginProtection decides by the Host header is
	// decided again: an unsafe method, no Sec-Fetch-Site, an Origin.
	unsafe := req.Method != http.MethodGet && req.Method != http.MethodHead && req.Method != http.MethodOptions
	if origin := req.Header.Get("Origin"); unsafe && origin != "" && req.Header.Get("Sec-Fetch-Site") == "" {
		if o, oerr := s.Tenants.Origin(req); oerr == nil && o.Forwarded {
			err = nil
			if !o.Matches(origin) {
				err = fmt.Errorf("origin %q is not the client's %s://%s, as forwarded by a trusted proxy", origin, o.Scheme, o.Host)
			}
		}
	}
	if err != nil {
		s.Log.WarnContext(req.Context(), "cross-origin request refused", "reason", err, "method", req.Method,
			"route", middleware.Route(c), "origin", c.GetHeader("Origin"), "sec_fetch_site", c.GetHeader("Sec-Fetch-Site"))
		s.respondError(c, errCrossOrigin)
		c.Abort()
		return
	}
	c.Next()
}
