package handlers

import (
	"bytes"
	"context"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
)

func TestValidKey(t *testing.T) {
	for _, tc := range []struct {
		key  string
		want bool
	}{
		{"a", true},
		{"8e03978e-40d5-43e8-bc93-6894a57f9324", true},
		{`"quoted, as the draft writes it"`, true},
		{strings.Repeat("k", 255), true},
		{"", false},
		{strings.Repeat("k", 256), false},
		{"tab\there", false},
		{"del\x7f", false},
		{"clé", false},
	} {
		if got := validKey(tc.key); got != tc.want {
			t.Errorf("validKey(%.20q) = %v, want %v", tc.key, got, tc.want)
		}
	}
}

func TestStorable(t *testing.T) {
	for status, want := range map[int]bool{
		200: true, 201: true, 204: true, 303: true, 400: true, 404: true, 409: true, 422: true,
		408: false, 425: false, 429: false, 500: false, 503: false,
	} {
		if got := storable(status); got != want {
			t.Errorf("storable(%d) = %v, want %v", status, got, want)
		}
	}
}

func TestFormToken(t *testing.T) {
	var mp bytes.Buffer
	mw := multipart.NewWriter(&mp)
	_ = mw.WriteField("name", "Ada")
	_ = mw.WriteField(formTokenField, "tok-multipart")
	_ = mw.Close()
	for _, tc := range []struct {
		name, ctype, body, want string
	}{
		{"urlencoded", "application/x-www-form-urlencoded", "name=Ada&" + formTokenField + "=tok-1", "tok-1"},
		{"urlencoded without token", "application/x-www-form-urlencoded", "name=Ada", ""},
		{"multipart", mw.FormDataContentType(), mp.String(), "tok-multipart"},
		{"JSON", "application/json", `{"idempotency_key":"x"}`, ""},
		{"no content type", "", formTokenField + "=x", ""},
		{"malformed multipart", "multipart/form-data; boundary=zz", "garbage", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "/users", nil)
			if tc.ctype != "" {
				r.Header.Set("Content-Type", tc.ctype)
			}
			if got := formToken(r, []byte(tc.body)); got != tc.want {
				t.Errorf("formToken = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestAcquire: a key held by one request is refused to another at once,
// or, for a form, handed over when the first lets go; a waiter gives up
// with its context.
func TestAcquire(t *testing.T) {
	id := &Idempotency{}
	ctx := context.Background()
	release, ok := id.acquire(ctx, "k", false)
	if !ok {
		t.Fatal("first acquire refused")
	}
	if _, ok := id.acquire(ctx, "k", false); ok {
		t.Fatal("second acquire of a held key succeeded")
	}
	if r, ok := id.acquire(ctx, "other", false); !ok {
		t.Fatal("another key refused")
	} else {
		r()
	}

	got := make(chan bool, 1)
	go func() {
		r, ok := id.acquire(ctx, "k", true)
		if ok {
			r()
		}
		got <- ok
	}()
	select {
	case ok := <-got:
		t.Fatalf("a waiter returned (%v) while the key was held", ok)
	case <-time.After(50 * time.Millisecond):
		// Not a synchronisation: a waiter that returned early fails above.
	}
	release()
	if ok := <-got; !ok {
		t.Fatal("the waiter did not get the key once it was released")
	}

	hold, _ := id.acquire(ctx, "k", false)
	defer hold()
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, ok := id.acquire(cctx, "k", true); ok {
		t.Fatal("a waiter with a cancelled context got a held key")
	}
}

// TestKeyedWriter: the buffer answers as Gin's writer does and sends
// nothing until flushed.
func TestKeyedWriter(t *testing.T) {
	rec := httptest.NewRecorder()
	c, _ := gin.CreateTestContext(rec)
	w := &keyedWriter{real: c.Writer, header: http.Header{}, status: http.StatusOK, size: -1}
	w.Header().Set("Location", "/x")
	w.WriteHeader(http.StatusCreated)
	if w.Written() || w.Status() != http.StatusCreated {
		t.Fatalf("after WriteHeader: written %v, status %d", w.Written(), w.Status())
	}
	_, _ = w.WriteString("hello")
	w.WriteHeader(http.StatusTeapot) // ignored once the answer has begun
	w.Flush()
	if rec.Body.Len() != 0 || rec.Header().Get("Location") != "" {
		t.Fatal("the buffer let the answer through before flush")
	}
	w.flush()
	if rec.Code != http.StatusCreated || rec.Body.String() != "hello" || rec.Header().Get("Location") != "/x" || w.Size() != 5 {
		t.Errorf("flushed %d %q Location %q size %d", rec.Code, rec.Body, rec.Header().Get("Location"), w.Size())
	}
}
