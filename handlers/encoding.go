package handlers

import (
	"fmt"
	"strconv"

	"github.com/gin-gonic/gin"

	"tenantry/models"
	"tenantry/problem"
)

func (s *Server) writeJSON(c *gin.Context, status int, v any) {
	c.Header("Content-Type", "application/json; charset=utf-8")
	c.Status(status)
	if err := problem.EncodeJSON(c.Writer, v); err != nil {
		s.Log.WarnContext(c.Request.Context(), "write response", "err", err)
	}
}

// paging reads ?limit= and ?offset=, refusing values out of range rather
// than silently clamping them.
func paging(c *gin.Context, defaultLimit int) (limit, offset int, err error) {
	var fields []models.FieldError
	limit, offset = defaultLimit, 0
	if v, ok := c.GetQuery("limit"); ok {
		n, convErr := strconv.Atoi(v)
		if convErr != nil || n < 1 || n > models.MaxLimit {
			fields = append(fields, models.FieldError{Field: "limit", Message: fmt.Sprintf("must be a whole number from 1 to %d", models.MaxLimit)})
		}
		limit = n
	}
	if v, ok := c.GetQuery("offset"); ok {
		n, convErr := strconv.Atoi(v)
		if convErr != nil || n < 0 {
			fields = append(fields, models.FieldError{Field: "offset", Message: "must be a whole number, 0 or more"})
		}
		offset = n
	}
	if fields != nil {
		return 0, 0, problem.BadQuery(fields...)
	}
	return limit, offset, nil
}

// userID parses the :id path parameter; anything but a positive integer
// names no user.
func userID(c *gin.Context) (uint64, error) {
	id, err := strconv.ParseUint(c.Param("id"), 10, 63)
	if err != nil || id == 0 {
		return 0, errUserNotFound
	}
	return id, nil
}
