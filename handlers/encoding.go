package handlers

import (
	"fmt"
	"strconv"
	"sync"

	"github.com/gin-gonic/gin"

	"tenantry/models"
	"tenantry/problem"
)

func (s *Server) writeJSON(c *gin.Context, status int, v any) {
	c.Header("Content-Type", "application/json; charset=utf-8")
	if a, ok := v.(jsonAppender); ok {
		s.writeAppended(c, status, a)
		return
	}
	if err := problem.WriteJSON(c.Writer, status, v); err != nil {
		s.Log.WarnContext(c.Request.Context(), "write response", "err", err)
	}
}

// jsonAppender is a value that writes its own JSON, byte for byte what
// problem.EncodeJSON would write without the newline (models.User and
// models.UserPage: the answers of the hot routes).
type jsonAppender interface{ AppendJSON([]byte) []byte }

// jsonBuffers recycles response buffers; a 50-user page is about 7 KiB.
var jsonBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 8<<10); return &b }}

// writeAppended sends v in one write with its Content-Length, so that
// net/http neither chunks the body nor flushes it in pieces.
func (s *Server) writeAppended(c *gin.Context, status int, v jsonAppender) {
	bp := jsonBuffers.Get().(*[]byte)
	b := append(v.AppendJSON((*bp)[:0]), '\n')
	c.Header("Content-Length", strconv.Itoa(len(b)))
	c.Status(status)
	if _, err := c.Writer.Write(b); err != nil {
		s.Log.WarnContext(c.Request.Context(), "write response", "err", err)
	}
	if cap(b) <= 64<<10 { // a rare huge page is not kept
		*bp = b
		jsonBuffers.Put(bp)
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
