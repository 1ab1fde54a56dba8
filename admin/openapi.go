package admin

import (
	"net/http"

	"github.com/gin-gonic/gin"
)

// handleOpenAPI serves the admin API's OpenAPI description, the bytes in
// Deps.OpenAPI, behind the same token as every other admin route: tenant
// hosts never advertise the operator API.
func (s *Server) handleOpenAPI(c *gin.Context) {
	c.Header("Cache-Control", "no-store")
	// application/yaml is the media type of OpenAPI documents (RFC 9512).
	c.Data(http.StatusOK, "application/yaml", s.openAPI)
}
