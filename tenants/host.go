package tenants

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"unicode/utf8"
)

// NormalizeHost returns the canonical form of a Host header value: lower
// case, no trailing dot on the name, no port when it is the scheme's
// default (80 for http, 443 for https), any other port kept. IPv6 literals
// keep their brackets. Anything that is not a plain host[:port] is
// ErrMalformedHost: a normalized host is exactly what the catalog stores,
// so two spellings of one host can never map to two tenants.
func NormalizeHost(raw string, https bool) (string, error) {
	if raw == "" || len(raw) > 300 {
		return "", ErrMalformedHost.With("", fmt.Sprintf("%q is not a valid host[:port]", raw), nil)
	}
	for i := 0; i < len(raw); i++ {
		if raw[i] >= utf8.RuneSelf {
			// Checked before lowering: strings.ToLower turns some
			// non-ASCII letters into ASCII ones (the Kelvin sign into k,
			// İ into i), which would pass them off as another host.
			return "", ErrMalformedHost.With("", fmt.Sprintf("%q: not ASCII", raw), nil)
		}
	}
	// This runs on every request. ToLower returns raw itself when it has
	// no upper-case letter, and the steps below slice it rather than build
	// a new string unless they change it, so a host name already in
	// canonical form, which is what clients send, costs no allocation
	// (TestResolveHitAllocatesNothing).
	lower := strings.ToLower(raw)
	host, port, err := splitHostPort(lower)
	if err != nil {
		return "", ErrMalformedHost.With("", fmt.Sprintf("%q: %v", raw, err), nil)
	}
	if strings.HasPrefix(host, "[") {
		addr, err := netip.ParseAddr(host[1 : len(host)-1])
		if err != nil || !addr.Is6() || addr.Zone() != "" {
			return "", ErrMalformedHost.With("", fmt.Sprintf("%q: bad IPv6 literal", raw), nil)
		}
		host = "[" + addr.String() + "]"
	} else {
		host = strings.TrimSuffix(host, ".")
		if !validHostname(host) {
			return "", ErrMalformedHost.With("", fmt.Sprintf("%q: bad host name", raw), nil)
		}
	}
	if port == "" || (port == "80" && !https) || (port == "443" && https) {
		return host, nil
	}
	if len(lower) == len(host)+1+len(port) && lower[:len(host)] == host && lower[len(host)+1:] == port {
		// lower is host:port already: nothing was trimmed or rewritten.
		return lower, nil
	}
	return host + ":" + port, nil
}

// splitHostPort splits host[:port] where host may be a bracketed IPv6 literal.
func splitHostPort(s string) (host, port string, err error) {
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return "", "", fmt.Errorf("missing ]")
		}
		host, rest := s[:end+1], s[end+1:]
		if rest == "" {
			return host, "", nil
		}
		if rest[0] != ':' {
			return "", "", fmt.Errorf("junk after ]")
		}
		port, err := checkPort(rest[1:])
		return host, port, err
	}
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return s, "", nil
	}
	if strings.IndexByte(s[:i], ':') >= 0 {
		return "", "", fmt.Errorf("IPv6 literal without brackets")
	}
	port, err = checkPort(s[i+1:])
	return s[:i], port, err
}

func checkPort(p string) (string, error) {
	if p == "" || len(p) > 5 {
		return "", fmt.Errorf("bad port")
	}
	n, err := strconv.Atoi(p)
	if err != nil || n < 1 || n > 65535 || p[0] == '+' || p[0] == '-' {
		return "", fmt.Errorf("bad port")
	}
	if p[0] != '0' {
		// Digits only, no sign, no leading zero: p is n's canonical form.
		return p, nil
	}
	return strconv.Itoa(n), nil
}

// validHostname accepts DNS names and dotted IPv4 addresses: labels of
// 1–63 letters, digits and inner hyphens (underscores allowed, as some
// internal names use them), 253 characters at most.
func validHostname(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	// Label by label, without strings.Split: this runs on every request.
	for rest := h; ; {
		label, after, more := strings.Cut(rest, ".")
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
		if !more {
			return true
		}
		rest = after
	}
}
