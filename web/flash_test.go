package web_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"tenantry/web"
)

// setFlash returns the cookie that f.Set writes for msg.
func setFlash(t *testing.T, f web.Flash, msg string) *http.Cookie {
	t.Helper()
	rec := httptest.NewRecorder()
	f.Set(rec, msg)
	cs := rec.Result().Cookies()
	if len(cs) != 1 {
		t.Fatalf("Set wrote %d cookies, want 1", len(cs))
	}
	return cs[0]
}

// takeFlash sends c to f.Take and returns the message and the response's cookies.
func takeFlash(t *testing.T, f web.Flash, c *http.Cookie) (string, []*http.Cookie) {
	t.Helper()
	req := httptest.NewRequest("GET", "/users", nil)
	if c != nil {
		req.AddCookie(c)
	}
	rec := httptest.NewRecorder()
	msg := f.Take(rec, req)
	return msg, rec.Result().Cookies()
}

// flip changes the character of s at i to another base64url character.
func flip(s string, i int) string {
	c := byte('A')
	if s[i] == 'A' {
		c = 'B'
	}
	return s[:i] + string(c) + s[i+1:]
}

func TestFlashCookieAttributes(t *testing.T) {
	f := web.Flash{Key: []byte("k"), Tenant: "acme"}
	c := setFlash(t, f, "User Ada added")
	if !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Path != "/" || c.Domain != "" || c.Secure || c.MaxAge <= 0 {
		t.Errorf("cookie = %+v; want HttpOnly, SameSite=Lax, Path=/, no Domain, not Secure, a positive Max-Age", c)
	}
	if strings.Contains(c.Value, "Ada") || strings.Contains(c.Name, "acme") {
		t.Errorf("cookie %s=%s shows the message or the tenant in clear", c.Name, c.Value)
	}
	if c := setFlash(t, web.Flash{Key: []byte("k"), Tenant: "acme", Secure: true}, "x"); !c.Secure {
		t.Error("Secure flash cookie is not Secure")
	}
	if a, b := f.CookieName(), (web.Flash{Key: []byte("k"), Tenant: "other"}).CookieName(); a == b {
		t.Errorf("two tenants share the cookie name %s", a)
	}
}

func TestFlashTake(t *testing.T) {
	now := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	clock := func(d time.Duration) func() time.Time { return func() time.Time { return now.Add(d) } }
	f := web.Flash{Key: []byte("key one"), Tenant: "acme", Now: clock(0)}
	good := setFlash(t, f, "User Ada added")
	tamper := func(edit func(string) string) *http.Cookie {
		c := *good
		c.Value = edit(c.Value)
		return &c
	}
	long := strings.Repeat("é", 2000)

	tests := []struct {
		name   string
		reader web.Flash
		cookie *http.Cookie
		want   string
	}{
		{"round trip", f, good, "User Ada added"},
		{"just before expiry", web.Flash{Key: f.Key, Tenant: "acme", Now: clock(web.FlashTTL)}, good, "User Ada added"},
		{"expired", web.Flash{Key: f.Key, Tenant: "acme", Now: clock(web.FlashTTL + time.Second)}, good, ""},
		{"other tenant, same cookie", web.Flash{Key: f.Key, Tenant: "evil", Now: clock(0)}, &http.Cookie{Name: web.Flash{Key: f.Key, Tenant: "evil"}.CookieName(), Value: good.Value}, ""},
		{"other key", web.Flash{Key: []byte("key two"), Tenant: "acme", Now: clock(0)}, &http.Cookie{Name: web.Flash{Key: []byte("key two"), Tenant: "acme"}.CookieName(), Value: good.Value}, ""},
		{"payload changed", f, tamper(func(v string) string { return flip(v, strings.IndexByte(v, '.')-3) }), ""},
		{"signature changed", f, tamper(func(v string) string { return flip(v, len(v)-3) }), ""},
		{"no signature", f, tamper(func(v string) string { return v[:strings.IndexByte(v, '.')] }), ""},
		{"not base64", f, tamper(func(string) string { return "%%%.%%%" }), ""},
		{"empty", f, tamper(func(string) string { return "" }), ""},
		{"no cookie", f, nil, ""},
		{"long message cut", f, setFlash(t, f, long), long[:1024]},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, cookies := takeFlash(t, tc.reader, tc.cookie)
			if got != tc.want {
				t.Errorf("Take = %.60q, want %.60q", got, tc.want)
			}
			if tc.cookie != nil {
				if len(cookies) != 1 || cookies[0].MaxAge >= 0 || cookies[0].Name != tc.cookie.Name {
					t.Errorf("Take wrote cookies %v; want the flash cookie deleted", cookies)
				}
			}
		})
	}
}

func TestSessionKey(t *testing.T) {
	key, generated := web.SessionKey("configured secret")
	if generated || string(key) != "configured secret" {
		t.Errorf("SessionKey(configured) = %q, %v; want the configured key, false", key, generated)
	}
	a, generatedA := web.SessionKey("")
	b, _ := web.SessionKey("")
	if !generatedA || len(a) != 32 || bytes.Equal(a, b) {
		t.Errorf("SessionKey(\"\") = %x, %v, then %x; want two different random 32-byte keys, true", a, generatedA, b)
	}
}
