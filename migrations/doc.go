// Package migrations holds tenantry's versioned schema changes and applies
// them.
//
// There are two sets. Shared migrations build the catalog in the shared
// schema and are applied once; tenant migrations build a tenant's tables and
// are applied to every tenant. Each migration is an embedded SQL file per
// database dialect, named NNNN_name.<dialect>.sql, whose table and index
// names are written as {{table "users"}} and {{index "users_email_key"}} so
// one file serves every tenant under every tenancy strategy.
//
// Every schema records what it has applied (version, name, checksum,
// applied_at) in its own schema_migrations table. Apply runs inside the
// caller's transaction, so a failing migration leaves the schema exactly as
// it was; the caller is also responsible for the advisory lock that keeps two
// runners apart. A recorded checksum that differs from the code's is
// ErrChecksum: an applied migration is never silently re-run or edited.
//
// The tenant migrations are SQL, not GORM's AutoMigrate, because
// AutoMigrate cannot name indexes per tenant under the prefix strategy;
// TestBaselineMatchesAutoMigrate keeps every tenant table's columns
// identical to what AutoMigrate builds from its model (models.User,
// models.IdempotencyKey).
//
// The embedded sets are the code's; Load builds a set from other files and
// Set.Append extends one, which is how tests put tenants behind or make a
// migration fail (tenants.WithMigrations hands such a set to the catalog).
package migrations
