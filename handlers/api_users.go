package handlers

import (
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"
	"gorm.io/gorm"

	"tenantry/models"
	"tenantry/problem"
)

var (
	jsonTypes  = []string{"application/json"}
	patchTypes = []string{"application/json", "application/merge-patch+json"}
)

// Each handler parses what the route carries, then makes one domain call
// on the tenant's session; every failure goes to respondError.

func (s *Server) handleUserList(c *gin.Context) {
	limit, offset, err := paging(c, models.DefaultLimit)
	if err != nil {
		s.respondError(c, err)
		return
	}
	s.withDB(c, func(db *gorm.DB) error {
		page, err := models.ListUsers(c.Request.Context(), db, limit, offset)
		if err == nil {
			s.writeJSON(c, http.StatusOK, page)
		}
		return err
	})
}

func (s *Server) handleUserShow(c *gin.Context) {
	s.withUserID(c, func(db *gorm.DB, id uint64) error {
		u, err := models.GetUser(c.Request.Context(), db, id)
		if err == nil {
			s.writeJSON(c, http.StatusOK, u)
		}
		return err
	})
}

func (s *Server) handleUserCreate(c *gin.Context) {
	var in models.UserInput
	if err := problem.DecodeJSON(c.Request, &in, jsonTypes...); err != nil {
		s.respondError(c, err)
		return
	}
	s.withDB(c, func(db *gorm.DB) error {
		u, err := models.CreateUser(c.Request.Context(), db, in)
		if err == nil {
			c.Header("Location", "/api/users/"+strconv.FormatUint(u.ID, 10))
			s.writeJSON(c, http.StatusCreated, u)
		}
		return err
	})
}

func (s *Server) handleUserReplace(c *gin.Context) { s.userUpdate(c, false, jsonTypes) }

func (s *Server) handleUserPatch(c *gin.Context) { s.userUpdate(c, true, patchTypes) }

func (s *Server) userUpdate(c *gin.Context, partial bool, types []string) {
	s.withUserID(c, func(db *gorm.DB, id uint64) error {
		var in models.UserInput
		if err := problem.DecodeJSON(c.Request, &in, types...); err != nil {
			return err
		}
		u, err := models.UpdateUser(c.Request.Context(), db, id, in, partial)
		if err == nil {
			s.writeJSON(c, http.StatusOK, u)
		}
		return err
	})
}

func (s *Server) handleUserDelete(c *gin.Context) {
	s.withUserID(c, func(db *gorm.DB, id uint64) error {
		err := models.DeleteUser(c.Request.Context(), db, id)
		if err == nil {
			c.Status(http.StatusNoContent)
		}
		return err
	})
}

// withDB runs fn on the tenant's session and answers its error.
func (s *Server) withDB(c *gin.Context, fn func(db *gorm.DB) error) {
	db, ok := s.tenantDB(c)
	if !ok {
		return
	}
	if err := fn(db); err != nil {
		s.respondError(c, err)
	}
}

// withUserID is withDB for routes that name a user by :id; an id that is
// not a positive integer names no user (404) before any query.
func (s *Server) withUserID(c *gin.Context, fn func(db *gorm.DB, id uint64) error) {
	id, err := userID(c)
	if err != nil {
		s.respondError(c, err)
		return
	}
	s.withDB(c, func(db *gorm.DB) error { return fn(db, id) })
}
