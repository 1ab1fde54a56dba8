package tenants_test

import (
	"errors"
	"testing"

	"tenantry/tenants"
)

// hostCases are accepted hosts and their normal forms; FuzzNormalizeHost
// starts from them too.
var hostCases = []struct {
	in    string
	https bool
	want  string
}{
	{"localhost:5000", false, "localhost:5000"},
	{"LOCALHOST:5000", false, "localhost:5000"},
	{"localhost.:5000", false, "localhost:5000"},
	{"Acme.Example.COM.", false, "acme.example.com"},
	{"acme.example.com:80", false, "acme.example.com"},
	{"acme.example.com:443", false, "acme.example.com:443"},
	{"acme.example.com:443", true, "acme.example.com"},
	{"acme.example.com:80", true, "acme.example.com:80"},
	{"127.0.0.1:8000", false, "127.0.0.1:8000"},
	{"[::1]:5000", false, "[::1]:5000"},
	{"[0:0:0:0:0:0:0:1]:5000", false, "[::1]:5000"},
	{"[::1]", false, "[::1]"},
	{"localhost:05000", false, "localhost:5000"},
	{"under_score.local", false, "under_score.local"},
}

// malformedHosts are refused whatever the scheme; FuzzNormalizeHost starts
// from them too.
var malformedHosts = []string{
	"", ":5000", "localhost:", "localhost:0", "localhost:65536", "localhost:-1", "localhost:+80",
	"localhost:50a", "a b", "evil.com/path", "user@host", "host\x00.com", "::1", "[::1", "[::1]x",
	"[127.0.0.1]:80", "[fe80::1%eth0]:80", "-lead.example", "trail-.example", "a..b", "..",
	"ex%41mple.com", "host:5000:6000", "ünicode.example",
	// Found by FuzzNormalizeHost: non-ASCII letters whose lower case is
	// ASCII (the Kelvin sign, dotted capital I) passed as plain names.
	"\u212aelvin.example", "ac\u212ae.test:5000", "\u0130stanbul.example",
}

func TestNormalizeHost(t *testing.T) {
	for _, tc := range hostCases {
		got, err := tenants.NormalizeHost(tc.in, tc.https)
		if err != nil || got != tc.want {
			t.Errorf("NormalizeHost(%q, https=%v) = %q, %v; want %q", tc.in, tc.https, got, err, tc.want)
		}
	}
}

func TestNormalizeHostRejectsMalformed(t *testing.T) {
	for _, in := range malformedHosts {
		got, err := tenants.NormalizeHost(in, false)
		if !errors.Is(err, tenants.ErrMalformedHost) {
			t.Errorf("NormalizeHost(%q) = %q, %v; want ErrMalformedHost", in, got, err)
		}
	}
}

func TestValidateSchema(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"acme", true},
		{"_private", true},
		{"a1_b2", true},
		{"a23456789012345678901234567890123456789012345678901234567890123", true},   // 63
		{"a234567890123456789012345678901234567890123456789012345678901234", false}, // 64
		{"", false},
		{"Acme", false},
		{"1acme", false},
		{"public", false},
		{"information_schema", false},
		{"pg_catalog", false},
		{"pg_temp", false},
		{"tenantry_tenants", false},
		{"archived_acme", false},
		{`acme"; DROP SCHEMA public CASCADE; --`, false},
		{"acme.users", false},
		{"acme-corp", false},
		{"acme users", false},
		{"acme\n", false},
	} {
		err := tenants.ValidateSchema(tc.name)
		if (err == nil) != tc.ok {
			t.Errorf("ValidateSchema(%q) = %v, want ok=%v", tc.name, err, tc.ok)
		}
		if err != nil && !errors.Is(err, tenants.ErrInvalidName) {
			t.Errorf("ValidateSchema(%q) = %v, want ErrInvalidName", tc.name, err)
		}
	}
}
