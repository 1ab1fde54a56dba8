// Package fault is tenantry's error model: an error that carries a Kind
// (what sort of failure it is), a stable Code, a Message that is safe to
// show to whoever sent the request, and optionally the Field of the input
// at fault, in the spirit of benbjohnson/wtf's Error{Code, Message}.
//
// The domain packages (models, tenants, database) return *Error values or
// wrap their sentinels in one; the HTTP surfaces map a Kind to a status in
// exactly one table (package problem) and never read err.Error() to decide
// what to show. Anything that is not an *Error, or that is of Kind
// Internal, is shown as a bare "internal error" and its chain goes to the
// log.
//
// The contract:
//   - Message is written for the client: it restates their input and the
//     rule it broke, or says what to do (wait, retry). It never contains
//     SQL, table names, values from other tenants or a wrapped cause.
//   - Err is the cause, kept for errors.Is/As and for the log only.
//   - Kinds Unavailable, Timeout and Contention are transient: the same
//     request may succeed if retried after RetryAfter.
package fault
