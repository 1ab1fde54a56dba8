// Package requestid names requests so that one request can be followed
// through every log line it caused: the access line, the errors and the
// SQL it ran.
//
// The contract:
//
//   - An id is 1 to MaxLen (64) bytes of A-Z, a-z, 0-9 and -._~+/=:
//     (Valid). The set holds every common format of request and
//     correlation id (UUIDs, ULIDs, hex, base64 and base64url, AWS's
//     Root=1-…), and nothing that could break a log line or a header:
//     no space, quote, comma, semicolon, control or non-ASCII byte. The
//     bound keeps a client from filling the log with one header.
//   - New returns a fresh id: 96 bits from crypto/rand as 16 characters of
//     unpadded base64url. It cannot be guessed from another one, so an id
//     a client saw says nothing about anyone else's requests.
//   - A server honours a valid id the client sent (X-Request-ID) and
//     replaces an invalid one by New's; it never trims or repairs one.
//   - TraceID reads a W3C Trace Context traceparent header
//     (https://www.w3.org/TR/trace-context/#traceparent-header) and
//     returns its trace id only when the whole header is well formed;
//     anything else is ignored, as the recommendation asks.
//   - NewContext and FromContext carry the id in a context.Context, which
//     is how the log handler (package logging) and the problem writers
//     find it.
//
// The package is a leaf: it imports nothing of tenantry's.
package requestid
