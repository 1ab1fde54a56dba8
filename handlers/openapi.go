package handlers

import (
	"net/http"

	"github.com/gin-gonic/gin"
)

// openAPIType is the media type of the OpenAPI document (RFC 9512).
const openAPIType = "application/yaml"

// handleOpenAPI serves the OpenAPI description of the tenant API: the
// bytes in Deps.OpenAPI, the same on every tenant host. A process built
// without a document answers 404 as for any unknown path.
func (s *Server) handleOpenAPI(c *gin.Context) {
	if len(s.OpenAPI) == 0 {
		s.respondError(c, errNoRoute)
		return
	}
	c.Header("Cache-Control", "no-cache")
	c.Data(http.StatusOK, openAPIType, s.OpenAPI)
}
