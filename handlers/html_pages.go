package handlers

import (
	"errors"
	"fmt"
	"mime/multipart"
	"net/http"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"tenantry/models"
	"tenantry/problem"
	"tenantry/tenants"
	"tenantry/web"
)

// Paging of the users page.
const (
	usersPageSize = 25
	maxPage       = 1 << 20
)

var (
	formTypes        = []string{"application/x-www-form-urlencoded", "multipart/form-data"}
	errMalformedForm = problem.New(http.StatusBadRequest, "malformed-form", "Malformed form", "The form data could not be read.")
)

// layout is the frame of a page: the tenant's name, when the request has a
// tenant, and the page's title.
func (s *Server) layout(c *gin.Context, title string) web.Layout {
	l := web.Layout{Title: title}
	if t, ok := tenants.FromContext(c.Request.Context()); ok {
		l.Tenant = t.Name
	}
	return l
}

// flash is the request's tenant's flash message store. Its cookie is
// Secure when the client used https, which behind a TLS-terminating
// trusted proxy only X-Forwarded-Proto tells (tenants.Middleware.Origin).
func (s *Server) flash(c *gin.Context) web.Flash {
	o, err := s.Tenants.Origin(c.Request)
	f := web.Flash{Key: s.SessionKey, Secure: c.Request.TLS != nil}
	if err == nil {
		f.Secure = o.Scheme == "https"
	}
	if t, ok := tenants.FromContext(c.Request.Context()); ok {
		f.Tenant = t.Name
	}
	return f
}

// render writes a page, or the 500 page when the page cannot be rendered.
func (s *Server) render(c *gin.Context, status int, v web.View) {
	if err := s.Pages.Render(c.Writer, status, v); err != nil {
		s.respondError(c, err)
	}
}

// redirectWithFlash ends a successful form post: Post/Redirect/Get to
// location, a users page, which shows msg once.
func (s *Server) redirectWithFlash(c *gin.Context, location, msg string) {
	s.flash(c).Set(c.Writer, msg)
	c.Redirect(http.StatusSeeOther, location)
}

// userForm reads a submitted user from an urlencoded or multipart form
// body (never from the query string). A field that was not sent stays nil,
// so the domain's own rules say it is required. Invalid UTF-8 is replaced
// as encoding/json replaces it, so a form and a JSON body hand the domain
// the same input.
func userForm(r *http.Request, maxMemory int64) (models.UserInput, error) {
	mt, err := problem.MediaType(r, "form", formTypes...)
	if err != nil {
		return models.UserInput{}, err
	}
	if mt == "multipart/form-data" {
		err = r.ParseMultipartForm(maxMemory)
		if r.MultipartForm != nil {
			defer func() { _ = r.MultipartForm.RemoveAll() }()
		}
	} else {
		err = r.ParseForm()
	}
	switch {
	case errors.Is(err, multipart.ErrMessageTooLarge):
		return models.UserInput{}, errTooLarge
	case err != nil:
		// Too large (413) or too slow (408) wherever it happened, even
		// after a malformed part, rather than a 400 for the wrong reason.
		if pe := problem.BodyError(r.Body, err); pe != nil {
			return models.UserInput{}, pe
		}
		return models.UserInput{}, errMalformedForm
	}
	field := func(name string) *string {
		vs, ok := r.PostForm[name]
		if !ok || len(vs) == 0 {
			return nil
		}
		v := strings.ToValidUTF8(vs[0], "\uFFFD")
		return &v
	}
	return models.UserInput{Name: field("name"), Email: field("email")}, nil
}

// formErrors reports whether err is a mistake the form itself should show:
// the status and the message of each field, from problemFor, the same
// mapping the JSON API uses (422 for invalid fields, 409 for an email used
// by another user).
func formErrors(err error) (status int, fields map[string]string, ok bool) {
	pr, known := problemFor(err)
	if !known || len(pr.Errors) == 0 {
		return 0, nil, false
	}
	fields = make(map[string]string, len(pr.Errors))
	for _, f := range pr.Errors {
		fields[f.Field] = f.Message
	}
	return pr.Status, fields, true
}

// filledForm is a form showing what was submitted, as it was typed.
func filledForm(in models.UserInput, errs map[string]string) web.UserForm {
	f := web.UserForm{Errors: errs}
	if in.Name != nil {
		f.Name = *in.Name
	}
	if in.Email != nil {
		f.Email = *in.Email
	}
	return f
}

// pageNumber reads ?page=, counting from 1.
func pageNumber(c *gin.Context) (int, error) {
	v, ok := c.GetQuery("page")
	if !ok {
		return 1, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > maxPage {
		return 0, problem.BadQuery(models.FieldError{Field: "page", Message: fmt.Sprintf("must be a whole number from 1 to %d", maxPage)})
	}
	return n, nil
}

// handleStatic serves the embedded stylesheet and icon on any host, since
// the error page for an unknown host uses them too.
func (s *Server) handleStatic(c *gin.Context) {
	a, ok := s.Pages.Asset(strings.TrimPrefix(c.Param("file"), "/"))
	if !ok {
		s.respondError(c, errNoRoute)
		return
	}
	a.ServeHTTP(c.Writer, c.Request)
}
