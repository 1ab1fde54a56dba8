// Package tenants owns everything about being multi-tenant: the catalog of
// tenants and their hosts, host normalisation, the resolver and its cache,
// the Gin middleware, the GORM scope and provisioning.
//
// # Where a request becomes a tenant
//
// Middleware.Handler normalises the request's Host (NormalizeHost: lower
// case, no trailing dot, no default port, any other port kept), asks the
// Resolver (an in-memory cache in front of the catalog) for the tenant and
// puts it in the request's context (NewContext / FromContext). An unknown
// or malformed host is ErrUnknownHost / ErrMalformedHost (404), a suspended
// tenant ErrSuspended (403), a tenant whose schema is older than the code
// ErrBehind (503), a tenant being removed ErrRemoving (503; see
// Catalog.Remove). There is no default tenant and no fallback: a request
// that does not name a tenant exactly is refused. X-Forwarded-Host and
// X-Forwarded-Proto count only from the configured trusted proxies.
//
// # Isolation guarantee
//
// Handlers reach the database only through Scope.DB, which returns a
// session for the tenant in the context. NewScope installs GORM callbacks
// on the pool that rewrite or refuse every statement before it is built:
//
//   - A statement whose context carries tenant T can touch only T's
//     tables: the model's table is replaced by T's qualified name
//     ("T"."users" under the schema strategy, "T_users" under the prefix
//     strategy). Raw SQL, explicit Table() names, joins, preloads and
//     catalog models are refused with ErrOutsideScope, because each could
//     name another tenant's table.
//   - A statement without a tenant may touch only the catalog; any tenant
//     model is refused with ErrNoTenant, so a forgotten scope fails loudly
//     instead of reading or writing the shared schema.
//
// No tenant data lives in the shared schema: under the prefix strategy on
// PostgreSQL, prefixed tables live in their own schema (PrefixSchema).
// Schema names must match ^[a-z_][a-z0-9_]{0,62}$ and are quoted wherever
// they appear in SQL; public, information_schema, pg_* and tenantry's own
// names are refused.
//
// # Why schema-qualified names, not search_path
//
// Nothing is ever SET on a connection: the tenant is part of each
// statement's text. A pooled connection therefore carries no tenant state
// from one request to the next, which keeps the scope correct on a shared
// pool and behind PgBouncer in transaction mode (TestPoolPoisoning runs
// tenants alternately on pools of one and two connections). The
// alternative that is equally safe, SET LOCAL search_path inside a
// transaction per request, costs three extra round trips (BEGIN,
// set_config, COMMIT) and makes every read a transaction. BenchmarkScope
// measures both on the local PostgreSQL 15 (2 cores, 16 connections,
// parallel goroutines, one get-by-id plus a 50-row page with its count per
// operation):
//
//	qualified  0.50–0.74 ms/op  (three runs of 3 s: 503, 674, 740 µs)
//	set_local  0.95–1.35 ms/op  (947, 1011, 1346 µs)
//
// Qualified names were 1.4–2.7× faster (measured on a machine also busy
// with other work, hence the spread), and they are the only variant that
// leaves reads outside transactions, so they are what the scope does.
//
// The price of qualified names is that statement text differs per tenant,
// so a connection that serves every tenant prepares and plans every
// statement once per tenant: at 10,000 tenants that made the service run
// at 0.22× the plain app. The pool therefore routes each tenant's
// statements to connections of its own home group (database.Router, see
// the database package's doc): each connection serves a bounded share of
// the tenants. That is a speed question, never an isolation one: RouteKey
// only picks a connection, and the callbacks above decide, on every
// connection alike, what a statement may reach.
//
// # Placements: tenants on several databases
//
// The catalog lives on the control database (database.dsn); a tenant's
// schema lives on its placement, Tenant.Database: "" for the control
// database, else one of the configured databases (config databases).
// The one pool (database.Placements) sends each statement to the database
// of the tenant in its context (PlacementKey), and within it to the
// tenant's home connection group; the catalog's own work on a tenant's
// data (provisioning, migrations, removal, usage, moves) names the
// database with database.OnPlacement, carrying no tenant.
//
// The guarantee is unchanged, and does not depend on the routing being
// right: every statement is still qualified with its tenant's schema, and
// schema names are unique across the whole catalog, so a statement sent
// to the wrong database finds no table of that name (database.ErrGone),
// never another tenant's rows. A tenant whose placement this process does
// not know (a database missing from its configuration) is answered 503
// (database.ErrUnknownPlacement), never served from another database.
// A placement that is down fails only the requests of its own tenants.
//
// A new tenant goes to the configured database with the fewest tenants
// unless Spec.Database names one. On the control database a tenant is
// provisioned in one transaction as before; on another database in two,
// its schema and migrations there first, then its catalog rows, and the
// schema is dropped again when the second fails. Removal takes its locks
// in the same order across the two databases (the tenant's advisory lock
// and tables on its database, then its catalog rows). Catalog.Move moves
// a tenant between databases while it is served (move.go).
//
// # Live catalog
//
// Every committed catalog change (Catalog.OnChange) clears this process's
// resolver cache and, on PostgreSQL, sends NOTIFY tenantry_catalog; every
// process LISTENs (Listener, live.go) and reloads the catalog on each
// notification and on each (re)connect, since notifications sent while
// disconnected are lost. A periodic full refresh (tenancy.refresh_interval,
// 500 ms on SQLite, which has no notifications) is the safety net. A
// suspension or removal therefore reaches every instance well within a
// second. A reload that read the catalog before a change was made never
// overwrites the cache after it (Resolver's epochs): on the instance that
// made the change, the very next request sees it.
//
// # Noisy neighbours
//
// Every tenant shares one pool and one CPU, so Limiter (limiter.go) bounds
// each tenant's share: at most tenancy.max_concurrent_per_tenant of its
// requests are served at once (by default half of database.max_open_conns,
// so one tenant never holds more than half the connections while others
// want them), and, when
// tenancy.rate_limit is set, at most that many a second (a token bucket
// with tenancy.rate_burst). A tenant may have its own limits in the catalog
// (Catalog.SetLimits; NULL or 0 is the default), read from the resolved
// tenant like its status, so a change reaches every process as any
// catalog change does. A request over the rate is refused at once, one
// over the concurrency limit after waiting up to tenancy.concurrency_wait
// for a slot: both 429 with Retry-After. A tenant that goes on sending
// through its rate refusals (more of them within one Retry-After than its
// burst) has the further ones held before they are answered, up to
// tenancy.refusal_hold and at most tenancy.max_held_refusals at once in
// the process (limiter_hold.go), so a client that ignores Retry-After is
// paced by its own connections instead of costing a refusal per round
// trip. 429, not 503: the service is
// up and other tenants are being served; it is this tenant that must slow
// down. The concurrency limit is work-conserving: while no more than three
// quarters of database.max_open_conns requests of all tenants are in
// flight (config.LendLimit), a tenant over its limit borrows a slot for
// one request, so a tenant alone on the process uses most of the pool;
// the last quarter stays free for a tenant that arrives, and once other
// tenants fill the pool every tenant is held to its own limit again.
// State is per tenant ID, made on first use and swept once idle, so
// memory follows the active tenants, not the catalog. Limits are per
// process. bench/noisy measures what they buy.
//
// # Migrations
//
// Migrator (Catalog.Migrate, `tenantry migrate`, POST /admin/migrate)
// brings every tenant to the code's tenant migrations: each tenant in its
// own transaction under its advisory lock, taken on the catalog's
// database and on the tenant's own. Tenants are grouped by database and
// every database is worked on at once, MigrateOptions.Jobs at a time on
// each, bounded by that database's pool and, all together, by the control
// database's pool, which carries the catalog's side of every job. Before
// any tenant is touched, one tenant's records on each database are
// checked against the code: drift on any database stops the whole run; a
// database that cannot be read fails only its own tenants, each listed in
// the report.
//
// # Provisioning
//
// Catalog.Create and Catalog.Ensure create a tenant's schema (or prefixed
// tables), apply every tenant migration and insert its catalog rows in one
// transaction, under a transaction-scoped advisory lock per schema, so two
// processes starting at once with the same seed list do not collide.
package tenants
