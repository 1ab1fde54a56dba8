// Package admin is the operator API: tenants are listed, created, changed,
// suspended, resumed and removed, and tenant migrations are run, over HTTP.
// NewServer builds it; routes.go lists every route. Every operation is a
// call to tenants.Catalog, the same implementation the CLI uses: the
// handlers only authenticate, decode, call it and encode.
//
// # Where it is served
//
// Only on its own listener (admin.listen, default 127.0.0.1:9000), never on
// a tenant port: configuration refuses an admin address that is also in
// server.listen, so a tenant can never reach it through its own Host.
//
// # Authentication
//
// Every request, including one for an unknown path, must carry
// "Authorization: Bearer <admin.token>"; otherwise it gets 401 with
// "WWW-Authenticate: Bearer realm=...". The token is compared in constant
// time over SHA-256 digests, so neither its content nor its length leaks
// through timing. The admin API is never served without a token: start-up
// refuses a non-loopback admin address with an empty admin.token, and on
// loopback an empty admin.token makes the process generate a random token,
// valid until it exits, and log it once at WARN (see app.Listen).
//
// Wrong tokens are throttled per client network (throttle.go: an IPv4
// address, an IPv6 /64, all of loopback together): past
// FailedAuthBurst of them, one more per FailedAuthEvery, and meanwhile
// every request from the network is 429 with Retry-After before its token
// is looked at. Requests without a token do not count.
//
// # Routes
//
//	GET    /admin/tenants                     200 {"tenants":[tenant...]}
//	POST   /admin/tenants                     201 tenant, Location; body {"name","schema"?,"hosts":[...],"database"?}
//	GET    /admin/tenants/{name}              200 tenant
//	PATCH  /admin/tenants/{name}              200 tenant; body {"status":"active"|"suspended"} (JSON or merge patch)
//	DELETE /admin/tenants/{name}[?drop_data=true]  200 {"name","data_dropped","archived_as"?}
//	POST   /admin/tenants/{name}/hosts        200 tenant; body {"host":"name[:port]"}; idempotent
//	DELETE /admin/tenants/{name}/hosts/{host} 204
//	POST   /admin/tenants/{name}/suspend      200 tenant
//	POST   /admin/tenants/{name}/resume       200 tenant
//	GET    /admin/tenants/{name}/stats        200 {"name","requests":[window...],"storage"} (see admin.TenantStats)
//	POST   /admin/tenants/{name}/move         200 the move's report; body {"to","drop_source"?,"copy_rate"?} (see Moves)
//	GET    /admin/databases                   200 {"databases":[{"name","control","tenants","size_bytes","available","error"?}...]}
//	POST   /admin/migrate                     202 run status, Location; optional body {"tenant","jobs"}
//	GET    /admin/migrate                     200 run status
//	GET    /admin/openapi.yaml                200 this API's OpenAPI document (openapi-admin.yaml)
//	GET    /debug/pprof/...                   the Go runtime's profiles (see Profiling)
//	GET    /metrics                           Prometheus metrics, when the process has them (see Metrics)
//
// A tenant is {"name","schema","status","schema_version","hosts","limits",
// "database","created_at","updated_at"}, database being the configured
// name of the database holding it (and "moving_to" while a move runs). DELETE keeps the tenant's data under an
// archive name (returned as archived_as) unless drop_data=true, as
// Catalog.Remove does: it refuses the tenant's requests first (503) and
// lets running ones drain, and answers 503 tenant-removal-blocked, having
// removed nothing, when other work keeps the tenant's tables locked; the
// tenant then shows "removing": true until the DELETE is sent again. PATCH changes only the status: hosts have their own
// resource, so that every change is one catalog transaction.
//
// POST /admin/migrate starts a run of Catalog.Migrate in the background and
// answers at once; GET /admin/migrate shows running, done, failed, total,
// failures, started_at and finished_at (and, once finished, the whole
// report). A second POST while a run is in progress on this instance is
// 409. Runs on different instances may overlap safely, since the catalog
// migrates each tenant under its own advisory lock. A run outlives the
// request that started it; at shutdown it may finish within
// server.shutdown_timeout and is cancelled after that (the tenant in
// progress rolls back; the next run picks it up).
//
// # Moves
//
// POST /admin/tenants/{name}/move calls Catalog.Move and answers when the
// move is done. A move copies data, so it is the one request that is not
// bound by server.request_timeout: it runs on a context of its own (the
// request's values, Deps.MoveTimeout, an hour by default, cancelled by
// Shutdown) and extends its write deadline past server.write_timeout. A
// client that goes away does not stop it. Wrong moves (unknown tenant or
// database, the tenant's own database) are refused before it starts, by
// Catalog.CheckMove, as the CLI does.
//
// # Errors
//
// Every error is RFC 9457 problem+json, shaped as the tenant API's, from
// one mapping (errors.go): 400 malformed JSON or query, 401 no or wrong
// token, 404 unknown tenant, host or path, 405 wrong method, 409 duplicate
// tenant or schema, host owned by another tenant, or migration running,
// 413 body too large, 415 body not JSON, 422 invalid name, schema, host,
// status or unknown field (with "errors":[{"field","message"}]). Bad
// input is never a 500; a 500 logs its cause and shows none of it.
// Migration failures list each failed tenant's error for the operator.
//
// # Profiling
//
// net/http/pprof answers under /debug/pprof/ on this listener only, behind
// the token and its throttle like every route: the index, cmdline, profile
// (CPU, ?seconds=, 30 by default), symbol, trace and the named profiles
// allocs, block, goroutine, heap, mutex and threadcreate. For example:
//
//	curl -H "Authorization: Bearer $TOKEN" -o cpu.pprof 'http://127.0.0.1:9000/debug/pprof/profile?seconds=30'
//	go tool pprof -http=: cpu.pprof
//
// These are the Go runtime's answers, not operations of this API: their
// errors are pprof's plain text rather than problems, and
// openapi-admin.yaml does not list them (see Server.Routes).
//
// # Metrics
//
// GET /metrics serves package metrics' registry in the Prometheus text
// format. Besides the admin token it accepts admin.metrics_token, when
// set, compared the same way; that token is refused (401, and counted by
// the throttle as a wrong token) on every other route, so a scraper's
// credentials can read metrics and nothing else. openapi-admin.yaml does
// not describe the route: Prometheus defines its answer (see Routes).
//
// # Effect on serving
//
// A change takes effect on the instance that made it before the response
// is sent (the catalog's change hook drops the resolver cache), and on
// every other instance within a second (see tenants.Listener).
package admin
