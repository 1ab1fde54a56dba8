// Package doctor audits a tenantry deployment: it compares what the
// database holds with what the catalog and the code say it should hold,
// and reports every difference as a Finding. `tenantry doctor` runs it.
//
// # What it checks
//
//   - catalog: the shared schema's migration records match the code's
//     shared migrations (versions, checksums); every tenant row has a
//     valid name, schema and status.
//   - storage: every catalog tenant has its schema (schema strategy) or
//     its prefixed tables (prefix strategy), and every table its version
//     should have. A table in a tenant's place that no migration makes is
//     a warning.
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
//   - orphans: no schema, and no prefixed table, that no catalog tenant
//     owns. Archived data of removed tenants (archived_*) is expected and
//     listed in Report.Archived instead.
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
//   - settings (PostgreSQL, warnings only): max_connections against
//     Instances × (database.max_open_conns + 1 LISTEN connection) +
//     superuser_reserved_connections + reserved_connections + 5 for
//     operators; max_files_per_process against ⌈tenants ÷ connection
//     groups⌉ × relations per tenant + 100 for the system catalogs (each
//     connection serves its group's share of the tenants, database.Router);
//     shared_buffers against the tenants' summed table and index sizes.
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
// remains. On SQLite it is a private in-memory database.
//
// # It only reads
//
// Everything else is read in one transaction: on PostgreSQL READ ONLY and
// REPEATABLE READ, so the server itself refuses any write and every check
// sees the same moment; on SQLite a read transaction. The rolled-back
// reference transaction above is the only one that issues DDL, and it
// touches nothing but temporary tables. The doctor never creates a
// missing catalog or record table (TestRunChangesNothing) and never fixes
// what it finds: every message says what an operator can do instead.
//
// # Severities and exit status
//
// The issue that asked for the doctor said "exit non-zero on any
// finding", so Report.ExitCode is ExitFindings (1) for any finding,
// warnings included, and ExitClean (0) only for none. `--warnings-ok`
// accepts warnings: exit 1 then means at least one error. ExitFailed (2)
// means the doctor could not audit at all (configuration, database
// unreachable, a query refused); Run then returns an error, not a report.
package doctor
