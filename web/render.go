package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"html/template"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"time"

	"tenantry/models"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Layout is what every page shows around its content.
type Layout struct {
	// Tenant is the workspace's name, shown in the header and the <title>;
	// empty when the request's host names no workspace.
	Tenant string
	// Title is the page's own title.
	Title string
	// Flash is a one-time message left by the previous request.
	Flash string
}

// UserForm is the add or edit form, with what was submitted and the
// message for each invalid field (keyed "name" and "email").
type UserForm struct {
	Action string
	Submit string
	// Cancel, when set, is where the Cancel link goes.
	Cancel string
	// Inline lays the fields out in one row on wide screens.
	Inline      bool
	Name, Email string
	Errors      map[string]string
	// Token is the form's one-time token, sent back as a hidden field: a
	// form posted twice is answered once (see package handlers).
	Token string
}

// UsersView is the list of a workspace's users with the add form.
type UsersView struct {
	Layout
	Users []models.User
	Total int64
	// Page counts from 1; Pages is at least 1.
	Page, Pages      int
	PrevURL, NextURL string
	Form             UserForm
}

// EditView is the form that changes one user.
type EditView struct {
	Layout
	User models.User
	Form UserForm
}

// DeleteView asks to confirm deleting one user, with a form that posts the
// deletion, so deleting needs no JavaScript and never happens on a GET.
type DeleteView struct {
	Layout
	User models.User
	// Token is the form's one-time token, as in UserForm.
	Token string
}

// ErrorView explains an error to a person.
type ErrorView struct {
	Layout
	Status int
	Detail string
	Fields []models.FieldError
	// RequestID is the failed request's id, shown in small print for the
	// person to quote when they report the error.
	RequestID string
}

// View is a page's data. Only this package's view types implement it, and
// each names its own template.
type View interface{ template() string }

func (UsersView) template() string  { return "users.html" }
func (EditView) template() string   { return "edit.html" }
func (DeleteView) template() string { return "delete.html" }
func (ErrorView) template() string  { return "error.html" }

// pages lists every page template, so New parses (and so checks) them all.
var pages = []View{UsersView{}, EditView{}, DeleteView{}, ErrorView{}}

// contentSecurityPolicy allows the pages their own stylesheet and icon and
// nothing else: no scripts, no frames, no other origins. form-action is
// left out on purpose: the server refuses cross-origin posts itself (see
// package handlers), and a browser test proves it by posting from another
// origin, which form-action would stop before the server could answer.
const contentSecurityPolicy = "default-src 'none'; style-src 'self'; img-src 'self'; base-uri 'none'; frame-ancestors 'none'"

// Renderer renders pages and serves the static files. It is safe for
// concurrent use.
type Renderer struct {
	pages  map[string]*template.Template
	assets map[string]Asset
}

// Asset is one embedded static file.
type Asset struct {
	Name        string
	ContentType string
	// ETag is a strong validator derived from the content.
	ETag    string
	Content []byte
}

// New parses every template and reads every static file. It fails only if
// the embedded files are broken, which the package's tests would catch.
func New() (*Renderer, error) {
	r := &Renderer{pages: map[string]*template.Template{}, assets: map[string]Asset{}}
	for _, v := range pages {
		name := v.template()
		t, err := template.New(name).ParseFS(templateFS, "templates/layout.html", "templates/"+name)
		if err != nil {
			return nil, fmt.Errorf("parse template %s: %w", name, err)
		}
		r.pages[name] = t
	}
	err := fs.WalkDir(staticFS, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := staticFS.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		name := path.Base(p)
		ct := mime.TypeByExtension(path.Ext(name))
		if ct == "" {
			ct = "application/octet-stream"
		}
		r.assets[name] = Asset{Name: name, ContentType: ct, ETag: `"` + hex.EncodeToString(sum[:8]) + `"`, Content: b}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read static files: %w", err)
	}
	return r, nil
}

// Render writes v as a complete HTML response with status. The page is
// executed into memory first: on error nothing has been written and the
// caller can still send an error page.
func (r *Renderer) Render(w http.ResponseWriter, status int, v View) error {
	t, ok := r.pages[v.template()]
	if !ok {
		return fmt.Errorf("render: no template %s", v.template())
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", v); err != nil {
		return fmt.Errorf("render %s: %w", v.template(), err)
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	// Pages show one workspace's data and may carry a consumed flash
	// message; neither should be replayed from a cache.
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, err := w.Write(buf.Bytes())
	return err
}

// Asset returns the static file called name (e.g. "style.css").
func (r *Renderer) Asset(name string) (Asset, bool) {
	a, ok := r.assets[name]
	return a, ok
}

// ServeHTTP serves the file. Clients revalidate it on each use (the ETag
// makes that a 304), so a new binary's stylesheet is seen at once.
func (a Asset) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", a.ContentType)
	h.Set("ETag", a.ETag)
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Content-Type-Options", "nosniff")
	http.ServeContent(w, r, a.Name, time.Time{}, bytes.NewReader(a.Content))
}
