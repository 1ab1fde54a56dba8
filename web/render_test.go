package web_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"tenantry/models"
	"tenantry/web"
)

func newRenderer(t *testing.T) *web.Renderer {
	t.Helper()
	r, err := web.New()
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return r
}

func TestRenderEveryPage(t *testing.T) {
	r := newRenderer(t)
	ada := models.User{ID: 7, Name: "Ada <script>alert(1)</script>", Email: "ada@example.com", CreatedAt: time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)}
	layout := web.Layout{Tenant: "acme", Title: "Users", Flash: "User Ada added"}
	tests := []struct {
		name    string
		status  int
		view    web.View
		want    []string
		notWant []string
	}{
		{"users", http.StatusOK, web.UsersView{Layout: layout, Users: []models.User{ada}, Total: 1, Page: 1, Pages: 1,
			Form: web.UserForm{Action: "/users", Submit: "Add user"}},
			[]string{"<title>Users · acme</title>", `name="viewport"`, `<p class="flash" role="status">User Ada added</p>`,
				"Ada &lt;script&gt;alert(1)&lt;/script&gt;", `href="/users/7/edit"`, `href="/users/7/delete"`, "1 in total",
				`<label for="name">Name</label>`, `<input id="name" name="name"`, `<label for="email">Email</label>`, `href="/static/style.css"`},
			[]string{"<script>", "Page 1 of"}},
		{"users empty", http.StatusOK, web.UsersView{Layout: web.Layout{Tenant: "acme", Title: "Users"}, Page: 1, Pages: 1,
			Form: web.UserForm{Action: "/users", Submit: "Add user"}},
			[]string{"No users yet", "0 in total"}, []string{`class="flash"`, "<table>"}},
		{"users paged", http.StatusOK, web.UsersView{Layout: layout, Users: []models.User{ada}, Total: 60, Page: 2, Pages: 3,
			PrevURL: "/users?page=1", NextURL: "/users?page=3", Form: web.UserForm{Action: "/users", Submit: "Add user"}},
			[]string{"Page 2 of 3", `href="/users?page=1" rel="prev"`, `href="/users?page=3" rel="next"`}, nil},
		{"users invalid form", http.StatusUnprocessableEntity, web.UsersView{Layout: layout, Page: 1, Pages: 1,
			Form: web.UserForm{Action: "/users", Submit: "Add user", Name: `Bob "B"`, Email: "nope",
				Errors: map[string]string{"email": "must be a valid email address"}}},
			[]string{`value="Bob &#34;B&#34;"`, `value="nope"`, `<p class="field-error" id="email-error">Email must be a valid email address</p>`,
				`aria-describedby="email-error"`, "was not added"},
			[]string{`id="name-error"`}},
		{"edit", http.StatusOK, web.EditView{Layout: web.Layout{Tenant: "acme", Title: "Edit user"}, User: ada,
			Form: web.UserForm{Action: "/users/7", Submit: "Save changes", Cancel: "/users", Name: ada.Name, Email: ada.Email}},
			[]string{"<title>Edit user · acme</title>", `action="/users/7"`, `value="ada@example.com"`, `href="/users/7/delete"`}, []string{"<script>"}},
		{"delete", http.StatusOK, web.DeleteView{Layout: web.Layout{Tenant: "acme", Title: "Delete user"}, User: ada},
			[]string{`<form method="post" action="/users/7/delete"`, "ada@example.com", "cannot be undone"}, []string{"<script>"}},
		{"error with tenant", http.StatusNotFound, web.ErrorView{Layout: web.Layout{Tenant: "acme", Title: "User not found"},
			Status: 404, Detail: "No user with this id exists in this workspace."},
			[]string{"Error 404", "<h1>User not found</h1>", "<title>User not found · acme</title>", "Back to the users of acme"}, nil},
		{"error without tenant", http.StatusNotFound, web.ErrorView{Layout: web.Layout{Title: "Unknown host"},
			Status: 404, Detail: "No workspace is served on this host."},
			[]string{"<title>Unknown host · tenantry</title>", "No workspace is served on this host."}, []string{"Back to the users"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			if err := r.Render(rec, tc.status, tc.view); err != nil {
				t.Fatalf("Render: %v", err)
			}
			if rec.Code != tc.status {
				t.Errorf("status = %d, want %d", rec.Code, tc.status)
			}
			if got := rec.Header().Get("Content-Type"); got != "text/html; charset=utf-8" {
				t.Errorf("Content-Type = %q", got)
			}
			if got := rec.Header().Get("Content-Security-Policy"); !strings.Contains(got, "default-src 'none'") {
				t.Errorf("Content-Security-Policy = %q, want default-src 'none'", got)
			}
			body := rec.Body.String()
			for _, w := range tc.want {
				if !strings.Contains(body, w) {
					t.Errorf("body lacks %q:\n%s", w, body)
				}
			}
			for _, w := range tc.notWant {
				if strings.Contains(body, w) {
					t.Errorf("body has %q:\n%s", w, body)
				}
			}
		})
	}
}

func TestAssets(t *testing.T) {
	r := newRenderer(t)
	tests := []struct {
		name, contentType, contains string
	}{
		{"style.css", "text/css; charset=utf-8", "font:"},
		{"favicon.svg", "image/svg+xml", "<svg"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, ok := r.Asset(tc.name)
			if !ok {
				t.Fatalf("Asset(%q) missing", tc.name)
			}
			rec := httptest.NewRecorder()
			a.ServeHTTP(rec, httptest.NewRequest("GET", "/static/"+tc.name, nil))
			if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != tc.contentType || !strings.Contains(rec.Body.String(), tc.contains) {
				t.Fatalf("got %d %q %.40q; want 200 %q containing %q", rec.Code, rec.Header().Get("Content-Type"), rec.Body.String(), tc.contentType, tc.contains)
			}
			req := httptest.NewRequest("GET", "/static/"+tc.name, nil)
			req.Header.Set("If-None-Match", rec.Header().Get("ETag"))
			rec = httptest.NewRecorder()
			a.ServeHTTP(rec, req)
			if rec.Code != http.StatusNotModified {
				t.Errorf("revalidation status = %d, want 304", rec.Code)
			}
		})
	}
	if _, ok := r.Asset("../templates/layout.html"); ok {
		t.Error("Asset reaches outside the static files")
	}
}
