package models

import (
	"strings"

	"tenantry/fault"
)

// Sentinel errors returned (wrapped) by the data operations; test with
// errors.Is. They are *fault.Error values, so that every HTTP surface shows
// them from their kind, code, title and message (problem.From) without a
// case of its own; their messages speak of the tenant as the people using
// it do, as a workspace.
var (
	// ErrNotFound means no row has the requested id in this tenant.
	ErrNotFound = &fault.Error{Kind: fault.NotFound, Code: "user-not-found", Title: "User not found",
		Message: "No user with this id exists in this workspace."}
	// ErrEmailTaken means another user of the same tenant has the email.
	ErrEmailTaken = &fault.Error{Kind: fault.Conflict, Code: "email-taken", Title: "Email already used",
		Message: "Another user in this workspace already has this email address.", Field: "email"}
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
