package models_test

import (
	"errors"
	"strings"
	"testing"

	"tenantry/models"
)

func ptr(s string) *string { return &s }

func TestUserInputValidate(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in      models.UserInput
		partial bool
		want    map[string]string // field → message; empty means valid
	}{
		{"valid", models.UserInput{Name: ptr("Ada"), Email: ptr("ada@example.com")}, false, nil},
		{"trimmed and lower-cased first", models.UserInput{Name: ptr("  Ada "), Email: ptr(" ADA@Example.com ")}, false, nil},
		{"missing both", models.UserInput{}, false, map[string]string{"name": "is required", "email": "is required"}},
		{"partial may omit", models.UserInput{}, true, nil},
		{"partial still checks given", models.UserInput{Email: ptr("nope")}, true,
			map[string]string{"email": "must be a valid email address, like name@example.com"}},
		{"blank name", models.UserInput{Name: ptr("   "), Email: ptr("a@example.com")}, false, map[string]string{"name": "must not be empty"}},
		{"200 characters", models.UserInput{Name: ptr(strings.Repeat("ü", 200)), Email: ptr("a@example.com")}, false, nil},
		{"201 characters", models.UserInput{Name: ptr(strings.Repeat("ü", 201)), Email: ptr("a@example.com")}, false,
			map[string]string{"name": "must be at most 200 characters"}},
		{"control character", models.UserInput{Name: ptr("A\x00da"), Email: ptr("a@example.com")}, false,
			map[string]string{"name": "must not contain control characters"}},
		{"display name", models.UserInput{Name: ptr("A"), Email: ptr("Ada <a@example.com>")}, false,
			map[string]string{"email": "must be a valid email address, like name@example.com"}},
		{"no domain", models.UserInput{Name: ptr("A"), Email: ptr("a@")}, false,
			map[string]string{"email": "must be a valid email address, like name@example.com"}},
		{"double dot domain", models.UserInput{Name: ptr("A"), Email: ptr("a@example..com")}, false,
			map[string]string{"email": "must be a valid email address, like name@example.com"}},
		{"literal address", models.UserInput{Name: ptr("A"), Email: ptr("a@[127.0.0.1]")}, false,
			map[string]string{"email": "must be a valid email address, like name@example.com"}},
		{"too long email", models.UserInput{Name: ptr("A"), Email: ptr(strings.Repeat("a", 250) + "@example.com")}, false,
			map[string]string{"email": "must be at most 254 characters"}},
		{"plus and subdomain", models.UserInput{Name: ptr("A"), Email: ptr("a+tag@mail.example.co.uk")}, false, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.in.Normalized().Validate(tc.partial)
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("Validate = %v, want nil", err)
				}
				return
			}
			var ve *models.ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("Validate = %v, want *ValidationError", err)
			}
			if len(ve.Fields) != len(tc.want) {
				t.Errorf("fields = %v, want %v", ve.Fields, tc.want)
			}
			for f, msg := range tc.want {
				if got := ve.Message(f); got != msg {
					t.Errorf("%s: got %q, want %q", f, got, msg)
				}
			}
		})
	}
}

func TestNormalized(t *testing.T) {
	in := models.UserInput{Name: ptr("  Grace Hopper "), Email: ptr(" GRACE@Navy.MIL ")}.Normalized()
	if *in.Name != "Grace Hopper" || *in.Email != "grace@navy.mil" {
		t.Errorf("Normalized = %q %q", *in.Name, *in.Email)
	}
	var u models.User
	models.UserInput{Name: ptr("X")}.Apply(&u)
	if u.Name != "X" || u.Email != "" {
		t.Errorf("Apply of a partial input changed %+v", u)
	}
}
