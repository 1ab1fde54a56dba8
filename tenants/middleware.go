package tenants

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"

	"github.com/gin-gonic/gin"
)

// Middleware resolves each request's tenant from its Host and puts it in
// the request's context (see FromContext).
type Middleware struct {
	resolver        *Resolver
	trusted         []netip.Prefix
	requiredVersion int
}

// NewMiddleware returns middleware over resolver. X-Forwarded-Host and
// X-Forwarded-Proto are believed only from peers in trustedProxies (IPs or
// CIDRs). A tenant whose schema_version is below requiredVersion is refused
// with ErrBehind until it is migrated.
func NewMiddleware(resolver *Resolver, trustedProxies []string, requiredVersion int) (*Middleware, error) {
	m := &Middleware{resolver: resolver, requiredVersion: requiredVersion}
	for _, p := range trustedProxies {
		prefix, err := netip.ParsePrefix(p)
		if err != nil {
			addr, aerr := netip.ParseAddr(p)
			if aerr != nil {
				return nil, fmt.Errorf("trusted proxy %q: %w", p, err)
			}
			prefix = netip.PrefixFrom(addr, addr.BitLen())
		}
		m.trusted = append(m.trusted, prefix.Masked())
	}
	return m, nil
}

// Host returns the normalized host the request was sent to, honouring
// forwarding headers only from trusted proxies.
func (m *Middleware) Host(r *http.Request) (string, error) {
	host, https := r.Host, r.TLS != nil
	if m.fromTrustedProxy(r) {
		// The first entry is the one the client sent; Cut takes it
		// without allocating the list.
		if fh := r.Header.Get("X-Forwarded-Host"); fh != "" {
			first, _, _ := strings.Cut(fh, ",")
			host = strings.TrimSpace(first)
		}
		if fp := r.Header.Get("X-Forwarded-Proto"); fp != "" {
			first, _, _ := strings.Cut(fp, ",")
			https = strings.EqualFold(strings.TrimSpace(first), "https")
		}
	}
	return NormalizeHost(host, https)
}

func (m *Middleware) fromTrustedProxy(r *http.Request) bool {
	if len(m.trusted) == 0 {
		return false
	}
	ipStr, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	ip, err := netip.ParseAddr(ipStr)
	if err != nil {
		return false
	}
	ip = ip.Unmap()
	for _, p := range m.trusted {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// Tenant resolves the request's tenant, checking that it may be served.
func (m *Middleware) Tenant(r *http.Request) (*Tenant, error) {
	host, err := m.Host(r)
	if err != nil {
		return nil, err
	}
	t, err := m.resolver.Resolve(r.Context(), host)
	if err != nil {
		return nil, err
	}
	switch {
	case t.Removing:
		// First: a tenant being removed is refused whatever its status, so
		// that in-flight work can drain (Catalog.Remove).
		return t, fmt.Errorf("%w: %s", ErrRemoving, t.Name)
	case t.Status != StatusActive:
		return t, fmt.Errorf("%w: %s", ErrSuspended, t.Name)
	case t.SchemaVersion < m.requiredVersion:
		return t, fmt.Errorf("%w: %s is at version %d, the code needs %d", ErrBehind, t.Name, t.SchemaVersion, m.requiredVersion)
	case t.WritesPaused && !readOnly(r.Method):
		// The last seconds of a move: reads go on from the source, a
		// write would land on a copy being finished (Catalog.Move).
		return t, fmt.Errorf("%w: %s", ErrWritesPaused, t.Name)
	}
	return t, nil
}

// Current resolves r's host again, as the catalog has it now, for a
// request already being served as a tenant (handlers telling a moved
// tenant from a removed one). The lookup runs on a context of its own,
// within r's deadline: made in r's context, which carries the tenant, the
// catalog statements would be refused by the scope, and the resolver
// would hand that failure to every request waiting on the same host.
func (m *Middleware) Current(r *http.Request) (*Tenant, error) {
	ctx := context.Background()
	if d, ok := r.Context().Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, d)
		defer cancel()
	}
	return m.Tenant(r.WithContext(ctx))
}

// Handler returns Gin middleware that attaches the tenant to the request's
// context, or calls onError and aborts. It never falls back to a default
// tenant.
func (m *Middleware) Handler(onError func(c *gin.Context, err error)) gin.HandlerFunc {
	return func(c *gin.Context) {
		t, err := m.Tenant(c.Request)
		if err != nil {
			if t != nil {
				c.Request = c.Request.WithContext(withRefused(c.Request.Context(), t))
			}
			onError(c, err)
			c.Abort()
			return
		}
		c.Request = c.Request.WithContext(NewContext(c.Request.Context(), t))
		c.Next()
	}
}

// readOnly reports whether a request with method changes nothing.
func readOnly(method string) bool {
	return method == http.MethodGet || method == http.MethodHead || method == http.MethodOptions
}
