package web

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"net/http"
	"strings"
	"time"
)

// FlashTTL is how long a flash message waits to be shown. It only has to
// outlive one redirect.
const FlashTTL = 5 * time.Minute

// maxFlashBytes bounds a message so its cookie stays far below the 4 KB
// browsers keep.
const maxFlashBytes = 1024

// SessionKey returns the key that signs flash cookies: configured as is
// when set, otherwise 32 random bytes, with generated true so the caller can
// warn that messages will not survive a restart or cross processes.
func SessionKey(configured string) (key []byte, generated bool) {
	if configured != "" {
		return []byte(configured), false
	}
	key = make([]byte, 32)
	_, _ = rand.Read(key) // crypto/rand.Read never fails (Go 1.24+)
	return key, true
}

// Flash carries one message from a request that redirects to the page the
// redirect leads to, in a cookie signed with HMAC-SHA256.
//
// The cookie has no Domain attribute (so it stays on the host that set it),
// Path=/, HttpOnly and SameSite=Lax, and is Secure on HTTPS. Browsers share
// a host's cookies across its ports, so the tenant's name goes into both
// the cookie's name and its signature: another tenant on the same host
// neither sees the message nor can replay it as its own.
type Flash struct {
	// Key signs and verifies the cookie.
	Key []byte
	// Tenant is the name of the workspace the message belongs to.
	Tenant string
	// Secure marks the cookie Secure; set it for requests over HTTPS.
	Secure bool
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

func (f Flash) now() time.Time {
	if f.Now != nil {
		return f.Now()
	}
	return time.Now()
}

func (f Flash) mac(parts ...[]byte) []byte {
	m := hmac.New(sha256.New, f.Key)
	for _, p := range parts {
		// Length-prefix each part, so no two different inputs sign the same.
		_ = binary.Write(m, binary.BigEndian, uint32(len(p)))
		m.Write(p)
	}
	return m.Sum(nil)
}

// CookieName is the name of this tenant's flash cookie. It is derived from
// the key and the tenant, so it is fixed per tenant yet does not tell
// other tenants on the same host whose cookie it is.
func (f Flash) CookieName() string {
	return "flash_" + hex.EncodeToString(f.mac([]byte("flash cookie name"), []byte(f.Tenant))[:8])
}

func (f Flash) cookie(value string, maxAge int) *http.Cookie {
	return &http.Cookie{
		Name: f.CookieName(), Value: value, Path: "/", MaxAge: maxAge,
		HttpOnly: true, Secure: f.Secure, SameSite: http.SameSiteLaxMode,
	}
}

// Set leaves msg for the next page that calls Take. A message longer than
// 1 KB is cut short.
func (f Flash) Set(w http.ResponseWriter, msg string) {
	if len(msg) > maxFlashBytes {
		msg = strings.ToValidUTF8(msg[:maxFlashBytes], "")
	}
	payload := binary.BigEndian.AppendUint64(nil, uint64(f.now().Add(FlashTTL).Unix()))
	payload = append(payload, msg...)
	sig := f.mac([]byte("flash"), []byte(f.Tenant), payload)
	value := base64.RawURLEncoding.EncodeToString(payload) + "." + base64.RawURLEncoding.EncodeToString(sig)
	http.SetCookie(w, f.cookie(value, int(FlashTTL/time.Second)))
}

// Take returns the tenant's message, if a valid one is waiting, and deletes
// the cookie so the message is shown once. A cookie that is forged,
// tampered with, signed for another tenant or expired yields "".
func (f Flash) Take(w http.ResponseWriter, r *http.Request) string {
	c, err := r.Cookie(f.CookieName())
	if err != nil {
		return ""
	}
	http.SetCookie(w, f.cookie("", -1))
	b64Payload, b64Sig, ok := strings.Cut(c.Value, ".")
	if !ok {
		return ""
	}
	payload, err1 := base64.RawURLEncoding.DecodeString(b64Payload)
	sig, err2 := base64.RawURLEncoding.DecodeString(b64Sig)
	if err1 != nil || err2 != nil || len(payload) < 8 {
		return ""
	}
	if !hmac.Equal(sig, f.mac([]byte("flash"), []byte(f.Tenant), payload)) {
		return ""
	}
	if expires := int64(binary.BigEndian.Uint64(payload[:8])); f.now().Unix() > expires {
		return ""
	}
	return string(payload[8:])
}
