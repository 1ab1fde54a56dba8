package problem_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"

	"tenantry/models"
	"tenantry/problem"
)

// fuzzLimit is the body limit the fuzz targets decode under: small, so that
// the 413 path is reached too.
const fuzzLimit = 4 << 10

// decodeUser decodes body as the API decodes a user: a JSON body under the
// limit, read by DecodeJSON.
func decodeUser(body []byte) (models.UserInput, error) {
	r := httptest.NewRequest("POST", "/api/users", nil)
	r.Header.Set("Content-Type", "application/json")
	r.Body = http.MaxBytesReader(httptest.NewRecorder(), io.NopCloser(bytes.NewReader(body)), fuzzLimit)
	var in models.UserInput
	err := problem.DecodeJSON(r, &in, "application/json")
	return in, err
}

// FuzzDecodeUser: no body makes DecodeJSON panic or answer anything but a
// client error of its own (400, 413, 422 with the fields named); and every
// user it accepts that the domain accepts too is stored as text that shows
// as it is (valid UTF-8, NFC, no control or format characters), is
// normalized for good (normalizing again changes nothing), and comes back
// the same when encoded as the API answers and decoded again.
func FuzzDecodeUser(f *testing.F) {
	for _, s := range []string{
		`{"name":"Ada","email":"ada@example.com"}`,
		`{"name":"  Ada  ","email":" ADA@Example.COM "}`,
		`{"name":"Jose\u0301","email":"JOSE\u0301@example.com"}`,
		`{"name":"Zoë 李 🙂","email":"zoë@exämple.com"}`,
		`{"name":"A\u0085B","email":"a@example.com"}`,
		`{"name":"A\u200bB","email":"a\u200b@example.com"}`,
		`{"name":"A\u202eB","email":"a@example.com"}`,
		`{"name":"\u0000","email":"a@example.com"}`,
		`{"name":"a\ud800b","email":"a@example.com"}`,
		"{\"name\":\"\xff\xfe\",\"email\":\"a@example.com\"}",
		`{"name":1,"email":true}`,
		`{"name":"A","email":"a@example.com","admin":true}`,
		`{"NAME":"A","Email":"a@example.com"}`,
		`{"name":"A","name":"B"}`,
		`{"name":null}`,
		`{"name":{"x":[1,2]}}`,
		`{} {}`,
		`{"name":"A"}      `,
		`null`,
		`[]`,
		``,
		`{"name":`,
		`{"name":"` + strings.Repeat("x", fuzzLimit) + `"}`,
		`{"name":"A"}` + strings.Repeat(" ", fuzzLimit),
		`{"email":"\u212a@example.com"}`,
		`{"email":"\u0130@example.com"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		in, err := decodeUser(body)
		if err != nil {
			var pe *problem.Error
			if !errors.As(err, &pe) {
				t.Fatalf("error %v (%T) is not a *problem.Error", err, err)
			}
			switch pe.Problem.Status {
			case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
			case http.StatusUnprocessableEntity:
				if len(pe.Problem.Errors) == 0 {
					t.Fatalf("422 names no field: %+v", pe.Problem)
				}
				for _, fe := range pe.Problem.Errors {
					if fe.Field == "" || fe.Message == "" {
						t.Fatalf("422 with an empty field error: %+v", pe.Problem)
					}
				}
			default:
				t.Fatalf("status %d for a body: %+v", pe.Problem.Status, pe.Problem)
			}
			return
		}
		n := in.Normalized()
		checkNormalized(t, n)
		if n.Validate(true) != nil {
			return
		}
		checkShown(t, n)
		// Encoded as a request body and read again: the same user.
		b, err := json.Marshal(n)
		if err != nil {
			t.Fatal(err)
		}
		again, err := decodeUser(b)
		if err != nil {
			t.Fatalf("the accepted user %s is refused when sent again: %v", b, err)
		}
		if n2 := again.Normalized(); !sameInput(n, n2) {
			t.Fatalf("round trip through a request: %s became %+v", b, n2)
		}
		if err := again.Normalized().Validate(true); err != nil {
			t.Fatalf("the accepted user %s does not validate when sent again: %v", b, err)
		}
		// Encoded as the API answers: the same text.
		var u models.User
		n.Apply(&u)
		var shown models.User
		if err := json.Unmarshal(u.AppendJSON(nil), &shown); err != nil {
			t.Fatalf("the answer for %+v is not JSON: %v", u, err)
		}
		if shown.Name != u.Name || shown.Email != u.Email {
			t.Fatalf("answer shows %q %q, stored %q %q", shown.Name, shown.Email, u.Name, u.Email)
		}
	})
}

// checkNormalized fails t unless normalizing n again changes nothing.
func checkNormalized(t *testing.T, n models.UserInput) {
	t.Helper()
	if n2 := n.Normalized(); !sameInput(n, n2) {
		t.Fatalf("normalizing twice changes %+v into %+v", show(n), show(n2))
	}
}

// checkShown fails t unless every field of a valid n is text that shows as
// it is stored: valid UTF-8 in NFC without control, format or line and
// paragraph separator characters, nor white space at either end.
func checkShown(t *testing.T, n models.UserInput) {
	t.Helper()
	for field, v := range map[string]*string{"name": n.Name, "email": n.Email} {
		if v == nil {
			continue
		}
		s := *v
		switch {
		case !utf8.ValidString(s):
			t.Fatalf("%s %q accepted, not valid UTF-8", field, s)
		case !norm.NFC.IsNormalString(s):
			t.Fatalf("%s %q accepted, not in NFC", field, s)
		case strings.TrimSpace(s) != s:
			t.Fatalf("%s %q accepted with white space at an end", field, s)
		}
		if i := strings.IndexFunc(s, func(r rune) bool {
			return unicode.In(r, unicode.Cc, unicode.Cf, unicode.Zl, unicode.Zp)
		}); i >= 0 {
			t.Fatalf("%s %q accepted with %U", field, s, []rune(s[i:])[0])
		}
	}
}

func sameInput(a, b models.UserInput) bool {
	eq := func(x, y *string) bool { return (x == nil) == (y == nil) && (x == nil || *x == *y) }
	return eq(a.Name, b.Name) && eq(a.Email, b.Email)
}

// show makes an input readable in a failure message.
func show(in models.UserInput) [2]string {
	s := func(p *string) string {
		if p == nil {
			return "<nil>"
		}
		return *p
	}
	return [2]string{s(in.Name), s(in.Email)}
}
