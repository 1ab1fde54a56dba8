package handlers_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"tenantry/internal/testenv"
)

// Messages of the domain's text rules (models.UserInput.Validate).
const (
	msgControl   = "must not contain control characters"
	msgInvisible = "must not contain invisible characters, such as zero-width spaces or text-direction marks"
)

// TestTextFields: names and emails that hold control, format or bidi
// characters are refused with a 422 that names the field, on the API and
// on the form; names and emails are stored in NFC, so that two spellings of
// one email are one email within a workspace (409), while another
// workspace may use it.
func TestTextFields(t *testing.T) {
	const (
		composed   = "jos\u00e9@example.com"
		decomposed = "jose\u0301@example.com"
	)
	for _, driver := range testenv.Drivers {
		t.Run(driver, func(t *testing.T) {
			t.Parallel()
			env := testenv.Start(t, driver)
			users := env.URL1 + "/api/users"
			first := apiCreate(t, env.URL1, "Jose\u0301", composed)
			if first["name"] != "Jos\u00e9" || first["email"] != composed {
				t.Errorf("created %q %q, want the NFC %q %q", first["name"], first["email"], "Jos\u00e9", composed)
			}
			other := apiCreate(t, env.URL1, "Other", "other@example.com")
			otherURL := users + "/" + jsonID(other)

			t.Run("API", func(t *testing.T) {
				for _, tc := range []struct {
					name, method, url, body string
					status                  int
					fields                  map[string]string
				}{
					{"NEL in a name", "POST", users, `{"name":"Ada\u0085Lovelace","email":"ada@example.com"}`, 422,
						map[string]string{"name": msgControl}},
					{"zero-width space in a name", "POST", users, `{"name":"Ada\u200bLovelace","email":"ada@example.com"}`, 422,
						map[string]string{"name": msgInvisible}},
					{"right-to-left override in a name", "POST", users, `{"name":"\u202eecalevoL adA","email":"ada@example.com"}`, 422,
						map[string]string{"name": msgInvisible}},
					{"zero-width space in an email", "POST", users, `{"name":"Ada","email":"ada\u200b@example.com"}`, 422,
						map[string]string{"email": msgInvisible}},
					{"zero-width no-break space in an email", "POST", users, `{"name":"Ada","email":"ada@exam\ufeffple.com"}`, 422,
						map[string]string{"email": msgInvisible}},
					{"every field", "POST", users, `{"name":"A\u2066","email":"\u200da@example.com"}`, 422,
						map[string]string{"name": msgInvisible, "email": msgInvisible}},
					{"zero-width joiner in PATCH", "PATCH", otherURL, `{"email":"other\u200d@example.com"}`, 422,
						map[string]string{"email": msgInvisible}},
					{"bidi isolate in PUT", "PUT", otherURL, `{"name":"\u2067Other\u2069","email":"other@example.com"}`, 422,
						map[string]string{"name": msgInvisible}},
					{"the same email decomposed", "POST", users, `{"name":"Jose","email":"` + decomposed + `"}`, 409,
						map[string]string{"email": "is already used in this workspace"}},
					{"the same email decomposed, capitals", "POST", users, `{"name":"Jose","email":"JOSE\u0301@EXAMPLE.COM"}`, 409, nil},
					{"the same email decomposed, on update", "PATCH", otherURL, `{"email":"` + decomposed + `"}`, 409, nil},
				} {
					t.Run(tc.name, func(t *testing.T) {
						ctype := "application/json"
						if tc.method == "PATCH" {
							ctype = "application/merge-patch+json"
						}
						p := wantProblem(t, apiDo(t, tc.method, tc.url, "", ctype, strings.NewReader(tc.body)), tc.status)
						got := fieldMessages(p)
						if tc.fields != nil && len(got) != len(tc.fields) {
							t.Errorf("errors = %v, want exactly %v", got, tc.fields)
						}
						for f, msg := range tc.fields {
							if got[f] != msg {
								t.Errorf("field %s: message %q, want %q", f, got[f], msg)
							}
						}
					})
				}
			})

			t.Run("form", func(t *testing.T) {
				pc := newPageClient(t)
				for _, tc := range []struct {
					name   string
					form   url.Values
					status int
					want   []string
				}{
					{"NEL in a name", url.Values{"name": {"Ada\u0085Lovelace"}, "email": {"ada@example.com"}}, 422,
						[]string{"Name " + msgControl, `value="ada@example.com"`}},
					{"right-to-left override in a name", url.Values{"name": {"Ada\u202e"}, "email": {"ada@example.com"}}, 422,
						[]string{"Name " + msgInvisible}},
					{"zero-width space in an email", url.Values{"name": {"Ada"}, "email": {"ada\u200b@example.com"}}, 422,
						[]string{"Email " + msgInvisible, `value="Ada"`}},
					{"the same email decomposed", url.Values{"name": {"Jose"}, "email": {decomposed}}, 409,
						[]string{"Email is already used in this workspace"}},
				} {
					t.Run(tc.name, func(t *testing.T) {
						wantPage(t, pc.post(env.URL1, "/users", tc.form), tc.status, append(tc.want, "The user was not added")...)
					})
				}
				// A decomposed name typed into the form is stored composed.
				wantAdded(t, pc.post(env.URL1, "/users", url.Values{"name": {"Rene\u0301e"}, "email": {"RENE\u0301E@example.com"}}))
				wantPage(t, pc.get(env.URL1+"/users"), http.StatusOK, `<td class="name">Ren`+"\u00e9"+`e</td>`,
					`<td class="email">ren`+"\u00e9"+`e@example.com</td>`)
			})

			// Nothing refused was stored, and what was stored reads back in
			// NFC from the database.
			if n := apiTotal(t, env.URL1); n != 3 {
				t.Errorf("tenant1 holds %d users, want 3", n)
			}
			got := apiDo(t, "GET", users+"/"+jsonID(first), "", "", nil).json(t)
			if got["email"] != composed {
				t.Errorf("stored email %q, want %q", got["email"], composed)
			}

			// Another workspace may use the same address, however spelt; it
			// is stored composed there too.
			second := apiCreate(t, env.URL2, "Jose", decomposed)
			if second["email"] != composed {
				t.Errorf("tenant2 stored %q, want %q", second["email"], composed)
			}
			r := apiDo(t, "POST", env.URL2+"/api/users", "", "application/json",
				strings.NewReader(`{"name":"Jose","email":"`+composed+`"}`))
			wantProblem(t, r, http.StatusConflict)
			if n := apiTotal(t, env.URL1); n != 3 {
				t.Errorf("tenant1 holds %d users after tenant2's, want 3", n)
			}
		})
	}
}
