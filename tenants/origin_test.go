package tenants_test

import (
	"crypto/tls"
	"errors"
	"net/http/httptest"
	"testing"

	"tenantry/tenants"
)

func TestOrigin(t *testing.T) {
	// Only the trusted proxies matter to Origin; it never resolves a tenant.
	m, err := tenants.NewMiddleware(nil, []string{"127.0.0.1", "10.0.0.0/8"}, 1)
	if err != nil {
		t.Fatal(err)
	}
	const trusted, untrusted = "127.0.0.1:40000", "192.0.2.9:40000"
	for _, tc := range []struct {
		name   string
		peer   string
		host   string
		tls    bool
		hdr    map[string]string
		want   tenants.ClientOrigin
		failed bool
	}{
		{name: "plain request", peer: untrusted, host: "Tenant.Example:8080",
			want: tenants.ClientOrigin{Scheme: "http", Host: "tenant.example:8080"}},
		{name: "TLS drops the default port", peer: untrusted, host: "tenant.example:443", tls: true,
			want: tenants.ClientOrigin{Scheme: "https", Host: "tenant.example"}},
		{name: "trusted proxy, TLS at the proxy", peer: trusted, host: "127.0.0.1:8080",
			hdr:  map[string]string{"X-Forwarded-Proto": "https", "X-Forwarded-Host": "tenant.example"},
			want: tenants.ClientOrigin{Scheme: "https", Host: "tenant.example", Forwarded: true}},
		{name: "trusted proxy in a CIDR, first entries only", peer: "10.1.2.3:1", host: "backend:8080",
			hdr:  map[string]string{"X-Forwarded-Proto": "HTTPS, http", "X-Forwarded-Host": "tenant.example:443, backend:8080"},
			want: tenants.ClientOrigin{Scheme: "https", Host: "tenant.example", Forwarded: true}},
		{name: "trusted proxy, proto only", peer: trusted, host: "tenant.example",
			hdr:  map[string]string{"X-Forwarded-Proto": "https"},
			want: tenants.ClientOrigin{Scheme: "https", Host: "tenant.example", Forwarded: true}},
		{name: "trusted proxy says http over its TLS connection", peer: trusted, host: "tenant.example", tls: true,
			hdr:  map[string]string{"X-Forwarded-Proto": "http"},
			want: tenants.ClientOrigin{Scheme: "http", Host: "tenant.example", Forwarded: true}},
		{name: "trusted peer without forwarding headers", peer: trusted, host: "tenant.example:8080",
			want: tenants.ClientOrigin{Scheme: "http", Host: "tenant.example:8080"}},
		{name: "untrusted peer's headers change nothing", peer: untrusted, host: "127.0.0.1:8080",
			hdr:  map[string]string{"X-Forwarded-Proto": "https", "X-Forwarded-Host": "tenant.example"},
			want: tenants.ClientOrigin{Scheme: "http", Host: "127.0.0.1:8080"}},
		{name: "IPv4-mapped trusted peer", peer: "[::ffff:127.0.0.1]:1", host: "backend",
			hdr:  map[string]string{"X-Forwarded-Proto": "https", "X-Forwarded-Host": "tenant.example"},
			want: tenants.ClientOrigin{Scheme: "https", Host: "tenant.example", Forwarded: true}},
		{name: "malformed forwarded host", peer: trusted, host: "backend",
			hdr: map[string]string{"X-Forwarded-Host": "bad host"}, failed: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/users", nil)
			r.RemoteAddr, r.Host = tc.peer, tc.host
			if tc.tls {
				r.TLS = &tls.ConnectionState{}
			} else {
				r.TLS = nil
			}
			for k, v := range tc.hdr {
				r.Header.Set(k, v)
			}
			got, err := m.Origin(r)
			if tc.failed {
				if !errors.Is(err, tenants.ErrMalformedHost) {
					t.Errorf("Origin = %+v, %v; want ErrMalformedHost", got, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("Origin = %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

func TestClientOriginMatches(t *testing.T) {
	https := tenants.ClientOrigin{Scheme: "https", Host: "tenant.example"}
	http8080 := tenants.ClientOrigin{Scheme: "http", Host: "tenant.example:8080"}
	for _, tc := range []struct {
		o      tenants.ClientOrigin
		origin string
		want   bool
	}{
		{https, "https://tenant.example", true},
		{https, "https://Tenant.Example:443", true},
		{https, "HTTPS://tenant.example", true},
		{https, "http://tenant.example", false},
		{https, "https://tenant.example:8443", false},
		{https, "https://other.example", false},
		{https, "https://evil.example.tenant.example", false},
		{https, "https://tenant.example/", false},
		{https, "https://user@tenant.example", false},
		{https, "https://tenant.example?", false},
		{https, "null", false},
		{https, "", false},
		{https, "tenant.example", false},
		{http8080, "http://tenant.example:8080", true},
		{http8080, "http://tenant.example", false},
		{http8080, "https://tenant.example:8080", false},
	} {
		if got := tc.o.Matches(tc.origin); got != tc.want {
			t.Errorf("%+v.Matches(%q) = %v, want %v", tc.o, tc.origin, got, tc.want)
		}
	}
}
