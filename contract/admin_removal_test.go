package contract

import (
	"context"
	"database/sql"
	"encoding/json"
	"testing"

	"tenantry/internal/testenv"
)

// blockRemoval causes DELETE /admin/tenants/{name}'s 503: a session from
// outside the service keeps a lock on a tenant's users table (on the
// control database, whose DSN it has), so the
// removal drains and retries in vain and removes nothing (about 10 s
// under the default request timeout and removal policy). The tenant then
// shows "removing": true; once the lock is gone, the DELETE sent again
// removes it.
func blockRemoval(t *testing.T, env *testenv.Env, do func(exchange) []byte) {
	t.Helper()
	do(exchange{method: "POST", url: "/admin/tenants", contentType: "application/json",
		body: `{"name":"doomed","hosts":["doomed.test"],"database":"main"}`, want: 201})
	db, err := sql.Open("pgx", env.App.Config.Database.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback() }()
	if _, err := tx.ExecContext(ctx, `SELECT count(*) FROM "doomed"."users"`); err != nil {
		t.Fatal(err)
	}
	do(exchange{method: "DELETE", url: "/admin/tenants/doomed?drop_data=true", want: 503})
	var shown struct {
		Removing bool `json:"removing"`
	}
	if err := json.Unmarshal(do(exchange{method: "GET", url: "/admin/tenants/doomed", want: 200}), &shown); err != nil || !shown.Removing {
		t.Errorf("after a blocked removal: removing = %v (%v), want true", shown.Removing, err)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	do(exchange{method: "DELETE", url: "/admin/tenants/doomed?drop_data=true", want: 200})
}
