package app_test

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"tenantry/config"
	"tenantry/internal/testenv"
	"tenantry/tenants"
)

// TestMoveSeenByAnotherInstance runs two instances on one control
// database with a second placement, moves a tenant through one of them,
// and checks that the other serves it from its new database at once:
// every user written before the move through the other instance is there,
// a write after it lands on the target, and nothing is left on the source.
func TestMoveSeenByAnotherInstance(t *testing.T) {
	b := testenv.StartCluster(t)
	db := testenv.Postgres(t)
	shared := func(c *config.Config) {
		c.Databases = []config.Placement{{Name: "b", DSN: b.DSN()}}
		c.Web.SessionKey = "move-instances-test"
	}
	one := testenv.Start(t, "postgres", testenv.WithDatabase(db), shared)
	other := testenv.Start(t, "postgres", testenv.WithDatabase(db), shared)
	ctx := t.Context()
	host := "mv.test:" + testenv.Port(other.Addr1)
	if _, err := one.App.Catalog.Create(ctx, tenants.Spec{Name: "mv", Database: "main", Hosts: []string{host}}); err != nil {
		t.Fatal(err)
	}
	send := func(method string, body []byte) (int, []byte) {
		t.Helper()
		req, err := http.NewRequestWithContext(ctx, method, other.URL1+"/api/users?limit=500", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Host = host
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var buf bytes.Buffer
		_, _ = buf.ReadFrom(resp.Body)
		return resp.StatusCode, buf.Bytes()
	}
	post := func(i int) int {
		body, _ := json.Marshal(map[string]string{"name": "u", "email": fmt.Sprintf("u%d@example.com", i)})
		status, _ := send("POST", body)
		return status
	}
	testenv.Eventually(t, 5*time.Second, func() bool { return post(0) == http.StatusCreated }, "the other instance serves the new tenant")
	for i := 1; i < 20; i++ {
		if s := post(i); s != http.StatusCreated {
			t.Fatalf("POST %d before the move: %d", i, s)
		}
	}

	rep, err := one.App.Catalog.Move(ctx, "mv", tenants.MoveOptions{To: "b", Grace: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Rows < 20 {
		t.Errorf("move report: %d rows, want at least the 20 users", rep.Rows)
	}
	served := testenv.Eventually(t, time.Second, func() bool {
		status, body := send("GET", nil)
		var page struct {
			Users []struct{ Email string } `json:"users"`
		}
		return status == http.StatusOK && json.Unmarshal(body, &page) == nil && len(page.Users) == 20
	}, "the other instance serves the moved tenant with all its users within 1 s")
	t.Logf("served by the other instance from the target %v after the move returned", served)
	if s := post(20); s != http.StatusCreated {
		t.Fatalf("POST after the move through the other instance: %d", s)
	}

	target, err := sql.Open("pgx", b.DSN())
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()
	var n int
	if err := target.QueryRowContext(ctx, `SELECT count(*) FROM mv.users`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 21 {
		t.Errorf("target holds %d users, want 21 (20 before the move, 1 after)", n)
	}
	source, err := sql.Open("pgx", db.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer source.Close()
	if err := source.QueryRowContext(ctx, `SELECT count(*) FROM pg_namespace WHERE nspname = 'mv'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Error("schema mv still on the source under its own name after the move")
	}
}
