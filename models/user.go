package models

import (
	"net/mail"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// User is a person known to one tenant.
type User struct {
	ID        uint64    `json:"id" gorm:"primaryKey"`
	Name      string    `json:"name" gorm:"not null"`
	Email     string    `json:"email" gorm:"not null"`
	CreatedAt time.Time `json:"created_at" gorm:"not null"`
	UpdatedAt time.Time `json:"updated_at" gorm:"not null"`
}

// Limits on user fields.
const (
	MaxNameLength  = 200
	MaxEmailLength = 254
)

// UserInput is a user as submitted. A nil field was not submitted: for a
// partial update it is left as it is, for a create or replace it is missing.
type UserInput struct {
	Name  *string `json:"name"`
	Email *string `json:"email"`
}

// Normalized returns the input in the form in which it is validated and
// stored: the name trimmed, the email trimmed and lower-cased, and both in
// Unicode Normalization Form C. NFC makes text that looks the same compare
// the same: "é" typed as one code point or as "e" and a combining accent is
// one email, so the uniqueness of emails holds for what people see. It is
// idempotent.
func (in UserInput) Normalized() UserInput {
	out := UserInput{}
	if in.Name != nil {
		n := norm.NFC.String(strings.TrimSpace(*in.Name))
		out.Name = &n
	}
	if in.Email != nil {
		// Lower-cased in NFD, where two spellings of the same text are
		// the same code points, so that they cannot lower-case apart
		// (Unicode's canonical caseless matching does the same); then
		// composed.
		e := norm.NFC.String(strings.ToLower(norm.NFD.String(strings.TrimSpace(*in.Email))))
		out.Email = &e
	}
	return out
}

// Messages for text that would not show as it is stored. The first and
// the last are older than the others and pinned word for word by clients
// (openapi.yaml, the Postman collection, the pages' tests): keep them.
const (
	msgNameControl   = "must not contain control characters"
	msgInvisible     = "must not contain invisible characters, such as zero-width spaces or text-direction marks"
	msgEmailNotValid = "must be a valid email address, like name@example.com"
)

// Validate checks a normalized input. With partial set, absent fields are
// allowed; otherwise every field is required. It returns a
// *ValidationError listing every problem, or nil.
//
// Text must be shown as it is stored, so both fields refuse what a person
// cannot see or what changes how the text around it is shown: control
// characters (Unicode category Cc, U+0085 NEL included), line and
// paragraph separators, and format characters (Cf: zero-width spaces and
// joiners, soft hyphens, U+FEFF, and every bidirectional control such as
// U+202E, which turns the rest of a line around). The price is that a few
// legitimate uses of Cf are refused too: the zero-width non-joiner some
// Persian and Indic spellings use, and the joiners inside emoji sequences.
func (in UserInput) Validate(partial bool) error {
	var fields []FieldError
	add := func(field, msg string) { fields = append(fields, FieldError{Field: field, Message: msg}) }

	switch {
	case in.Name == nil:
		if !partial {
			add("name", "is required")
		}
	case *in.Name == "":
		add("name", "must not be empty")
	case utf8.RuneCountInString(*in.Name) > MaxNameLength:
		add("name", "must be at most 200 characters")
	case !utf8.ValidString(*in.Name) || strings.ContainsFunc(*in.Name, isControl):
		add("name", msgNameControl)
	case strings.ContainsFunc(*in.Name, isInvisible):
		add("name", msgInvisible)
	}

	switch {
	case in.Email == nil:
		if !partial {
			add("email", "is required")
		}
	case *in.Email == "":
		add("email", "must not be empty")
	case len(*in.Email) > MaxEmailLength:
		add("email", "must be at most 254 characters")
	case strings.ContainsFunc(*in.Email, isInvisible):
		add("email", msgInvisible)
	case !validEmail(*in.Email):
		add("email", msgEmailNotValid)
	}

	if len(fields) > 0 {
		return &ValidationError{Fields: fields}
	}
	return nil
}

// isControl reports whether r is a control character (Cc, C0 and C1, NEL
// included) or a line or paragraph separator: characters that break a
// line or mean nothing in a name.
func isControl(r rune) bool {
	return unicode.Is(unicode.Cc, r) || r == '\u2028' || r == '\u2029'
}

// isInvisible reports whether r is a format character (Cf): zero-width
// spaces and joiners (U+200B-U+200D, U+2060-U+2064, U+FEFF), the soft
// hyphen, and the bidirectional marks, embeddings, overrides and isolates
// (U+061C, U+200E-U+200F, U+202A-U+202E, U+2066-U+2069). None shows as a
// character of its own; the bidirectional ones reorder what follows.
func isInvisible(r rune) bool { return unicode.Is(unicode.Cf, r) }

// validEmail accepts a bare addr-spec (no display name, no comments) whose
// domain has at least one dot-free label and no leading or trailing dot.
// net/mail accepts any non-ASCII character in an address (RFC 6532), so
// control characters and every kind of space, which it would take inside
// the local part, are refused here.
func validEmail(s string) bool {
	a, err := mail.ParseAddress(s)
	if err != nil || a.Address != s || a.Name != "" {
		return false
	}
	at := strings.LastIndexByte(s, '@')
	local, domain := s[:at], s[at+1:]
	if local == "" || domain == "" || strings.HasPrefix(domain, ".") || strings.HasSuffix(domain, ".") ||
		strings.Contains(domain, "..") || strings.ContainsAny(domain, "[]") {
		return false
	}
	return !strings.ContainsFunc(s, func(r rune) bool { return isControl(r) || unicode.IsSpace(r) })
}

// Apply copies the submitted fields of a normalized input onto u.
func (in UserInput) Apply(u *User) {
	if in.Name != nil {
		u.Name = *in.Name
	}
	if in.Email != nil {
		u.Email = *in.Email
	}
}
