package models

import (
	"errors"
	"strings"
)

// Sentinel errors returned (wrapped) by the data operations; test with errors.Is.
var (
	// ErrNotFound means no row has the requested id in this tenant.
	ErrNotFound = errors.New("not found")
	// ErrEmailTaken means another user of the same tenant has the email.
	ErrEmailTaken = errors.New("email already used")
)

// FieldError is one invalid field and a message a person can act on.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// ValidationError lists every invalid field of one input.
type ValidationError struct {
	Fields []FieldError
}

func (e *ValidationError) Error() string {
	parts := make([]string, 0, len(e.Fields))
	for _, f := range e.Fields {
		parts = append(parts, f.Field+": "+f.Message)
	}
	return "invalid input: " + strings.Join(parts, "; ")
}

// Message returns the message for field, or "" when the field is valid.
func (e *ValidationError) Message(field string) string {
	for _, f := range e.Fields {
		if f.Field == field {
			return f.Message
		}
	}
	return ""
}
