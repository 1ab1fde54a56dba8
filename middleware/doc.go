// Package middleware is what both of tenantry's HTTP servers (the tenant
// API and pages, package handlers; the admin API, package admin) do alike
// around their handlers, written once:
//
//   - Access (access.go), first in both, names every request (its
//     X-Request-ID, kept when the client sent a valid one, else made;
//     package requestid), puts the id and a database.Usage in its context,
//     and once it is answered hands its Record to the observers (metrics,
//     per-tenant stats) and writes its access line (log.access).
//   - Recover turns a panic into a logged 500 problem instead of a dropped
//     connection, written by the server's own problem writer (an HTML page
//     or problem+json, as that server decides).
//   - LimitBody refuses a request body over a limit: at once when
//     Content-Length says so, and while it is read otherwise. A request
//     without a body (http.NoBody, every GET) costs nothing.
//   - Deadline (deadline.go) puts a deadline on every request's context,
//     which reaches the database.
//   - LogError logs a failed request by the kind of its error: a fault of
//     the service (fault.Internal, or anything unclassified) at error level
//     with its whole wrapped chain; the transient kinds a bad day brings
//     (fault.Unavailable, Timeout, Contention) not at all, since they come
//     by the thousand while the database is away and are logged once per
//     change of state where they are detected; every other known failure
//     (the client's mistakes, canceled requests) at debug level at most.
//   - Deadline gives every request's context a deadline
//     (server.request_timeout) that reaches every statement it runs.
//
// The contract every piece keeps: no package state, every dependency (the
// logger, the writer, the limit) passed in, and no allocation on a request
// that does not need it. Each server still decides, in one function of its
// own (respondError), what an error looks like; this package only answers
// with what that function writes.
package middleware
