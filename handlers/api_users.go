package handlers

import (
	"errors"
	"net/http"
	"slices"
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
	in, err := decodeUser(c, false, jsonTypes)
	if err != nil {
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
		in, err := decodeUser(c, partial, types)
		if err != nil {
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

// decodeUser reads a user from a JSON body. When fields have the wrong
// type or are unknown, the fields that were read are validated as the
// domain would, so the one 422 lists every field's mistake: the wrong-type
// ones from the decoder, the rest (missing, empty, invalid) from the
// domain's rules.
func decodeUser(c *gin.Context, partial bool, types []string) (models.UserInput, error) {
	var in models.UserInput
	err := problem.DecodeJSON(c.Request, &in, types...)
	var pe *problem.Error
	if !errors.As(err, &pe) || pe.Problem.Status != http.StatusUnprocessableEntity {
		return in, err
	}
	var ve *models.ValidationError
	if !errors.As(in.Normalized().Validate(partial), &ve) {
		return in, err
	}
	reported := map[string]bool{}
	for _, f := range pe.Problem.Errors {
		reported[f.Field] = true
	}
	fields := slices.Clone(pe.Problem.Errors)
	for _, f := range ve.Fields {
		// A field the decoder refused may hold a partial value; its
		// decoder message is the one that applies.
		if !reported[f.Field] {
			fields = append(fields, f)
		}
	}
	return in, problem.Invalid(fields...)
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
