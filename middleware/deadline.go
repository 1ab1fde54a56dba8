package middleware

import (
	"context"
	"net/http"
	"time"
)

// Deadline returns h with a deadline on every request's context, timeout
// after the request reached it (server.request_timeout). Every statement
// a handler runs takes that context, so a stalled or locked database
// costs a request at most timeout (then the statement fails as
// fault.Timeout, a 503) instead of holding it, its connection and its
// client for as long as the stall lasts.
//
// Requests for which exempt (which may be nil) returns true keep the
// context they came with: work that is meant to outlast the usual bound,
// such as a profile that runs for a number of seconds the caller chose.
//
// It wraps the http.Handler rather than sitting in a Gin chain so that it
// covers every route of a server, its 404s and its authentication
// included, before any of them runs.
func Deadline(h http.Handler, timeout time.Duration, exempt func(*http.Request) bool) http.Handler {
	if timeout <= 0 {
		return h
	}
	return &deadline{next: h, timeout: timeout, exempt: exempt}
}

type deadline struct {
	next    http.Handler
	timeout time.Duration
	exempt  func(*http.Request) bool
}

func (d *deadline) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if d.exempt != nil && d.exempt(r) {
		d.next.ServeHTTP(w, r)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), d.timeout)
	defer cancel()
	d.next.ServeHTTP(w, r.WithContext(ctx))
}

// Unwrap returns the handler Deadline wraps, so that tests can list the
// routes of the router inside (the contract tests hold them to the
// OpenAPI document).
func (d *deadline) Unwrap() http.Handler { return d.next }
