// Package logging makes every log line a request causes say which request
// and which tenant it belongs to, without the code that logs passing
// either.
//
// NewHandler wraps the process's slog.Handler (built once, by main) so
// that a record logged with a context (log.InfoContext(ctx, …),
// log.LogAttrs(ctx, …), GORM's statement lines) gains two attributes from
// that context: request_id (requestid.FromContext) and tenant
// (tenants.NameFromContext: the name of the tenant the request is served
// as, or was refused for when suspended or being removed). A record logged
// without a context, or with one that carries neither, is passed on
// unchanged.
//
// The contract:
//
//   - No duplicate keys: a key the record already holds, or that the
//     logger's own attributes (Logger.With) hold, is not added again; the
//     value the caller gave wins. The access line, which writes both keys
//     itself, therefore has each once.
//   - The keys are added after the record's own attributes, in the group
//     the logger has open (Logger.WithGroup), as every attribute is.
//   - Nothing else is added, and nothing is taken from the record: what
//     may be logged at all (no personal data) is decided where it is
//     logged.
//   - No package state: each process, and each test, wraps its own handler.
package logging
