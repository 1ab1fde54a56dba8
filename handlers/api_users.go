package handlers

import (
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"tenantry/models"
	"tenantry/problem"
)

var (
	jsonTypes  = []string{"application/json"}
	patchTypes = []string{"application/json", "application/merge-patch+json"}
)

func (s *Server) handleUserList(c *gin.Context) {
	limit, offset, err := paging(c, models.DefaultLimit)
	if err != nil {
		s.respondError(c, err)
		return
	}
	db, err := s.Scope.DB(c.Request.Context())
	if err != nil {
		s.respondError(c, err)
		return
	}
	page, err := models.ListUsers(c.Request.Context(), db, limit, offset)
	if err != nil {
		s.respondError(c, err)
		return
	}
	s.writeJSON(c, http.StatusOK, page)
}

func (s *Server) handleUserShow(c *gin.Context) {
	id, err := userID(c)
	if err != nil {
		s.respondError(c, err)
		return
	}
	db, err := s.Scope.DB(c.Request.Context())
	if err != nil {
		s.respondError(c, err)
		return
	}
	u, err := models.GetUser(c.Request.Context(), db, id)
	if err != nil {
		s.respondError(c, err)
		return
	}
	s.writeJSON(c, http.StatusOK, u)
}

func (s *Server) handleUserCreate(c *gin.Context) {
	var in models.UserInput
	if err := problem.DecodeJSON(c.Request, &in, jsonTypes...); err != nil {
		s.respondError(c, err)
		return
	}
	db, err := s.Scope.DB(c.Request.Context())
	if err != nil {
		s.respondError(c, err)
		return
	}
	u, err := models.CreateUser(c.Request.Context(), db, in)
	if err != nil {
		s.respondError(c, err)
		return
	}
	c.Header("Location", "/api/users/"+strconv.FormatUint(u.ID, 10))
	s.writeJSON(c, http.StatusCreated, u)
}

func (s *Server) handleUserReplace(c *gin.Context) { s.userUpdate(c, false, jsonTypes) }

func (s *Server) handleUserPatch(c *gin.Context) { s.userUpdate(c, true, patchTypes) }

func (s *Server) userUpdate(c *gin.Context, partial bool, types []string) {
	id, err := userID(c)
	if err != nil {
		s.respondError(c, err)
		return
	}
	var in models.UserInput
	if err := problem.DecodeJSON(c.Request, &in, types...); err != nil {
		s.respondError(c, err)
		return
	}
	db, err := s.Scope.DB(c.Request.Context())
	if err != nil {
		s.respondError(c, err)
		return
	}
	u, err := models.UpdateUser(c.Request.Context(), db, id, in, partial)
	if err != nil {
		s.respondError(c, err)
		return
	}
	s.writeJSON(c, http.StatusOK, u)
}

func (s *Server) handleUserDelete(c *gin.Context) {
	id, err := userID(c)
	if err != nil {
		s.respondError(c, err)
		return
	}
	db, err := s.Scope.DB(c.Request.Context())
	if err != nil {
		s.respondError(c, err)
		return
	}
	if err := models.DeleteUser(c.Request.Context(), db, id); err != nil {
		s.respondError(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}
