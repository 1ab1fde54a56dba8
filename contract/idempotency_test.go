package contract

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"tenantry/internal/testenv"
)

// exerciseIdempotencyKeys causes, on tenant1, every answer that the
// Idempotency-Key header adds to the operations that change data: a
// replayed 201 and 204, the 400 of a malformed key, the 422 of a key sent
// again with another request, and the 409 of a key still in flight.
func exerciseIdempotencyKeys(t *testing.T, c *checker, env *testenv.Env) {
	t.Helper()
	users := env.URL1 + "/api/users"
	const js = "application/json"
	cleo := `{"name":"Cleo","email":"cleo@example.com"}`
	badKey := strings.Repeat("k", 256)

	create := exchange{method: "POST", url: users, contentType: js, body: cleo, key: "contract-create", want: 201}
	first := c.do(t, create)
	if again := c.do(t, create); !bytes.Equal(again, first) {
		t.Errorf("a retried create answered %s, the first %s", again, first)
	}
	id := parseID(t, first)
	self := users + "/" + id
	// The server refuses these for what it stored, which the document
	// cannot check: docAllows.
	c.do(t, exchange{method: "POST", url: users, contentType: js, body: `{"name":"Cleo","email":"cleo2@example.com"}`,
		key: "contract-create", want: 422, docAllows: true})
	c.do(t, exchange{method: "DELETE", url: self, key: "contract-create", want: 422, docAllows: true})
	c.do(t, exchange{method: "POST", url: users, contentType: js, body: cleo, key: badKey, want: 400})
	c.do(t, exchange{method: "DELETE", url: self, key: badKey, want: 400})

	// In flight: the first request waits for its body while the second
	// comes with the same key.
	finish := holdKeyed(t, env.Addr1, "POST", "/api/users", "contract-held", `{"name":"Held","email":"held@example.com"}`)
	c.do(t, exchange{method: "POST", url: users, contentType: js, body: `{"name":"Held","email":"held@example.com"}`,
		key: "contract-held", want: 409})
	if status := finish(); status != http.StatusCreated {
		t.Errorf("the held create answered %d, want 201", status)
	}
	// A DELETE's body is ignored, but one makes the server ask for it.
	finish = holdKeyed(t, env.Addr1, "DELETE", "/api/users/"+id, "contract-delete", "x")
	c.do(t, exchange{method: "DELETE", url: self, body: "x", key: "contract-delete", want: 409})
	if status := finish(); status != http.StatusNoContent {
		t.Errorf("the held delete answered %d, want 204", status)
	}
	c.do(t, exchange{method: "DELETE", url: self, body: "x", key: "contract-delete", want: 204})
}

// holdKeyed sends a keyed request's head with Expect: 100-continue and
// waits for the server to ask for the body: from then on its key is in
// flight. finish sends the body and returns the answer's status.
func holdKeyed(t *testing.T, addr, method, path, key, body string) (finish func() int) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	fmt.Fprintf(conn, "%s %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nIdempotency-Key: %s\r\n"+
		"Content-Length: %d\r\nExpect: 100-continue\r\n\r\n", method, path, addr, key, len(body))
	br := bufio.NewReader(conn)
	if line, err := br.ReadString('\n'); err != nil || !strings.HasPrefix(line, "HTTP/1.1 100 ") {
		t.Fatalf("%s %s: want 100 Continue, got %q, %v", method, path, line, err)
	}
	if blank, err := br.ReadString('\n'); err != nil || blank != "\r\n" {
		t.Fatalf("after 100 Continue: %q, %v", blank, err)
	}
	return func() int {
		t.Helper()
		if _, err := io.WriteString(conn, body); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		return resp.StatusCode
	}
}
