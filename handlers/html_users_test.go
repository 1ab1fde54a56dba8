package handlers_test

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"tenantry/internal/testenv"
)

// TestPagesUserLifecycle adds, lists, edits and deletes a user through the
// HTML routes, following every Post/Redirect/Get and its flash message.
func TestPagesUserLifecycle(t *testing.T) {
	eachDriver(t, func(t *testing.T, env *testenv.Env, pc *pageClient) {
		base := env.URL1

		r := pc.get(base + "/")
		if r.status != http.StatusFound || r.header.Get("Location") != "/users" {
			t.Fatalf("GET / = %d to %q, want 302 to /users", r.status, r.header.Get("Location"))
		}
		wantPage(t, pc.get(base+"/users"), http.StatusOK, "<title>Users · tenant1</title>", `<a class="brand" href="/users">tenant1</a>`,
			`<meta name="viewport" content="width=device-width, initial-scale=1">`, "No users yet", "0 in total",
			`<label for="name">Name</label>`, `<label for="email">Email</label>`, `<form method="post" action="/users"`)

		r = pc.post(base, "/users", url.Values{"name": {"  Ada  "}, "email": {"ADA@Example.com"}})
		if page, _ := wantAdded(t, r); page != 1 {
			t.Errorf("the first user was sent to page %d, want 1", page)
		}
		cookie := r.header.Get("Set-Cookie")
		for _, want := range []string{"HttpOnly", "SameSite=Lax", "Path=/", "Max-Age="} {
			if !strings.Contains(cookie, want) {
				t.Errorf("flash cookie %q lacks %s", cookie, want)
			}
		}
		if strings.Contains(strings.ToLower(cookie), "domain=") {
			t.Errorf("flash cookie %q has a Domain attribute", cookie)
		}
		wantPage(t, pc.get(base+"/users"), http.StatusOK, `<p class="flash" role="status">User Ada added</p>`,
			`<td class="email">ada@example.com</td>`, "1 in total")
		if r := pc.get(base + "/users"); strings.Contains(r.body, `class="flash"`) {
			t.Errorf("flash shown twice:\n%s", r.body)
		}

		wantAdded(t, pc.postMultipart(base, "/users", map[string]string{"name": "Bob", "email": "bob@example.com"}))
		wantPage(t, pc.get(base+"/users"), http.StatusOK, "User Bob added", "2 in total")
		// The newest user is last.
		if body := pc.get(base + "/users").body; strings.Index(body, "bob@example.com") < strings.Index(body, "ada@example.com") {
			t.Error("Bob, added last, is listed before Ada")
		}

		id := pageUserID(t, pc, base, "Ada")
		edit := "/users/" + id
		wantPage(t, pc.get(base+edit+"/edit"), http.StatusOK, "<title>Edit user · tenant1</title>",
			`action="`+edit+`"`, `value="Ada"`, `value="ada@example.com"`, `href="`+edit+`/delete"`)
		r = pc.post(base, edit, url.Values{"name": {"Bob"}, "email": {"BOB@example.com"}})
		wantPage(t, r, http.StatusConflict, `value="BOB@example.com"`, "Email is already used in this workspace")
		r = pc.post(base, edit, url.Values{"name": {"Ada Lovelace"}, "email": {"not an email"}})
		wantPage(t, r, http.StatusUnprocessableEntity, `value="Ada Lovelace"`, `value="not an email"`,
			`<p class="field-error" id="email-error">Email must be a valid email address`, "changes were not saved")
		wantSeeOther(t, pc.post(base, edit, url.Values{"name": {"Ada Lovelace"}, "email": {"ada@example.com"}}), "/users")
		wantPage(t, pc.get(base+"/users"), http.StatusOK, "User Ada Lovelace updated", `<td class="name">Ada Lovelace</td>`)

		wantPage(t, pc.get(base+edit+"/delete"), http.StatusOK, "<title>Delete user · tenant1</title>",
			`<form method="post" action="`+edit+`/delete"`, "<strong>Ada Lovelace</strong>")
		if total := userTotal(t, pc, base); total != 2 {
			t.Fatalf("the confirm page deleted something: total %d, want 2", total)
		}
		wantSeeOther(t, pc.post(base, edit+"/delete", nil), "/users")
		wantPage(t, pc.get(base+"/users"), http.StatusOK, "User Ada Lovelace deleted", "1 in total")
		wantPage(t, pc.get(base+edit+"/edit"), http.StatusNotFound, "User not found", "Back to the users of tenant1")
		wantPage(t, pc.post(base, edit+"/delete", nil), http.StatusNotFound, "User not found")
	})
}

// TestPagesInvalidInput submits bad forms: each is shown again with what
// was typed and the domain's message beside the field, and nothing is
// stored.
func TestPagesInvalidInput(t *testing.T) {
	eachDriver(t, func(t *testing.T, env *testenv.Env, pc *pageClient) {
		addUser(t, pc, env.URL1, "Taken", "taken@example.com")

		tests := []struct {
			name   string
			form   url.Values
			status int
			want   []string
		}{
			{"invalid email keeps the name", url.Values{"name": {"Grace"}, "email": {"grace-at-example"}}, http.StatusUnprocessableEntity,
				[]string{`value="Grace"`, `value="grace-at-example"`, `id="email-error">Email must be a valid email address`}},
			{"empty fields", url.Values{"name": {""}, "email": {""}}, http.StatusUnprocessableEntity,
				[]string{"Name must not be empty", "Email must not be empty", `aria-invalid="true"`}},
			{"missing fields", url.Values{}, http.StatusUnprocessableEntity,
				[]string{"Name is required", "Email is required"}},
			{"duplicate email", url.Values{"name": {"Other"}, "email": {"Taken@Example.com"}}, http.StatusConflict,
				[]string{`value="Other"`, "Email is already used in this workspace"}},
			{"name too long", url.Values{"name": {strings.Repeat("x", 201)}, "email": {"long@example.com"}}, http.StatusUnprocessableEntity,
				[]string{"Name must be at most 200 characters", `value="long@example.com"`}},
			{"control character", url.Values{"name": {"a\x00b"}, "email": {"ctl@example.com"}}, http.StatusUnprocessableEntity,
				[]string{"Name must not contain control characters"}},
			{"markup is escaped", url.Values{"name": {"<b>x</b>"}, "email": {"<script>"}}, http.StatusUnprocessableEntity,
				[]string{`value="&lt;b&gt;x&lt;/b&gt;"`, `value="&lt;script&gt;"`}},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				r := pc.post(env.URL1, "/users", tc.form)
				wantPage(t, r, tc.status, append(tc.want, "The user was not added", "<title>Users · tenant1</title>")...)
				if strings.Contains(r.body, "<script>") {
					t.Error("page has an unescaped <script>")
				}
			})
		}
		if total := userTotal(t, pc, env.URL1); total != 1 {
			t.Errorf("total = %d after invalid posts, want 1", total)
		}

		// Invalid UTF-8 is replaced with U+FFFD, as a JSON body's would
		// be, and never reaches the database as invalid text.
		wantAdded(t, pc.post(env.URL1, "/users", url.Values{"name": {"Z\xffz"}, "email": {"z\xff@example.com"}}))
		wantPage(t, pc.get(env.URL1+"/users"), http.StatusOK, "<td class=\"name\">Z\ufffdz</td>", "2 in total")
	})
}

// TestPagesCrossTenant checks that a second tenant can neither see nor
// change the first tenant's user through the pages, and that one tenant's
// flash message does not show on another tenant's page, though the browser
// sends the cookie to both (cookies ignore ports).
func TestPagesCrossTenant(t *testing.T) {
	eachDriver(t, func(t *testing.T, env *testenv.Env, pc *pageClient) {
		id := addUser(t, pc, env.URL1, "Ada", "ada@example.com")
		path := "/users/" + id

		wantAdded(t, pc.post(env.URL1, "/users", url.Values{"name": {"Flash"}, "email": {"flash@example.com"}}))
		r := pc.get(env.URL2 + "/users")
		wantPage(t, r, http.StatusOK, "<title>Users · tenant2</title>", "0 in total")
		for _, leak := range []string{"ada@example.com", "Flash", "tenant1"} {
			if strings.Contains(r.body, leak) {
				t.Errorf("tenant2's page shows %q", leak)
			}
		}
		wantPage(t, pc.get(env.URL1+"/users"), http.StatusOK, "User Flash added")

		tests := []struct {
			name string
			send func() pageResponse
		}{
			{"edit page", func() pageResponse { return pc.get(env.URL2 + path + "/edit") }},
			{"update", func() pageResponse {
				return pc.post(env.URL2, path, url.Values{"name": {"Mallory"}, "email": {"mallory@example.com"}})
			}},
			{"update with invalid input", func() pageResponse { return pc.post(env.URL2, path, url.Values{"name": {""}}) }},
			{"delete confirm page", func() pageResponse { return pc.get(env.URL2 + path + "/delete") }},
			{"delete", func() pageResponse { return pc.post(env.URL2, path+"/delete", nil) }},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				wantPage(t, tc.send(), http.StatusNotFound, "User not found", "Back to the users of tenant2")
			})
		}
		wantPage(t, pc.get(env.URL1+path+"/edit"), http.StatusOK, `value="Ada"`, `value="ada@example.com"`)
	})
}

// TestPagesPagination lists 25 users a page, the newest last, with the
// total; adding a user leads to the page that shows it, with the flash.
func TestPagesPagination(t *testing.T) {
	eachDriver(t, func(t *testing.T, env *testenv.Env, pc *pageClient) {
		for i := 1; i <= 27; i++ {
			email := fmt.Sprintf("u%02d@example.com", i)
			page, id := wantAdded(t, pc.post(env.URL1, "/users", url.Values{"name": {fmt.Sprintf("User %02d", i)}, "email": {email}}))
			if want := (i + 24) / 25; page != want {
				t.Errorf("user %d: sent to page %d, want %d", i, page, want)
			}
			if i == 25 || i == 26 {
				// The page the redirect names shows the new user's row, and
				// the flash, which a browser then scrolls to (#user-ID).
				wantPage(t, pc.get(fmt.Sprintf("%s/users?page=%d", env.URL1, page)), http.StatusOK,
					`<tr id="user-`+id+`">`, email, fmt.Sprintf("User User %02d added", i))
			}
		}
		tests := []struct {
			query   string
			want    []string
			notWant []string
		}{
			{"", []string{"27 in total", "Page 1 of 2", "u01@example.com", "u25@example.com", `href="/users?page=2" rel="next"`},
				[]string{"u26@example.com", `rel="prev"`}},
			{"?page=2", []string{"27 in total", "Page 2 of 2", "u26@example.com", "u27@example.com", `href="/users?page=1" rel="prev"`},
				[]string{"u25@example.com", `rel="next"`}},
			{"?page=9", []string{"No users on this page", `href="/users?page=2" rel="prev"`}, []string{"u01@example.com"}},
		}
		for _, tc := range tests {
			t.Run(tc.query, func(t *testing.T) {
				r := pc.get(env.URL1 + "/users" + tc.query)
				wantPage(t, r, http.StatusOK, tc.want...)
				for _, nw := range tc.notWant {
					if strings.Contains(r.body, nw) {
						t.Errorf("page has %q", nw)
					}
				}
				if rows := strings.Count(r.body, `<tr id="user-`); rows > 25 {
					t.Errorf("%d rows, want at most 25", rows)
				}
			})
		}
	})
}

// TestPagesHead answers HEAD on every page and asset as GET does, without
// a body, and leaves the flash for the next GET.
func TestPagesHead(t *testing.T) {
	eachDriver(t, func(t *testing.T, env *testenv.Env, pc *pageClient) {
		id := addUser(t, pc, env.URL1, "Ada", "ada@example.com") // sets the flash
		tests := []struct {
			base, path string
			status     int
		}{
			{env.URL1, "/", http.StatusFound},
			{env.URL1, "/users", http.StatusOK},
			{env.URL1, "/users?page=0", http.StatusBadRequest},
			{env.URL1, "/users/" + id + "/edit", http.StatusOK},
			{env.URL1, "/users/" + id + "/delete", http.StatusOK},
			{env.URL1, "/users/999999/edit", http.StatusNotFound},
			{env.URL2, "/users/" + id + "/edit", http.StatusNotFound},
			{env.URL1, "/static/style.css", http.StatusOK},
		}
		for _, tc := range tests {
			name := tc.path
			if tc.base == env.URL2 {
				name = "tenant2 " + name
			}
			t.Run(name, func(t *testing.T) {
				head := pc.do("HEAD", tc.base+tc.path, nil)
				if head.status != tc.status || head.body != "" {
					t.Errorf("HEAD: %d with %d bytes, want %d without a body", head.status, len(head.body), tc.status)
				}
				get := pc.get(tc.base + tc.path)
				for _, h := range []string{"Content-Type", "Location", "Cache-Control"} {
					if head.header.Get(h) != get.header.Get(h) {
						t.Errorf("%s: HEAD %q, GET %q", h, head.header.Get(h), get.header.Get(h))
					}
				}
			})
		}
		// The GETs above took the flash; set it again.
		addUser(t, pc, env.URL1, "Bob", "bob@example.com")
		if r := pc.do("HEAD", env.URL1+"/users", nil); r.status != http.StatusOK {
			t.Fatalf("HEAD /users: %d", r.status)
		}
		wantPage(t, pc.get(env.URL1+"/users"), http.StatusOK, "User Bob added")
	})
}
