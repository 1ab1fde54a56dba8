package handlers

import (
	"context"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"tenantry/problem"
	"tenantry/tenants"
)

// tenantView is what a tenant may see about itself.
type tenantView struct {
	Name   string   `json:"name"`
	Schema string   `json:"schema"`
	Hosts  []string `json:"hosts"`
}

func (s *Server) handleTenantShow(c *gin.Context) {
	t, _ := tenants.FromContext(c.Request.Context())
	s.writeJSON(c, http.StatusOK, tenantView{Name: t.Name, Schema: t.Schema, Hosts: t.HostNames()})
}

func (s *Server) handleHealth(c *gin.Context) {
	s.writeJSON(c, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) handleReady(c *gin.Context) {
	ctx, cancel := context.WithTimeout(c.Request.Context(), 2*time.Second)
	defer cancel()
	if err := s.Ready(ctx); err != nil {
		// The database package logs the outage once (database.Health);
		// a line per probe would repeat it every few seconds.
		s.Log.DebugContext(ctx, "not ready", "err", err)
		s.writeProblem(c, problem.New(http.StatusServiceUnavailable, "not-ready", "Not ready", "The database does not answer.").Problem)
		return
	}
	s.writeJSON(c, http.StatusOK, map[string]string{"status": "ready"})
}
