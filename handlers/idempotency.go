package handlers

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"gorm.io/gorm"

	"tenantry/database"
	"tenantry/fault"
	"tenantry/middleware"
	"tenantry/models"
	"tenantry/problem"
	"tenantry/tenants"
)

// Safe retries (issue 9): a POST, PUT, PATCH or DELETE sent with an
// Idempotency-Key header (IETF httpapi draft "The Idempotency-Key HTTP
// Header Field"), or a form post carrying the one-time token its page was
// rendered with, is answered once; a retry with the same key gets that
// first answer again, byte for byte, marked Idempotent-Replayed: true.
//
// How a keyed request runs (idempotent, then serveKeyed):
//
//  1. The key is checked (400 when malformed) and marked in flight in
//     this process, per tenant: a second request with the key while the
//     first runs gets 409 at once (an API call) or waits for the first
//     and then gets its answer (a form posted twice).
//  2. The body is read and fingerprinted with the method and target.
//  3. Expired records are swept, a bounded number per request.
//  4. A transaction begins and claims the key in the tenant's own
//     idempotency_keys table. If a record exists, the transaction is
//     rolled back and the record answers: replayed for the same request,
//     422 for another one.
//  5. The handler runs on that transaction (tenantDB hands it out) and
//     its answer is buffered, not sent.
//  6. A 2xx or 3xx answer is stored on the claimed row and the
//     transaction commits: the change and its answer commit together or
//     not at all. Only then is the answer sent. A commit that fails is a
//     503 with Retry-After (commitError), and a retry with the key learns
//     from the database which way it went.
//  7. A 4xx answer changed nothing: the transaction is rolled back and the
//     answer stored on its own, so that it is replayed as the draft
//     recommends. A 5xx, 408 or 429 answer is not stored: a retry runs
//     again.
//
// Without the header (and, on a page route, without the form token)
// nothing of this runs: the API's unkeyed requests pay one header lookup.

// idempotencyHeader is the request header that carries a key.
const idempotencyHeader = "Idempotency-Key"

// formTokenField is the hidden form field that carries a page form's
// one-time token, used as its idempotency key.
const formTokenField = "idempotency_key"

// replayedHeader marks an answer that was stored, not produced anew.
const replayedHeader = "Idempotent-Replayed"

// keyedTxKey holds, in the Gin context, the transaction of a keyed
// request, which tenantDB hands to the handler.
const keyedTxKey = "tenantry.keyedTx"

// sweepBatch bounds how many expired records one keyed request deletes
// besides its own key's.
const sweepBatch = 10

// formWait bounds how long a form post waits for the same form's first
// post to finish before it is answered 409.
const formWait = 10 * time.Second

var (
	errKeyInvalid = problem.New(http.StatusBadRequest, "invalid-idempotency-key", "Invalid Idempotency-Key",
		"The Idempotency-Key header must be one value of 1 to 255 printable ASCII characters.",
		problem.FieldError{Field: idempotencyHeader, Message: "must be 1 to 255 printable ASCII characters"})
	errTokenInvalid = problem.New(http.StatusBadRequest, "invalid-idempotency-key", "Invalid form",
		"The form's one-time token is not valid. Reload the page and send the form again.")
	errKeyReused = problem.New(http.StatusUnprocessableEntity, "idempotency-key-reused", "Idempotency-Key reused",
		"This Idempotency-Key was first sent with a different request; send a new request with a new key.")
	errTokenReused = problem.New(http.StatusUnprocessableEntity, "idempotency-key-reused", "Form already sent",
		"This form was already sent with other values. Reload the page to send it again.")
	errKeyInFlight = problem.New(http.StatusConflict, "idempotency-key-in-flight", "Request in progress",
		"A request with this Idempotency-Key is still being processed; retry after the Retry-After seconds.")
	errTokenInFlight = problem.New(http.StatusConflict, "idempotency-key-in-flight", "Form still being sent",
		"This form is still being sent. Wait a moment, then reload the page.")
)

// Idempotency is what the process keeps for safe retries: the keys of
// the requests it is serving now, and the clock that dates stored
// answers. The answers themselves are in each tenant's database tables.
// The zero value is ready to use.
type Idempotency struct {
	// TTL is how long an answer is kept and replayed; zero means
	// models.IdempotencyTTL (24 hours).
	TTL time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time

	mu sync.Mutex
	// inflight maps tenant schema + key to a channel closed when the
	// request holding the key finishes.
	inflight map[string]chan struct{}
}

func (id *Idempotency) now() time.Time {
	if id.Now != nil {
		return id.Now().UTC()
	}
	return time.Now().UTC()
}

func (id *Idempotency) ttl() time.Duration {
	if id.TTL > 0 {
		return id.TTL
	}
	return models.IdempotencyTTL
}

// acquire marks k in flight and returns the function that clears it. If
// another request holds k, it returns false at once, or, with wait set,
// waits for that request to finish (at most formWait, and no longer than
// ctx) and tries again.
func (id *Idempotency) acquire(ctx context.Context, k string, wait bool) (release func(), ok bool) {
	var timeout <-chan time.Time
	for {
		id.mu.Lock()
		busy, taken := id.inflight[k]
		if !taken {
			if id.inflight == nil {
				id.inflight = map[string]chan struct{}{}
			}
			done := make(chan struct{})
			id.inflight[k] = done
			id.mu.Unlock()
			return func() {
				id.mu.Lock()
				delete(id.inflight, k)
				id.mu.Unlock()
				close(done)
			}, true
		}
		id.mu.Unlock()
		if !wait {
			return nil, false
		}
		if timeout == nil {
			t := time.NewTimer(formWait)
			defer t.Stop()
			timeout = t.C
		}
		select {
		case <-busy:
		case <-timeout:
			return nil, false
		case <-ctx.Done():
			return nil, false
		}
	}
}

// keyedTx returns the transaction of the request's key, if it has one.
func keyedTx(c *gin.Context) *gorm.DB {
	v, ok := c.Get(keyedTxKey)
	if !ok {
		return nil
	}
	tx, _ := v.(*gorm.DB)
	return tx
}

// idempotent is the middleware of safe retries; it runs last before the
// handlers of the routes that change data (see routes.go).
func (s *Server) idempotent(c *gin.Context) {
	switch c.Request.Method {
	case http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
	default:
		c.Next()
		return
	}
	values := c.Request.Header[idempotencyHeader]
	page := c.GetBool(pageRouteKey)
	if len(values) == 0 && !page {
		c.Next()
		return
	}
	ctx := c.Request.Context()
	t, ok := tenants.FromContext(ctx)
	if !ok {
		c.Next()
		return
	}

	var (
		key      string
		body     []byte
		bodyRead bool
		fromForm = len(values) == 0
	)
	if fromForm {
		b, err := readBody(c.Request)
		if err != nil {
			c.Next() // the handler meets the same error and answers it
			return
		}
		body, bodyRead = b, true
		if key = formToken(c.Request, body); key == "" {
			c.Next() // a form without a token: a program's post
			return
		}
	} else if len(values) == 1 {
		key = values[0]
	}
	if !validKey(key) {
		s.respondError(c, pick(fromForm, errTokenInvalid, errKeyInvalid))
		c.Abort()
		return
	}

	release, ok := s.Idempotency.acquire(ctx, t.Schema+"\x00"+key, fromForm)
	if !ok {
		c.Header("Retry-After", "1")
		s.respondError(c, pick(fromForm, errTokenInFlight, errKeyInFlight))
		c.Abort()
		return
	}
	defer release()
	if !bodyRead {
		b, err := readBody(c.Request)
		if err != nil {
			c.Next()
			return
		}
		body = b
	}
	s.serveKeyed(c, key, fingerprint(c.Request, body), fromForm)
	c.Abort()
}

// serveKeyed answers a request whose key this process holds: from the
// stored record, or by running the handler in the transaction that stores
// its answer (steps 3 to 7 above).
func (s *Server) serveKeyed(c *gin.Context, key, fp string, fromForm bool) {
	ctx := c.Request.Context()
	db, err := s.Scope.DB(ctx)
	if err != nil {
		s.respondError(c, err)
		return
	}
	now := s.Idempotency.now()
	if _, err := models.SweepIdempotencyKeys(ctx, db, key, now, sweepBatch); err != nil {
		s.respondError(c, err)
		return
	}
	tx, err := models.BeginKeyed(ctx, db)
	if err != nil {
		s.respondError(c, database.Classify(err))
		return
	}
	rec := models.IdempotencyKey{Key: key, Fingerprint: fp, CreatedAt: now, ExpiresAt: now.Add(s.Idempotency.ttl())}
	prior, claimed, err := models.ClaimIdempotencyKey(ctx, tx, rec)
	if err != nil || !claimed {
		tx.Rollback()
		switch {
		case errors.Is(err, models.ErrKeyBusy):
			c.Header("Retry-After", "1")
			s.respondError(c, pick(fromForm, errTokenInFlight, errKeyInFlight))
		case err != nil:
			s.respondError(c, err)
		case prior.Fingerprint != fp:
			s.respondError(c, pick(fromForm, errTokenReused, errKeyReused))
		default:
			replay(c, prior)
		}
		return
	}

	w := &keyedWriter{real: c.Writer, header: http.Header{}, status: http.StatusOK, size: -1}
	finished := false
	defer func() {
		// A panic in the handler: nothing is stored, and the recover
		// middleware answers on the real writer.
		if !finished {
			c.Writer = w.real
			c.Set(keyedTxKey, (*gorm.DB)(nil))
			tx.Rollback()
		}
	}()
	c.Set(keyedTxKey, tx)
	c.Writer = w
	c.Next()
	c.Writer = w.real
	c.Set(keyedTxKey, (*gorm.DB)(nil))
	finished = true

	switch {
	case w.status < http.StatusBadRequest:
		err := models.CompleteIdempotencyKey(ctx, tx, key, w.status, storedHeader(w.header), w.body.Bytes())
		if err == nil {
			err = tx.Commit().Error
		}
		if err != nil {
			tx.Rollback()
			s.respondError(c, commitError(err))
			return
		}
	case storable(w.status):
		tx.Rollback()
		rec.Status, rec.Header, rec.Body = w.status, storedHeader(w.header), w.body.Bytes()
		if _, err := models.SaveIdempotencyKey(ctx, db, rec); err != nil {
			// The answer stands (it changed nothing); a retry runs again.
			s.Log.WarnContext(ctx, "store answer of idempotency key", "err", err, "route", middleware.Route(c))
		}
	default:
		tx.Rollback()
	}
	w.flush()
}

// commitError is the answer to a keyed request whose answer could not be
// stored or committed: the database failure it is (503 with Retry-After
// for an outage, a timeout or a conflict), and a 503 as well when the
// driver's error says nothing more. Whether a failed COMMIT took effect
// may be unknown even to the server; a retry with the same key learns it,
// from the stored answer if it committed and by running again if not.
func commitError(err error) error {
	err = database.Classify(fmt.Errorf("commit keyed request: %w", err))
	if _, ok := fault.As(err); !ok {
		return database.ErrUnavailable.With("", "", err)
	}
	return err
}

// storable reports whether a 4xx answer is kept for replay: every client
// error is, but those that say "try again" (408 Request Timeout, 425 Too
// Early, 429 Too Many Requests).
func storable(status int) bool {
	switch status {
	case http.StatusRequestTimeout, http.StatusTooEarly, http.StatusTooManyRequests:
		return false
	}
	return status < http.StatusInternalServerError
}

// replay sends a stored answer again.
func replay(c *gin.Context, rec models.IdempotencyKey) {
	h := c.Writer.Header()
	for k, vs := range rec.Header {
		h[k] = vs
	}
	h.Set(replayedHeader, "true")
	if rec.Status != http.StatusNoContent && rec.Status != http.StatusNotModified {
		h.Set("Content-Length", strconv.Itoa(len(rec.Body)))
	}
	c.Status(rec.Status)
	c.Writer.WriteHeaderNow()
	if len(rec.Body) > 0 {
		_, _ = c.Writer.Write(rec.Body)
	}
}

// notStored are the response headers a stored answer leaves out: they
// describe one connection or one moment, not the answer.
var notStored = map[string]bool{
	"Content-Length": true, "Date": true, "Connection": true, "Keep-Alive": true,
	"Transfer-Encoding": true, "Trailer": true, "Upgrade": true, "Retry-After": true,
}

func storedHeader(h http.Header) map[string][]string {
	out := make(map[string][]string, len(h))
	for k, vs := range h {
		if !notStored[k] {
			out[k] = vs
		}
	}
	return out
}

// validKey reports whether k is a key: 1 to MaxIdempotencyKeyLength
// printable ASCII characters. The draft's quoted form ("abc") is taken as
// it is sent, quotes included: a client that always sends the same form
// gets the same key.
func validKey(k string) bool {
	if k == "" || len(k) > models.MaxIdempotencyKeyLength {
		return false
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x20 || k[i] > 0x7e {
			return false
		}
	}
	return true
}

// fingerprint identifies a request: its method, target and body.
func fingerprint(r *http.Request, body []byte) string {
	h := sha256.New()
	h.Write([]byte(r.Method))
	h.Write([]byte{0})
	h.Write([]byte(r.URL.RequestURI()))
	h.Write([]byte{0})
	h.Write(body)
	return hex.EncodeToString(h.Sum(nil))
}

// readBody reads the whole body (limitBody has bounded it) and puts it
// back for the handler. When the read fails, the handler is given what
// was read followed by the same error, so it answers it as it would have
// without the key (413, 408, 400).
func readBody(r *http.Request) ([]byte, error) {
	if r.Body == nil || r.Body == http.NoBody {
		return nil, nil
	}
	b, err := io.ReadAll(r.Body)
	if err != nil {
		r.Body = io.NopCloser(io.MultiReader(bytes.NewReader(b), errReader{err}))
		return nil, err
	}
	r.Body = io.NopCloser(bytes.NewReader(b))
	return b, nil
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// formToken returns the one-time token of a posted form, or "" when it
// has none or is not a form.
func formToken(r *http.Request, body []byte) string {
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil {
		return ""
	}
	switch mt {
	case "application/x-www-form-urlencoded":
		v, _ := url.ParseQuery(string(body))
		return v.Get(formTokenField)
	case "multipart/form-data":
		mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
		for {
			p, err := mr.NextPart()
			if err != nil {
				return ""
			}
			if p.FormName() == formTokenField && p.FileName() == "" {
				b, _ := io.ReadAll(io.LimitReader(p, models.MaxIdempotencyKeyLength+1))
				return string(b)
			}
		}
	}
	return ""
}

// newFormToken returns a fresh one-time token for a rendered form.
func newFormToken() string { return rand.Text() }

func pick[T any](cond bool, yes, no T) T {
	if cond {
		return yes
	}
	return no
}

// keyedWriter holds a keyed request's answer until it is stored: nothing
// reaches the client before the transaction commits. It behaves as Gin's
// own writer does (WriteHeader only records the status, the first Write
// fixes it).
type keyedWriter struct {
	real   gin.ResponseWriter
	header http.Header
	status int
	size   int // -1 until the answer is begun
	body   bytes.Buffer
}

var _ gin.ResponseWriter = (*keyedWriter)(nil)

func (w *keyedWriter) Header() http.Header { return w.header }

func (w *keyedWriter) WriteHeader(code int) {
	if code > 0 && !w.Written() {
		w.status = code
	}
}

func (w *keyedWriter) WriteHeaderNow() {
	if !w.Written() {
		w.size = 0
	}
}

func (w *keyedWriter) Write(b []byte) (int, error) {
	w.WriteHeaderNow()
	n, _ := w.body.Write(b)
	w.size += n
	return n, nil
}

func (w *keyedWriter) WriteString(s string) (int, error) {
	w.WriteHeaderNow()
	n, _ := w.body.WriteString(s)
	w.size += n
	return n, nil
}

func (w *keyedWriter) Status() int   { return w.status }
func (w *keyedWriter) Size() int     { return w.size }
func (w *keyedWriter) Written() bool { return w.size != -1 }

// Flush sends nothing: the answer waits for the commit.
func (w *keyedWriter) Flush() {}

// Hijack is refused: a keyed request's answer must be stored.
func (w *keyedWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return nil, nil, errors.New("hijack: the answer of a keyed request is buffered")
}

// CloseNotify never fires; handlers use the request's context instead.
func (w *keyedWriter) CloseNotify() <-chan bool { return make(chan bool) }

func (w *keyedWriter) Pusher() http.Pusher { return nil }

// Unwrap lets http.ResponseController reach the connection (read
// deadlines); Flush above still keeps the answer back.
func (w *keyedWriter) Unwrap() http.ResponseWriter { return w.real }

// flush sends the held answer on the real writer.
func (w *keyedWriter) flush() {
	h := w.real.Header()
	for k, vs := range w.header {
		h[k] = vs
	}
	w.real.WriteHeader(w.status)
	w.real.WriteHeaderNow()
	if w.body.Len() > 0 {
		_, _ = w.real.Write(w.body.Bytes())
	}
}
