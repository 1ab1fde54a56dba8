package models

import (
	"net/mail"
	"strings"
	"time"
	"unicode/utf8"
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

// Normalized returns the input with the name trimmed and the email trimmed
// and lower-cased, the form in which both are validated and stored.
func (in UserInput) Normalized() UserInput {
	out := UserInput{}
	if in.Name != nil {
		n := strings.TrimSpace(*in.Name)
		out.Name = &n
	}
	if in.Email != nil {
		e := strings.ToLower(strings.TrimSpace(*in.Email))
		out.Email = &e
	}
	return out
}

// Validate checks a normalized input. With partial set, absent fields are
// allowed; otherwise every field is required. It returns a
// *ValidationError listing every problem, or nil.
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
		add("name", "must not contain control characters")
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
	case !validEmail(*in.Email):
		add("email", "must be a valid email address, like name@example.com")
	}

	if len(fields) > 0 {
		return &ValidationError{Fields: fields}
	}
	return nil
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

// validEmail accepts a bare addr-spec (no display name, no comments) whose
// domain has at least one dot-free label and no leading or trailing dot.
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
	return !strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r == 0x7f })
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
