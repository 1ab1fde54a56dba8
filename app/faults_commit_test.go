package app_test

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"tenantry/config"
	"tenantry/internal/testenv"
)

// cutMode is what commitCutter does to the next COMMIT it sees.
type cutMode int

const (
	cutOff cutMode = iota
	// cutAfterCommit forwards the COMMIT to the server, then drops the
	// client's connection before any answer reaches it: the write
	// committed and the service cannot know.
	cutAfterCommit
	// cutBeforeCommit drops both sides instead of forwarding the COMMIT:
	// the server rolls the transaction back.
	cutBeforeCommit
)

// commitCutter is a loopback TCP proxy between tenantry and PostgreSQL
// that reads the frontend protocol's messages and, once armed, cuts the
// connection of the first COMMIT (a simple Query "commit", or a Parse of
// one followed by its Sync) as its mode says.
type commitCutter struct {
	ln       net.Listener
	upstream string

	mu   sync.Mutex
	mode cutMode
	cuts int
}

func startCommitCutter(t *testing.T, upstream string) *commitCutter {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &commitCutter{ln: ln, upstream: upstream}
	var wg sync.WaitGroup
	t.Cleanup(func() { _ = ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.serve(c)
		}
	}()
	return p
}

// arm makes the next COMMIT, on any connection, be cut as m says.
func (p *commitCutter) arm(m cutMode) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mode = m
}

// take returns the armed mode and disarms: one cut per arm.
func (p *commitCutter) take() cutMode {
	p.mu.Lock()
	defer p.mu.Unlock()
	m := p.mode
	if m != cutOff {
		p.mode = cutOff
		p.cuts++
	}
	return m
}

func (p *commitCutter) cutCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cuts
}

func (p *commitCutter) serve(client net.Conn) {
	server, err := net.Dial("tcp", p.upstream)
	if err != nil {
		_ = client.Close()
		return
	}
	relayed := make(chan struct{})
	go func() {
		defer close(relayed)
		_, _ = io.Copy(client, server)
		_ = client.Close()
	}()
	// Both sides closed before waiting for the relay, which ends only
	// when the server's side does: a server connection left open would
	// keep its transaction, and its locks, alive.
	defer func() { _ = client.Close(); _ = server.Close(); <-relayed }()
	r := bufio.NewReader(client)
	// Untyped startup messages first: an SSL or GSS encryption request
	// (answered by one byte) comes before the real startup message.
	for {
		msg, err := readMessage(r, false)
		if err != nil {
			return
		}
		if _, err := server.Write(msg); err != nil {
			return
		}
		if code := binary.BigEndian.Uint32(msg[4:8]); code != 80877103 && code != 80877104 {
			break
		}
	}
	pendingCommit := false // a Parse of COMMIT was seen; cut at its Sync
	for {
		msg, err := readMessage(r, true)
		if err != nil {
			return
		}
		commitNow := false
		switch msg[0] {
		case 'Q':
			commitNow = isCommit(msg[5:])
		case 'P':
			// name\0query\0…
			if parts := bytes.SplitN(msg[5:], []byte{0}, 3); len(parts) == 3 && isCommit(parts[1]) {
				pendingCommit = true
			}
		case 'S':
			commitNow, pendingCommit = pendingCommit, false
		}
		if commitNow {
			switch p.take() {
			case cutAfterCommit:
				// Nothing more reaches the client; the server gets the
				// COMMIT, then end of input, and commits before it exits.
				_ = client.Close()
				_, _ = server.Write(msg)
				_ = server.(*net.TCPConn).CloseWrite()
				<-relayed // the server answered and ended the session
				return
			case cutBeforeCommit:
				return
			}
		}
		if _, err := server.Write(msg); err != nil {
			return
		}
	}
}

// readMessage reads one frontend message: a type byte (typed) and an
// int32 length that counts itself and the body.
func readMessage(r *bufio.Reader, typed bool) ([]byte, error) {
	head := 4
	if typed {
		head = 5
	}
	msg := make([]byte, head)
	if _, err := io.ReadFull(r, msg); err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint32(msg[head-4:]))
	if n < 4 || n > 1<<30 {
		return nil, errors.New("bad message length")
	}
	msg = append(msg, make([]byte, n-4)...)
	if _, err := io.ReadFull(r, msg[head:]); err != nil {
		return nil, err
	}
	return msg, nil
}

func isCommit(sql []byte) bool {
	s := strings.TrimSpace(strings.TrimRight(string(sql), "\x00; \n"))
	return strings.EqualFold(s, "commit") || strings.EqualFold(s, "end")
}

// TestFaultCutCommit: the connection to PostgreSQL is cut at the COMMIT of
// a keyed POST, once after the server got the COMMIT (the user exists,
// the service could not learn it) and once before (it does not). The
// client gets 503 with Retry-After; its retry with the same
// Idempotency-Key gets the first answer replayed in the first case and
// makes the user in the second; either way exactly one user has the
// email, in the right tenant.
func TestFaultCutCommit(t *testing.T) {
	cluster := testenv.StartCluster(t)
	proxy := startCommitCutter(t, fmt.Sprintf("127.0.0.1:%d", cluster.Port()))
	db := cluster.Database()
	db.DSN = fmt.Sprintf("postgres://postgres@%s/postgres?sslmode=disable", proxy.ln.Addr())
	env := testenv.Start(t, "postgres", testenv.WithDatabase(db),
		func(c *config.Config) { c.Server.RequestTimeout = 2 * time.Second })
	sqlDB, err := sql.Open("pgx", cluster.DSN())
	if err != nil {
		t.Fatal(err)
	}
	defer sqlDB.Close()

	tests := []struct {
		name         string
		mode         cutMode
		wantReplayed bool
	}{
		{"cut after the server got COMMIT", cutAfterCommit, true},
		{"cut before COMMIT was sent", cutBeforeCommit, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			email := testenv.Unique("cut") + "@example.com"
			key := randomKey()
			post := func() (*http.Response, []byte) {
				t.Helper()
				req, _ := http.NewRequest(http.MethodPost, env.URL1+"/api/users",
					strings.NewReader(fmt.Sprintf(`{"name":"Cut","email":%q}`, email)))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Idempotency-Key", key)
				resp, err := (&http.Client{Timeout: loadTimeout}).Do(req)
				if err != nil {
					t.Fatalf("POST: no answer: %v", err)
				}
				b, _ := io.ReadAll(resp.Body)
				_ = resp.Body.Close()
				return resp, b
			}

			cuts := proxy.cutCount()
			proxy.arm(tt.mode)
			resp, body := post()
			proxy.arm(cutOff)
			if proxy.cutCount() != cuts+1 {
				t.Fatalf("the proxy cut %d connections, want 1: the POST committed no transaction through it", proxy.cutCount()-cuts)
			}
			if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" ||
				resp.Header.Get("Content-Type") != "application/problem+json" {
				t.Errorf("POST cut at COMMIT: %d, Retry-After %q, Content-Type %q, want 503 problem+json with Retry-After: %s",
					resp.StatusCode, resp.Header.Get("Retry-After"), resp.Header.Get("Content-Type"), body)
			}

			// The retry, polled: it may meet the service while it still
			// learns the database is fine.
			var retry *http.Response
			var retryBody []byte
			testenv.Eventually(t, recoveryLimit, func() bool {
				retry, retryBody = post()
				return retry.StatusCode != http.StatusServiceUnavailable && retry.StatusCode != http.StatusConflict
			}, "the retry answered")
			if retry.StatusCode != http.StatusCreated {
				t.Fatalf("retry with the same key: %d, want 201: %s", retry.StatusCode, retryBody)
			}
			if got := retry.Header.Get("Idempotent-Replayed") == "true"; got != tt.wantReplayed {
				t.Errorf("retry replayed = %v, want %v (Idempotent-Replayed %q)", got, tt.wantReplayed, retry.Header.Get("Idempotent-Replayed"))
			}
			var u struct {
				ID uint64 `json:"id"`
			}
			if err := json.Unmarshal(retryBody, &u); err != nil || u.ID == 0 {
				t.Fatalf("retry body: %s", retryBody)
			}

			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			for _, s := range []struct {
				schema string
				want   int
			}{{"tenant1", 1}, {"tenant2", 0}} {
				var n int
				var id sql.NullInt64
				if err := sqlDB.QueryRowContext(ctx, "SELECT count(*), max(id) FROM "+s.schema+".users WHERE email = $1", email).Scan(&n, &id); err != nil {
					t.Fatal(err)
				}
				if n != s.want {
					t.Errorf("%s: %d users with %s, want %d", s.schema, n, email, s.want)
				}
				if s.want == 1 && uint64(id.Int64) != u.ID {
					t.Errorf("%s: the user has id %d, the retry answered %d", s.schema, id.Int64, u.ID)
				}
			}
		})
	}
}
