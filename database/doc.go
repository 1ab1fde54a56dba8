// Package database opens the one connection pool a tenantry process uses.
// Open is called once, by main (or a test), and the *gorm.DB is passed
// down explicitly; nothing keeps it in a package variable.
//
// # Placements
//
// With tenants on several databases (config databases), the pool GORM
// sees is a Placements: one Router per database, each with its own
// database.max_open_conns connections opened lazily (a database that is
// down costs nothing at start-up), and a rule that sends each statement
// to the Router of its placement: OnPlacement's name, else the tenant's
// (PlacementOf), else the control database. A placement this process has
// no pool for is ErrUnknownPlacement (503), never the control database.
// Each placement other than the control one has its own Health, so an
// outage is logged, and reported in tenantry_database_up, as that
// database's. Everything below holds within each placement.
//
// # Tenant-affine connections
//
// The pool GORM sees is a Router: database.max_open_conns connections split
// into database.pool_groups groups (by default one group per connection),
// each a *sql.DB of its own. Every statement and transaction
// is sent to a group chosen from the tenant in its context
// (tenants.RouteKey, the tenant's schema): its home group, a hash of the
// schema modulo the number of groups. So each connection serves a bounded
// share of the tenants, about tenants ÷ groups of them, instead of every
// tenant.
//
// Why: tenant statements name the tenant's schema ("t42"."users"), so their
// text differs per tenant. A connection that serves every tenant must
// prepare and plan each statement once per tenant and open every tenant's
// relations in its backend; with more tenants than its statement cache
// (pgx keeps database.statement_cache_capacity prepared statements per
// connection) nearly every statement is a new one. Measured before this
// router, at 10,000 tenants the service ran at 0.22× the plain
// single-tenant app, PostgreSQL spending its time parsing, planning and
// opening relations (docs/BENCHMARKS.md). With a bounded share per
// connection, a warm connection finds its tenants' statements prepared and
// their relations open, as a single-tenant app does.
//
// # Guarantee
//
// Routing chooses which connection runs a statement, never what the
// statement may reach. Nothing is SET on a connection for a tenant; the
// scope callbacks (tenants.NewScope) qualify or refuse every statement the
// same way whatever connection runs it; connection settings (statement
// cache size, plan_cache_mode) are the same for every connection and carry
// no tenant. A tenant therefore stays isolated when its statements run on
// another tenant's home connection, which overflow does all the time
// (TestPoolPoisoning runs tenants on groups of one connection).
//
// # Trade-offs
//
//   - Hot tenant: a tenant is not capped by its home group. A tenant its
//     home group served among its last 4 statements counts as hot; when
//     its home group has no free connection, its statement overflows to
//     the first group in a fixed order from home that has one, so one
//     tenant taking all the load still uses the whole pool (the
//     neighbours are the same few groups each time, so its statements
//     stay prepared there).
//   - Quiet tenants wait at home, briefly, while they are few: when its
//     home is busy, a quiet tenant waits for it for up to
//     database.home_wait (2 ms), then takes any connection, as long as
//     the distinct tenants that queued in the last 10 s are few enough
//     for every connection to keep all their statements prepared
//     (statement_cache_capacity ÷ 6: 682 tenants at the default). Past
//     that, quiet tenants wait at home only. Measured both ways: leaving
//     home after 2 ms brought the POST p99 at 100 tenants under the plain
//     app's (0.79–0.89× in 7 of 8 runs, from 1.01–1.21×), but at 10,000
//     tenants it halved throughput and grew backends to 117 MB, every
//     connection preparing and opening every tenant's statements and
//     relations (docs/BENCHMARKS.md). The
//     price of waiting at home is a queue per connection, which shows in
//     p99 at 10,000 tenants; a slow statement of one tenant can delay the
//     few tenants that share its connection, up to their request deadline.
//   - One queue: a caller that must wait, quiet or hot, joins one queue
//     for the whole pool (Router.wait), served in order of arrival. Each
//     connection tells the router as it comes back to its group's pool
//     (database/sql asks it driver.Validator's IsValid then, and its Close
//     when it drops it), and the first queued caller that may take that
//     group gets it: a quiet tenant within home_wait only its home, anyone
//     else any group. A grant names a group, not a reserved connection: a
//     caller arriving in between may take it first, and the granted one
//     then waits inside the group for one statement.
//   - Warm-up: a connection prepares each of its tenants' statements once,
//     on first use; until then a request pays a prepare round trip and a
//     plan. At 10,000 tenants (312 per connection of a pool of 32) that is
//     about the first minute after start (figures in docs/BENCHMARKS.md).
//   - Memory: each PostgreSQL backend keeps the prepared statements and
//     relation cache entries of the tenants it has served, so its memory
//     grows with its share of tenants (and, through overflow, a little
//     beyond). database.conn_max_lifetime (30 minutes) recycles connections
//     and so bounds that growth; the statement cache bounds the prepared
//     statements. A recycled connection starts cold, so the groups'
//     lifetimes are staggered over 1 to 1.5 times the setting: one
//     connection at a time re-warms, never the whole pool at once. Keep
//     database.max_idle_conns equal to max_open_conns (the default): a
//     group left without an idle connection closes its connection after
//     each use and so is always cold.
//   - Group size: more groups mean smaller shares and less memory per
//     backend but longer queues; fewer groups the opposite. One group
//     (pool_groups: 1) is the old behaviour: every connection serves every
//     tenant.
//   - SQLite is always one connection, one group: routing changes nothing
//     there.
//
// # Bad days
//
// Every error that leaves the pool is classified (Classify): GORM passes
// each error it records through the dialector's Translate, which Open
// wraps, and a callback after every other one classifies each statement's
// error knowing whether the statement was a tenant's. A caller therefore
// sees a *fault.Error of kind Unavailable (the server is down, restarting,
// refusing or out of connections), Timeout (the request's deadline, a
// statement or lock timeout, SQLite's busy_timeout), Contention (deadlock,
// serialization failure), Gone (a tenant's table or schema vanished under
// it: the tenant was removed) or Canceled, with the driver's error kept as
// the cause for the log; the HTTP side maps kinds to statuses (503, 404).
//
// Nothing waits unbounded. Each request's context carries
// server.request_timeout to every statement and to the wait for a pooled
// connection; database.statement_timeout and database.lock_timeout are
// sent to PostgreSQL at connect time as backstops; on SQLite,
// database.lock_timeout is the busy_timeout, kept below the request
// deadline because the driver's wait for another writer does not watch
// the context. A readiness check pings within ReadyTimeout.
//
// An outage is logged as a change of state, not per statement: the GORM
// logger hands every outcome to a Health, which logs one line when the
// database becomes unavailable, a count every HealthReportEvery while it
// stays so, and one line when it answers again. The same logger renders
// no value into any statement it logs, at any level: placeholders only.
// It logs a statement slower than LogSlowerThan (log.slow_statement) at
// WARN, with the statement's context, so the line carries its request's id
// and tenant, and counts every statement in the Usage of its context
// (NewUsageContext): a request's database time and statement count.
//
// At start-up, Open retries a PostgreSQL server that does not answer, with
// backoff, for database.connect_timeout, and then fails with a message
// naming the server's address and the time waited.
package database
