package tenants

import (
	"net/http"
	"net/url"
	"strings"
)

// ClientOrigin is the scheme and host a client used to reach the service:
// the request's own unless a trusted proxy forwarded it (see Origin).
type ClientOrigin struct {
	// Scheme is "https" or "http".
	Scheme string
	// Host is normalized as NormalizeHost does it, so it has no port when
	// the port is the scheme's default.
	Host string
	// Forwarded reports that a trusted proxy sent X-Forwarded-Host or
	// X-Forwarded-Proto, so Scheme and Host may differ from the
	// connection's own: a same-origin check must then compare with them
	// rather than with the request's Host header.
	Forwarded bool
}

// Origin returns the origin the client used, by the same rule that picks
// the tenant (Host): X-Forwarded-Host and X-Forwarded-Proto count only from
// a peer in the trusted proxies, and then only their first entry, the one
// the client-facing proxy wrote. Anyone else's forwarding headers change
// nothing. It fails as Host does, with ErrMalformedHost.
func (m *Middleware) Origin(r *http.Request) (ClientOrigin, error) {
	host, err := m.Host(r)
	if err != nil {
		return ClientOrigin{}, err
	}
	o := ClientOrigin{Scheme: "http", Host: host}
	https := r.TLS != nil
	if m.fromTrustedProxy(r) {
		fh, fp := r.Header.Get("X-Forwarded-Host"), r.Header.Get("X-Forwarded-Proto")
		o.Forwarded = fh != "" || fp != ""
		if fp != "" {
			first, _, _ := strings.Cut(fp, ",")
			https = strings.EqualFold(strings.TrimSpace(first), "https")
		}
	}
	if https {
		o.Scheme = "https"
	}
	return o, nil
}

// Matches reports whether origin, the value of a browser's Origin header
// (scheme://host[:port], RFC 6454), names o: the same scheme and the same
// host and port once both are normalized, so "https://Tenant.example:443"
// matches the host "tenant.example" over https. "null", an origin with a
// path or credentials, and anything unparsable match nothing.
func (o ClientOrigin) Matches(origin string) bool {
	u, err := url.Parse(origin)
	if err != nil || u.Opaque != "" || u.User != nil || u.Path != "" || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return false
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != o.Scheme {
		return false
	}
	host, err := NormalizeHost(u.Host, scheme == "https")
	return err == nil && host == o.Host
}
