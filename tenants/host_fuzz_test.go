package tenants_test

import (
	"errors"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"tenantry/tenants"
)

// nastyHosts are seeds beyond the unit tests' cases: spellings that have
// broken host parsers elsewhere (IDN, zones, escapes, odd ports, bytes a
// Host header must not carry, case mappings that leave ASCII).
var nastyHosts = []string{
	// IDN: the punycode form is a plain name, the Unicode form is not.
	"xn--bcher-kva.example", "bücher.example", "BÜCHER.example:8080",
	// Unicode letters whose lower case is ASCII: K (Kelvin sign), and
	// the dotted and dotless I, whose lower case is not.
	"\u212aelvin.example", "ac\u212Ae.test:5000", "\u0130stanbul.example", "\u0131.example",
	// IPv6: zones (raw and %-escaped), v4-mapped, upper case, no brackets.
	"[fe80::1%25eth0]:80", "[fe80::1%eth0]", "[::ffff:127.0.0.1]:5000", "[::FFFF:7F00:1]",
	"[2001:DB8::1]:443", "2001:db8::1", "[::1]:", "[::1]:0", "[]", "[::1]]", "[[::1]]",
	// Trailing and leading dots.
	"example.com..", "example.com.:80", ".example.com", ".", ".:80", "a.:443",
	// %-escapes and other URL syntax.
	"%65xample.com", "ex%2fample.com", "example.com%00", "example.com#frag", "example.com?q",
	"user:pass@example.com", `example.com\evil`, "http://example.com",
	// Ports: huge, zero-padded, signed, spaced, defaults written long.
	"localhost:99999999999999999999", "localhost:65535", "localhost:00080", "localhost:0443",
	"localhost:000000080", "localhost: 80", "localhost:8_0", "localhost:0x50", "localhost:１２３",
	// Bytes that must never pass: NUL, controls, whitespace, DEL, high bytes.
	"\x00", "host\x00", "host\t.com", "host\r\n.com", " host.com", "host.com ", "host\x7f.com",
	"host\xff.com", "\xc0\xafetc",
	// Lengths: a 63-byte label, a 64-byte one, a name near 253.
	strings.Repeat("a", 63) + ".example", strings.Repeat("a", 64) + ".example",
	strings.Repeat("abcdefghi.", 25) + "com", strings.Repeat("abcdefghi.", 26) + "com",
}

// FuzzNormalizeHost checks the contract NormalizeHost's doc comment states,
// for any input: it never panics; a refusal is ErrMalformedHost; whether a
// host is accepted does not depend on the scheme; and an accepted host is
// its own normal form, plain lower-case ASCII with nothing a URL or a
// header would read differently, with a canonical port unless it is the
// scheme's default, which is dropped.
func FuzzNormalizeHost(f *testing.F) {
	for _, tc := range hostCases {
		f.Add(tc.in, tc.https)
		f.Add(tc.want, !tc.https)
	}
	for _, s := range malformedHosts {
		f.Add(s, false)
		f.Add(s, true)
	}
	for _, s := range nastyHosts {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, raw string, https bool) {
		got, err := tenants.NormalizeHost(raw, https)
		other, otherErr := tenants.NormalizeHost(raw, !https)
		if (err == nil) != (otherErr == nil) {
			t.Fatalf("NormalizeHost(%q): https=%v gives %q, %v but https=%v gives %q, %v; the scheme may only change the default port",
				raw, https, got, err, !https, other, otherErr)
		}
		if err != nil {
			if !errors.Is(err, tenants.ErrMalformedHost) {
				t.Fatalf("NormalizeHost(%q, %v) = %v, want ErrMalformedHost", raw, https, err)
			}
			if got != "" {
				t.Fatalf("NormalizeHost(%q, %v) = %q with error %v, want \"\"", raw, https, got, err)
			}
			return
		}
		checkNormalHost(t, raw, https, got)
		checkNormalHost(t, raw, !https, other)
		if hostPart(got) != hostPart(other) {
			t.Fatalf("NormalizeHost(%q): host %q under one scheme, %q under the other", raw, hostPart(got), hostPart(other))
		}
	})
}

// checkNormalHost checks one accepted result, got = NormalizeHost(raw, https).
func checkNormalHost(t *testing.T, raw string, https bool, got string) {
	t.Helper()
	if again, err := tenants.NormalizeHost(got, https); err != nil || again != got {
		t.Fatalf("NormalizeHost(%q, %v) = %q, but normalising that again gives %q, %v", raw, https, got, again, err)
	}
	for i := 0; i < len(raw); i++ {
		if raw[i] >= 0x80 {
			t.Fatalf("NormalizeHost(%q, %v) = %q: accepted a non-ASCII host; only plain host[:port] may pass", raw, https, got)
		}
	}
	if got == "" {
		t.Fatalf("NormalizeHost(%q, %v) = \"\" without an error", raw, https)
	}
	for i := 0; i < len(got); i++ {
		c := got[i]
		if c <= ' ' || c >= 0x7f || c >= 'A' && c <= 'Z' || strings.IndexByte(`/@?#%\`, c) >= 0 {
			t.Fatalf("NormalizeHost(%q, %v) = %q: byte %q at %d has no place in a normal host", raw, https, got, c, i)
		}
	}
	host, port := hostPart(got), got[len(hostPart(got)):]
	if port != "" {
		p := strings.TrimPrefix(port, ":")
		n, err := strconv.Atoi(p)
		switch {
		case p == port, err != nil, n < 1, n > 65535, strconv.Itoa(n) != p:
			t.Fatalf("NormalizeHost(%q, %v) = %q: port %q is not a canonical 1-65535", raw, https, got, p)
		case https && n == 443, !https && n == 80:
			t.Fatalf("NormalizeHost(%q, %v) = %q kept the scheme's default port", raw, https, got)
		}
	} else {
		def := "80"
		if https {
			def = "443"
		}
		if withDefault, err := tenants.NormalizeHost(got+":"+def, https); err != nil || withDefault != got {
			t.Fatalf("NormalizeHost(%q:%s, %v) = %q, %v; want %q: the default port is the same host", got, def, https, withDefault, err, got)
		}
	}
	// Whatever serves or links the host reads it the same way: a URL
	// built on it has exactly it as its host, and nothing as user info,
	// path, query or fragment.
	u, err := url.Parse("http://" + got + "/")
	if err != nil || u.Host != got || u.User != nil || u.Path != "/" || u.RawQuery != "" || u.Fragment != "" {
		t.Fatalf("NormalizeHost(%q, %v) = %q, which a URL reads as %#v, %v", raw, https, got, u, err)
	}
	if strings.HasPrefix(host, "[") != strings.HasSuffix(host, "]") {
		t.Fatalf("NormalizeHost(%q, %v) = %q: unbalanced brackets", raw, https, got)
	}
}

// hostPart is the host of a normalized host[:port], without the port.
func hostPart(h string) string {
	if i := strings.LastIndexByte(h, ':'); i >= 0 && !strings.HasSuffix(h, "]") {
		if strings.HasPrefix(h, "[") {
			return h[:strings.IndexByte(h, ']')+1]
		}
		return h[:i]
	}
	return h
}
