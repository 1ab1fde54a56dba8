package models

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
)

// encodeJSON is what the API's generic encoder writes (problem.EncodeJSON),
// without its trailing newline.
func encodeJSON(t *testing.T, v any) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

func TestAppendJSONMatchesEncodingJSON(t *testing.T) {
	at := time.Date(2026, 12, 1, 22, 18, 59, 123456000, time.UTC)
	for _, tc := range []struct {
		name           string
		userName, mail string
		created        time.Time
	}{
		{"plain", "Ada Lovelace", "ada@example.com", at},
		{"html", `<b>&"x"</b> \ '`, "a&b@example.com", at},
		{"controls", "a\x00b\x01\b\f\n\r\t\x1f\x7f", "c@example.com", at},
		{"unicode", "Zoë 日本 🚀 \u2028\u2029 \u200b\u202e", "z@example.com", at},
		{"invalid utf-8", "a\xffb\xc3(\xe2\x82", "i@example.com", at},
		{"whole seconds", "S", "s@example.com", at.Truncate(time.Second)},
		{"other zone", "Z", "z@example.com", at.In(time.FixedZone("x", 5*3600+1800))},
		{"zero id and time", "", "", time.Time{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := User{ID: 42, Name: tc.userName, Email: tc.mail, CreatedAt: tc.created, UpdatedAt: at.Add(time.Microsecond)}
			if got, want := u.AppendJSON(nil), encodeJSON(t, u); !bytes.Equal(got, want) {
				t.Errorf("user:\n got %s\nwant %s", got, want)
			}
			for _, p := range []UserPage{
				{Users: []User{}, Total: 0, Limit: 50},
				{Users: []User{u}, Total: 1, Limit: 1, Offset: 0},
				{Users: []User{u, u, {ID: 1 << 62}}, Total: 1 << 40, Limit: 500, Offset: 7},
			} {
				if got, want := p.AppendJSON(nil), encodeJSON(t, p); !bytes.Equal(got, want) {
					t.Errorf("page:\n got %s\nwant %s", got, want)
				}
			}
		})
	}
}

// FuzzUserJSON holds the appender to encoding/json on any name and email;
// `go test` runs the seeds, `go test -fuzz FuzzUserJSON ./models` explores.
func FuzzUserJSON(f *testing.F) {
	for _, s := range []string{"", "a", "\"\\", "\x00\x1f\x7f", "\u2028", "\xff\xfe", "é\xc3", "<>&"} {
		f.Add(s, s+"@example.com", int64(1700000000123456789))
	}
	f.Fuzz(func(t *testing.T, name, email string, nanos int64) {
		u := User{ID: uint64(len(name)), Name: name, Email: email,
			CreatedAt: time.Unix(0, nanos).UTC(), UpdatedAt: time.Unix(0, nanos/3).UTC()}
		if got, want := u.AppendJSON(nil), encodeJSON(t, u); !bytes.Equal(got, want) {
			t.Errorf("got %s\nwant %s", got, want)
		}
	})
}
