package admin

import (
	"context"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"tenantry/tenants"
)

// DefaultMoveTimeout bounds a move started by POST
// /admin/tenants/{name}/move when Deps.MoveTimeout is zero.
const DefaultMoveTimeout = time.Hour

// databaseList is the answer to GET /admin/databases.
type databaseList struct {
	Databases []tenants.DatabaseStats `json:"databases"`
}

// handleDatabaseList answers with every configured database. A database
// that does not answer is listed as unavailable (within
// tenants.DatabaseStatsWait) rather than failing the list; only a
// catalog that cannot be read does.
func (s *Server) handleDatabaseList(c *gin.Context) {
	dbs, err := s.catalog.DatabaseStats(c.Request.Context())
	if err != nil {
		s.respondError(c, err)
		return
	}
	s.writeJSON(c, http.StatusOK, databaseList{Databases: dbs})
}

// moveRequest is the body of POST /admin/tenants/{name}/move.
type moveRequest struct {
	// To names the configured database the tenant moves to.
	To string `json:"to"`
	// DropSource drops the tenant's old schema once the move is done
	// instead of keeping it under an archive name.
	DropSource bool `json:"drop_source"`
	// CopyRate bounds the bulk copy in bytes a second (0: the default,
	// tenants.DefaultMoveCopyRate); a tenant's neighbours on the same
	// servers pay for a faster copy.
	CopyRate int64 `json:"copy_rate"`
}

func (r moveRequest) Valid() error {
	if r.To == "" {
		return invalid(FieldError{Field: "to", Message: "must name a configured database"})
	}
	if r.CopyRate < 0 {
		return invalid(FieldError{Field: "copy_rate", Message: "must be 0 (the default) or a number of bytes a second"})
	}
	return nil
}

// handleTenantMove moves a tenant to another database and answers with
// the move's report once it is done (tenants.Catalog.Move).
//
// A move copies the tenant's data, so it may outlast
// server.request_timeout by far. It runs on a context of its own: the
// request's values (its id, for the log) without the request deadline or
// the client's cancellation, bounded by s.moveTimeout and cancelled when
// the server shuts down (Move then leaves the tenant on its source). Its
// answer gets a write deadline to match, so that server.write_timeout
// does not cut it off. A client that gives up does not stop the move;
// GET /admin/tenants/{name} shows where the tenant is.
func (s *Server) handleTenantMove(c *gin.Context) {
	var req moveRequest
	if !s.read(c, &req, mediaJSON) {
		return
	}
	name := c.Param("name")
	// Checked before the long context is made, so that a wrong request
	// is answered at once, as the CLI's are.
	if _, err := s.catalog.CheckMove(c.Request.Context(), name, req.To); err != nil {
		s.respondError(c, err)
		return
	}

	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.Request.Context()), s.moveTimeout)
	defer cancel()
	defer context.AfterFunc(s.ctx, cancel)()
	if err := http.NewResponseController(c.Writer).SetWriteDeadline(time.Now().Add(s.moveTimeout + time.Minute)); err != nil {
		// Only a server with a write timeout shorter than the move
		// would cut the answer off; the move itself goes on.
		s.log.DebugContext(ctx, "move: could not extend the write deadline", "err", err)
	}
	rep, err := s.catalog.Move(ctx, name, tenants.MoveOptions{To: req.To, DropSource: req.DropSource, CopyRate: req.CopyRate})
	if err != nil {
		s.respondError(c, err)
		return
	}
	s.writeJSON(c, http.StatusOK, rep)
}
