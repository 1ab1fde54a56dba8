package admin

import (
	"github.com/gin-gonic/gin"

	"tenantry/problem"
)

// Media types the admin API reads. PATCH also takes JSON merge patches
// (RFC 7396), which is what its bodies are.
const (
	mediaJSON       = "application/json"
	mediaMergePatch = "application/merge-patch+json"
)

// writeJSON answers with v as JSON (problem.WriteJSON, as the tenant API
// does). Nothing the admin API shows may be cached: it is the catalog as
// it is now.
func (s *Server) writeJSON(c *gin.Context, status int, v any) {
	c.Header("Cache-Control", "no-store")
	if err := problem.WriteJSON(c.Writer, status, v); err != nil {
		s.log.WarnContext(c.Request.Context(), "write admin response", "err", err)
	}
}

// validator is a request body that checks its own fields.
type validator interface{ Valid() error }

// read decodes the request body into v and validates it. On failure it
// answers the client itself and returns false.
func (s *Server) read(c *gin.Context, v validator, mediaTypes ...string) bool {
	err := problem.DecodeJSON(c.Request, v, mediaTypes...)
	if err == nil {
		err = v.Valid()
	}
	if err != nil {
		s.respondError(c, err)
		return false
	}
	return true
}
