package models_test

import (
	"errors"
	"testing"

	"tenantry/models"
)

// TestValidateUnicode: text that would not show as it is stored is
// refused with a message a person can act on, whether in the name or in
// the email, and text that merely looks unusual is kept.
func TestValidateUnicode(t *testing.T) {
	const (
		control   = "must not contain control characters"
		invisible = "must not contain invisible characters, such as zero-width spaces or text-direction marks"
		badEmail  = "must be a valid email address, like name@example.com"
	)
	for _, tc := range []struct {
		name, userName, email string
		want                  map[string]string // field → message; nil means valid
	}{
		{"NEL in a name", "Ada\u0085Lovelace", "a@example.com", map[string]string{"name": control}},
		{"C1 control in a name", "Ada\u009bLovelace", "a@example.com", map[string]string{"name": control}},
		{"DEL in a name", "Ada\x7f", "a@example.com", map[string]string{"name": control}},
		{"tab in a name", "Ada\tLovelace", "a@example.com", map[string]string{"name": control}},
		{"line separator in a name", "Ada\u2028Lovelace", "a@example.com", map[string]string{"name": control}},
		{"paragraph separator in a name", "Ada\u2029Lovelace", "a@example.com", map[string]string{"name": control}},
		{"zero-width space in a name", "Ada\u200bLovelace", "a@example.com", map[string]string{"name": invisible}},
		{"zero-width joiner in a name", "Ada\u200d", "a@example.com", map[string]string{"name": invisible}},
		{"right-to-left override in a name", "Ada\u202egnp.exe", "a@example.com", map[string]string{"name": invisible}},
		{"left-to-right mark in a name", "\u200eAda", "a@example.com", map[string]string{"name": invisible}},
		{"right-to-left isolate in a name", "Ada\u2067x\u2069", "a@example.com", map[string]string{"name": invisible}},
		{"Arabic letter mark in a name", "Ada\u061c", "a@example.com", map[string]string{"name": invisible}},
		{"word joiner in a name", "Ada\u2060", "a@example.com", map[string]string{"name": invisible}},
		{"invisible times in a name", "Ada\u2062", "a@example.com", map[string]string{"name": invisible}},
		{"BOM in a name", "\ufeffAda", "a@example.com", map[string]string{"name": invisible}},
		{"soft hyphen in a name", "Love\u00adlace", "a@example.com", map[string]string{"name": invisible}},
		{"tag character in a name", "Ada\U000E0041", "a@example.com", map[string]string{"name": invisible}},
		{"zero-width space in an email", "Ada", "ada\u200b@example.com", map[string]string{"email": invisible}},
		{"zero-width joiner in an email's domain", "Ada", "ada@exam\u200dple.com", map[string]string{"email": invisible}},
		{"BOM before an email", "Ada", "\ufeffada@example.com", map[string]string{"email": invisible}},
		{"right-to-left override in an email", "Ada", "ada\u202e@example.com", map[string]string{"email": invisible}},
		{"NEL inside an email", "Ada", "ad\u0085a@example.com", map[string]string{"email": badEmail}},
		{"no-break space inside an email", "Ada", "ad\u00a0a@example.com", map[string]string{"email": badEmail}},
		{"ideographic space inside an email", "Ada", "ad\u3000a@example.com", map[string]string{"email": badEmail}},
		{"both fields", "A\u200b", "a\u200b@example.com", map[string]string{"name": invisible, "email": invisible}},
		// Trimmed like any other white space at the ends.
		{"NEL and no-break space at the ends", "\u0085Ada\u00a0", "\u00a0ada@example.com\u0085", nil},
		{"accents, scripts and emoji", "Zoë Ὀδυσσεύς 李小龍 مرحبا 🙂", "zoë@exämple.com", nil},
		{"a no-break space inside a name", "Ada\u00a0Lovelace", "a@example.com", nil},
		{"a combining accent", "Jose\u0301", "jose\u0301@example.com", nil},
		{"variation selector", "Ada \u2764\ufe0f", "a@example.com", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := models.UserInput{Name: &tc.userName, Email: &tc.email}
			err := in.Normalized().Validate(false)
			if tc.want == nil {
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

// TestNormalizedNFC: two spellings of the same text are stored as one, in
// Normalization Form C, and normalizing again changes nothing.
func TestNormalizedNFC(t *testing.T) {
	for _, tc := range []struct {
		name, userName, email, wantName, wantEmail string
	}{
		{"composed", "José", "JOSÉ@example.com", "José", "josé@example.com"},
		{"decomposed", "Jose\u0301", "JOSE\u0301@example.com", "José", "josé@example.com"},
		{"decomposed capital", "E\u0301mile", "E\u0301MILE@example.com", "Émile", "émile@example.com"},
		{"Hangul jamo", "\u1112\u1161\u11ab", "\u1112\u1161\u11ab@example.com", "한", "한@example.com"},
		{"reordered marks", "a\u0323\u0307", "a\u0307\u0323@example.com", "ạ̇", "ạ̇@example.com"},
		{"Kelvin sign", "\u212a", "\u212a@example.com", "K", "k@example.com"},
		{"Angstrom sign", "\u212b", "\u212b@example.com", "Å", "å@example.com"},
		{"trimmed first", "  Jose\u0301 ", " JOSE\u0301@Example.COM ", "José", "josé@example.com"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := models.UserInput{Name: &tc.userName, Email: &tc.email}.Normalized()
			if *in.Name != tc.wantName || *in.Email != tc.wantEmail {
				t.Errorf("Normalized = %q %q, want %q %q", *in.Name, *in.Email, tc.wantName, tc.wantEmail)
			}
			again := in.Normalized()
			if *again.Name != *in.Name || *again.Email != *in.Email {
				t.Errorf("Normalized twice = %q %q, want %q %q", *again.Name, *again.Email, *in.Name, *in.Email)
			}
		})
	}
}
