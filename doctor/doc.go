// Package doctor audits a tenantry deployment: it compares what the
// database holds with what the catalog and the code say it should hold,
// and reports every difference as a Finding. `tenantry doctor` runs it.
//
// # What it checks
//
//   - catalog: the shared schema's migration records match the code's
//     shared migrations (versions, checksums); every tenant row has a
//     valid name, schema and status.
//   - placements: every tenant is placed on a configured database; a
//     tenant with moving_to set is a warning (a move running, when a
//     process holds its move lock, else interrupted: `tenantry tenants
//     move` again or RecoverMoves at start-up finishes it); writes
//     paused with no move recorded is an error; every configured database
//     can be reached, and no two are one PostgreSQL database.
//   - storage: every catalog tenant has its schema (schema strategy) or
//     its prefixed tables (prefix strategy) on its own database, and
//     every table its version should have. A table in a tenant's place
//     that no migration makes is a warning.
//   - migrations: each tenant's own schema_migrations records the code's
//     checksums, without gaps or versions the code does not know; the
//     version they show equals the catalog's schema_version and the
//     code's latest (a tenant behind the code is not served).
//   - columns and indexes: each tenant table has the columns (type, NOT
//     NULL, default) and indexes (uniqueness, method, columns) of the
//     reference (below). A missing or different one is an error; an extra
//     index, or an extra column that inserts can ignore, is a warning.
//   - shared: the shared schema holds only the catalog's tables (tenants,
//     tenant_hosts, schema_migrations), never tenant data.
//   - orphans: on each database, no schema and no prefixed table that no
//     tenant placed on that database owns. One named for a tenant placed
//     on another database is an orphan too, and the finding says so: it
//     is what an interrupted move leaves (or, a warning, the other side of
//     a move still unfinished). Archived data of removed or moved tenants
//     (archived_*) is expected and listed in Report.Archived instead.
//   - hosts: every stored host is exactly tenants.NormalizeHost's
//     spelling, no two normalise alike, each belongs to a tenant, and
//     every tenant has one (a tenant with none is a warning).
//   - grants (PostgreSQL): PUBLIC holds nothing on any tenant schema,
//     table, sequence or column, nor on the catalog's tables; CREATE on
//     the shared schema, and ALTER DEFAULT PRIVILEGES that would give
//     PUBLIC future tables, sequences or schemas, are warnings. tenantry
//     itself grants nothing: CREATE SCHEMA and CREATE TABLE leave the
//     ACL at the owner-only default, so a finding here was made by hand
//     or by default privileges.
//   - settings (PostgreSQL, warnings only), per server, which may hold
//     several of the configured databases: max_connections against
//     Instances × (databases on it × database.max_open_conns + 1 LISTEN
//     connection on the control database's server) +
//     superuser_reserved_connections + reserved_connections + 5 for
//     operators; max_files_per_process against ⌈tenants of its largest
//     database ÷ connection groups⌉ × relations per tenant + 100 for the
//     system catalogs (each connection serves one database and its group's
//     share of that database's tenants, database.Router);
//     shared_buffers against the summed table and index sizes of all its
//     databases' tenants.
//
// # Several databases
//
// With tenants placed on several databases (config databases), the
// catalog, hosts and shared checks look at the control database, which
// holds the catalog; storage, migrations, columns, indexes, orphans and
// grants look at each database for the tenants placed on it; settings at
// each server. Every finding about a database's contents or settings
// names it (Finding.Database), and Report.Databases lists each database
// with its tenants. A database other than the control one that cannot be
// reached is one placements error, and its tenants are not audited; the
// run goes on with the others. The control database unreachable means
// no audit at all (ExitFailed).
//
// # The reference
//
// Expected columns and indexes are not written down here: the code's
// tenant migrations, up to the version a tenant should be at, are applied
// to an empty scratch place and read back with the same catalog queries
// as the tenants, and names are compared without the tenant's schema or
// prefix. On PostgreSQL the scratch place is the doctor's own temporary
// schema (pg_temp), inside a transaction that is always rolled back: it
// needs only the TEMP privilege, no other session sees it, and nothing
// remains. On SQLite it is a private in-memory database. It is built on
// the control database only and serves every database: a placement on a
// server of another PostgreSQL major version is compared with the control
// server's spelling of types, defaults and index definitions.
//
// # It only reads
//
// Everything else is read in one transaction per database: on PostgreSQL
// READ ONLY and REPEATABLE READ, so the server itself refuses any write
// and every check of a database sees one moment; on SQLite a read
// transaction. The catalog is read in the control database's transaction,
// so a deployment on one database is seen at one moment; the other
// databases are read just after it, and a tenant created, removed or
// moved on one of them in between may show as an orphan or a missing
// schema that the next run no longer reports. The rolled-back reference
// transaction above is the only one that issues DDL, and it touches
// nothing but temporary tables. The doctor never creates a
// missing catalog or record table (TestRunChangesNothing) and never fixes
// what it finds: every message says what an operator can do instead.
//
// # Severities and exit status
//
// The issue that asked for the doctor said "exit non-zero on any
// finding", so Report.ExitCode is ExitFindings (1) for any finding,
// warnings included, and ExitClean (0) only for none. `--warnings-ok`
// accepts warnings: exit 1 then means at least one error. ExitFailed (2)
// means the doctor could not audit at all (configuration, the control
// database unreachable, a query refused); Run then returns an error, not a
// report.
package doctor
