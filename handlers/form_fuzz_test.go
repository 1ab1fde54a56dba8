package handlers

import (
	"bytes"
	"errors"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"

	"tenantry/models"
	"tenantry/problem"
)

// formFuzzLimit is the body limit FuzzFormUser reads forms under: small, so
// that the 413 path is reached too.
const formFuzzLimit = 4 << 10

// readForm reads body of contentType as the pages read a user form.
func readForm(contentType string, body []byte) (models.UserInput, error) {
	r := httptest.NewRequest("POST", "/users", nil)
	r.Header.Set("Content-Type", contentType)
	r.Body = http.MaxBytesReader(httptest.NewRecorder(), io.NopCloser(bytes.NewReader(body)), formFuzzLimit)
	return userForm(r, formFuzzLimit)
}

// FuzzFormUser: no form body, urlencoded or multipart, and no Content-Type
// makes userForm panic or answer anything but a client error (400, 413,
// 415); every field it reads is valid UTF-8; and every user it reads that
// the domain accepts is stored as text that shows as it is (NFC, no
// control or format characters), stays as it is when normalized again, and
// is read back the same when the form is sent again, urlencoded or
// multipart.
func FuzzFormUser(f *testing.F) {
	mp := func(fields ...string) (string, []byte) {
		var buf bytes.Buffer
		mw := multipart.NewWriter(&buf)
		_ = mw.SetBoundary("fuzzboundary")
		for i := 0; i+1 < len(fields); i += 2 {
			_ = mw.WriteField(fields[i], fields[i+1])
		}
		_ = mw.Close()
		return mw.FormDataContentType(), buf.Bytes()
	}
	const urlencoded = "application/x-www-form-urlencoded"
	for _, s := range []struct {
		ctype string
		body  []byte
	}{
		{urlencoded, []byte("name=Ada&email=ada%40example.com")},
		{urlencoded, []byte("name=+Ada+&email=ADA%40Example.COM")},
		{urlencoded, []byte("name=Jose%CC%81&email=JOSE%CC%81%40example.com")},
		{urlencoded, []byte("name=Ada%C2%85&email=ada%40example.com")},
		{urlencoded, []byte("name=Ada%E2%80%8B&email=a%E2%80%8B%40example.com")},
		{urlencoded, []byte("name=%E2%80%AEAda&email=ada%40example.com")},
		{urlencoded, []byte("name=Z%FFz&email=z%FF%40example.com")},
		{urlencoded, []byte("name=a&name=b&email=")},
		{urlencoded, []byte("name=%zz&email=a")},
		{urlencoded, []byte("name=a;email=b")},
		{urlencoded, []byte("")},
		{urlencoded, []byte("name=" + strings.Repeat("x", formFuzzLimit))},
		{"application/x-www-form-urlencoded; charset=utf-8", []byte("name=A&email=a%40example.com")},
		{"multipart/form-data; boundary=fuzzboundary", []byte("--fuzzboundary\r\nno header end")},
		{"multipart/form-data", []byte("name=A")},
		{"application/json", []byte(`{"name":"A","email":"a@example.com"}`)},
		{"", []byte("name=A")},
	} {
		f.Add(s.ctype, s.body)
	}
	for _, fields := range [][]string{
		{"name", "Ada", "email", "ada@example.com"},
		{"name", "Jose\u0301", "email", "JOSE\u0301@example.com"},
		{"name", "A\u200b", "email", "a\u202e@example.com"},
		{"name", "\xff", "email", "\x00@example.com"},
		{"email", strings.Repeat("x", formFuzzLimit)},
	} {
		ct, b := mp(fields...)
		f.Add(ct, b)
	}
	f.Fuzz(func(t *testing.T, contentType string, body []byte) {
		in, err := readForm(contentType, body)
		if err != nil {
			var pe *problem.Error
			if !errors.As(err, &pe) {
				t.Fatalf("error %v (%T) is not a *problem.Error", err, err)
			}
			switch pe.Problem.Status {
			case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType:
			default:
				t.Fatalf("status %d for a form: %+v", pe.Problem.Status, pe.Problem)
			}
			return
		}
		for _, v := range []*string{in.Name, in.Email} {
			if v != nil && !utf8.ValidString(*v) {
				t.Fatalf("field %q read as invalid UTF-8", *v)
			}
		}
		n := in.Normalized()
		if n2 := n.Normalized(); !sameFormInput(n, n2) {
			t.Fatalf("normalizing twice changes %q into %q", formInputText(n), formInputText(n2))
		}
		if n.Validate(true) != nil {
			return
		}
		for _, v := range []*string{n.Name, n.Email} {
			if v == nil {
				continue
			}
			if !norm.NFC.IsNormalString(*v) {
				t.Fatalf("%q accepted, not in NFC", *v)
			}
			if strings.ContainsFunc(*v, func(r rune) bool { return unicode.In(r, unicode.Cc, unicode.Cf, unicode.Zl, unicode.Zp) }) {
				t.Fatalf("%q accepted with a control or format character", *v)
			}
		}
		// Sent again, as a browser would send the accepted values.
		vals := url.Values{}
		var mpFields []string
		if n.Name != nil {
			vals.Set("name", *n.Name)
			mpFields = append(mpFields, "name", *n.Name)
		}
		if n.Email != nil {
			vals.Set("email", *n.Email)
			mpFields = append(mpFields, "email", *n.Email)
		}
		again, err := readForm(urlencoded, []byte(vals.Encode()))
		if err != nil {
			t.Fatalf("the accepted form %q is refused when sent again: %v", vals.Encode(), err)
		}
		if n2 := again.Normalized(); !sameFormInput(n, n2) {
			t.Fatalf("round trip through a form: %q became %q", formInputText(n), formInputText(n2))
		}
		ct, b := mp(mpFields...)
		if len(b) > formFuzzLimit {
			return
		}
		again, err = readForm(ct, b)
		if err != nil {
			t.Fatalf("the accepted form %q is refused when sent again as multipart: %v", formInputText(n), err)
		}
		if n2 := again.Normalized(); !sameFormInput(n, n2) {
			t.Fatalf("round trip through a multipart form: %q became %q", formInputText(n), formInputText(n2))
		}
	})
}

func sameFormInput(a, b models.UserInput) bool {
	eq := func(x, y *string) bool { return (x == nil) == (y == nil) && (x == nil || *x == *y) }
	return eq(a.Name, b.Name) && eq(a.Email, b.Email)
}

// formInputText makes an input readable in a failure message.
func formInputText(in models.UserInput) [2]string {
	s := func(p *string) string {
		if p == nil {
			return "<nil>"
		}
		return *p
	}
	return [2]string{s(in.Name), s(in.Email)}
}
