package handlers

import (
	"fmt"
	"net/http"

	"github.com/gin-gonic/gin"
	"gorm.io/gorm"

	"tenantry/models"
	"tenantry/web"
)

// The HTML pages call the same domain operations as the JSON API
// (api_users.go); only the encoding differs. Every successful form post
// ends in a 303 to the users page with a flash message
// (Post/Redirect/Get): after an edit or a deletion the first page, after
// an addition the page that shows the new user. A form with mistakes is
// shown again with what was typed and the domain's message next to each
// field. Every form carries a fresh one-time token in a hidden field,
// which idempotency.go takes as the post's idempotency key: the same form
// posted twice adds, changes or deletes once, and both posts get the
// first answer.

func (s *Server) handlePageRoot(c *gin.Context) {
	c.Redirect(http.StatusFound, "/users")
}

func (s *Server) handlePageUsers(c *gin.Context) {
	page, err := pageNumber(c)
	if err != nil {
		s.respondError(c, err)
		return
	}
	// A HEAD shows nothing, so it leaves the flash for the GET a person
	// will see.
	var msg string
	if c.Request.Method != http.MethodHead {
		msg = s.flash(c).Take(c.Writer, c.Request)
	}
	s.renderUsers(c, http.StatusOK, page, msg, web.UserForm{})
}

func (s *Server) handlePageUserCreate(c *gin.Context) {
	in, err := userForm(c.Request, s.MaxBody)
	if err != nil {
		s.respondError(c, err)
		return
	}
	db, ok := s.tenantDB(c)
	if !ok {
		return
	}
	u, err := models.CreateUser(c.Request.Context(), db, in)
	if status, fields, ok := formErrors(err); ok {
		s.renderUsers(c, status, 1, "", filledForm(in, fields))
		return
	}
	if err != nil {
		s.respondError(c, err)
		return
	}
	s.redirectWithFlash(c, s.addedURL(c, db, u.ID), "User "+u.Name+" added")
}

// addedURL is where the form goes after adding the user id: the users page
// that holds it, which is the last page, since the list is oldest first,
// scrolled to its row. If the count fails, the user was added all the
// same, so the first page will do rather than an error that invites a
// second submission.
func (s *Server) addedURL(c *gin.Context, db *gorm.DB, id uint64) string {
	total, err := models.CountUsers(c.Request.Context(), db)
	if err != nil {
		s.Log.WarnContext(c.Request.Context(), "count users after adding one", "err", err)
		return "/users"
	}
	return fmt.Sprintf("/users?page=%d#user-%d", pageCount(total), id)
}

// pageCount is how many users pages total users fill; at least one, which
// shows the empty list and the add form.
func pageCount(total int64) int {
	return max(1, int((total+usersPageSize-1)/usersPageSize))
}

// renderUsers shows one page of users (oldest first, so the newest is
// last) and the add form.
func (s *Server) renderUsers(c *gin.Context, status, page int, flash string, form web.UserForm) {
	db, ok := s.tenantDB(c)
	if !ok {
		return
	}
	list, err := models.ListUsers(c.Request.Context(), db, usersPageSize, (page-1)*usersPageSize)
	if err != nil {
		s.respondError(c, err)
		return
	}
	form.Action, form.Submit, form.Inline = "/users", "Add user", true
	form.Token = newFormToken() // a fresh one, also when the form is shown again
	v := web.UsersView{Layout: s.layout(c, "Users"), Users: list.Users, Total: list.Total, Page: page,
		Pages: pageCount(list.Total), Form: form}
	v.Flash = flash
	if page > 1 {
		v.PrevURL = fmt.Sprintf("/users?page=%d", min(page-1, v.Pages))
	}
	if page < v.Pages {
		v.NextURL = fmt.Sprintf("/users?page=%d", page+1)
	}
	s.render(c, status, v)
}

// pageUser loads the user named by :id in the request's tenant, with the
// request's tenant session, or writes the error page (404 for an id that
// names no user here) and returns false.
func (s *Server) pageUser(c *gin.Context) (models.User, *gorm.DB, bool) {
	id, err := userID(c)
	if err != nil {
		s.respondError(c, err)
		return models.User{}, nil, false
	}
	db, ok := s.tenantDB(c)
	if !ok {
		return models.User{}, nil, false
	}
	u, err := models.GetUser(c.Request.Context(), db, id)
	if err != nil {
		s.respondError(c, err)
		return models.User{}, nil, false
	}
	return u, db, true
}

func (s *Server) editView(c *gin.Context, u models.User, form web.UserForm) web.EditView {
	form.Action, form.Submit, form.Cancel = fmt.Sprintf("/users/%d", u.ID), "Save changes", "/users"
	form.Token = newFormToken()
	return web.EditView{Layout: s.layout(c, "Edit user"), User: u, Form: form}
}

func (s *Server) handlePageUserEdit(c *gin.Context) {
	u, _, ok := s.pageUser(c)
	if !ok {
		return
	}
	s.render(c, http.StatusOK, s.editView(c, u, web.UserForm{Name: u.Name, Email: u.Email}))
}

// handlePageUserUpdate replaces the user's fields with the form's. The user
// is looked up first, so an id that names no user here is a 404 whatever
// the form holds.
func (s *Server) handlePageUserUpdate(c *gin.Context) {
	u, db, ok := s.pageUser(c)
	if !ok {
		return
	}
	in, err := userForm(c.Request, s.MaxBody)
	if err != nil {
		s.respondError(c, err)
		return
	}
	updated, err := models.UpdateUser(c.Request.Context(), db, u.ID, in, false)
	if status, fields, ok := formErrors(err); ok {
		s.render(c, status, s.editView(c, u, filledForm(in, fields)))
		return
	}
	if err != nil {
		s.respondError(c, err)
		return
	}
	s.redirectWithFlash(c, "/users", "User "+updated.Name+" updated")
}

// handlePageUserDeleteConfirm asks before deleting; the deletion itself is
// a POST, so a link, a prefetch or a crawler never deletes anything.
func (s *Server) handlePageUserDeleteConfirm(c *gin.Context) {
	u, _, ok := s.pageUser(c)
	if !ok {
		return
	}
	s.render(c, http.StatusOK, web.DeleteView{Layout: s.layout(c, "Delete user"), User: u, Token: newFormToken()})
}

func (s *Server) handlePageUserDelete(c *gin.Context) {
	u, db, ok := s.pageUser(c)
	if !ok {
		return
	}
	if err := models.DeleteUser(c.Request.Context(), db, u.ID); err != nil {
		s.respondError(c, err)
		return
	}
	s.redirectWithFlash(c, "/users", "User "+u.Name+" deleted")
}
