package requestid

import (
	"context"
	"crypto/rand"
	"encoding/base64"
)

// Header is the HTTP header that carries a request's id, both ways.
const Header = "X-Request-ID"

// MaxLen is the longest id Valid accepts, in bytes.
const MaxLen = 64

// idBytes is how much randomness New puts in an id: 96 bits, which makes a
// collision among a billion ids about one in 10^11.
const idBytes = 12

// New returns a fresh random id of 16 URL-safe characters.
func New() string {
	var b [idBytes]byte
	// crypto/rand.Read never returns an error (Go 1.24): it crashes the
	// program instead if the kernel cannot supply randomness.
	_, _ = rand.Read(b[:])
	var s [16]byte
	base64.RawURLEncoding.Encode(s[:], b[:])
	return string(s[:])
}

// allowed marks the bytes an id may hold (see the package documentation).
var allowed = func() (t [256]bool) {
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for _, c := range "-._~+/=:" {
		t[c] = true
	}
	return t
}()

// Valid reports whether id may be used as a request id: 1 to MaxLen bytes,
// each a letter, a digit or one of -._~+/=: .
func Valid(id string) bool {
	if len(id) == 0 || len(id) > MaxLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		if !allowed[id[i]] {
			return false
		}
	}
	return true
}

// ctx is the context node that carries an id. It is one allocation where
// context.WithValue would be two (the node and the string boxed in an
// interface), which matters on a path every request takes; it answers its
// key with itself, a pointer, which boxes for free.
type ctx struct {
	context.Context
	id string
}

type key struct{}

func (c *ctx) Value(k any) any {
	if k == (key{}) {
		return c
	}
	return c.Context.Value(k)
}

// NewContext returns a copy of parent that carries id.
func NewContext(parent context.Context, id string) context.Context {
	return &ctx{Context: parent, id: id}
}

// FromContext returns the id ctx carries, if any.
func FromContext(c context.Context) (string, bool) {
	v, ok := c.Value(key{}).(*ctx)
	if !ok {
		return "", false
	}
	return v.id, true
}
