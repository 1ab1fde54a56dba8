package doctor

import (
	"strings"

	"tenantry/migrations"
	"tenantry/tenants"
)

// place is where one tenant's (or the reference's) relations live: a
// PostgreSQL schema ("" on SQLite) and a name prefix ("" under the schema
// strategy). It turns logical names (users, users_email_key) into the
// physical ones and back, so a tenant can be compared with the reference
// whatever either is called.
type place struct {
	schema string
	prefix string
}

// tenantPlace is where the layout keeps the tenant of schema. It agrees
// with tenants.Layout.Table, which is the authority (TestPlaceMatchesLayout).
func tenantPlace(l tenants.Layout, schema string) place {
	switch {
	case l.Strategy == tenants.StrategySchema:
		return place{schema: schema}
	case l.Dialect == migrations.Postgres:
		return place{schema: tenants.PrefixSchema, prefix: schema + "_"}
	default:
		return place{prefix: schema + "_"}
	}
}

func (p place) key(logical string) relKey { return relKey{p.schema, p.prefix + logical} }

// qualified is the physical name as an operator would type it, unquoted.
func (p place) qualified(logical string) string {
	if p.schema == "" {
		return p.prefix + logical
	}
	return p.schema + "." + p.prefix + logical
}

// storage names the whole of the place: the schema, or its tables.
func (p place) storage() string {
	if p.prefix == "" {
		return p.schema
	}
	return p.qualified("*")
}

// sqliteAutoIndex starts the names SQLite gives the indexes behind
// PRIMARY KEY and UNIQUE constraints: sqlite_autoindex_<table>_<n>.
const sqliteAutoIndex = "sqlite_autoindex_"

// primaryKey is the logical name every primary-key index is compared
// under: PostgreSQL derives its name from the table's, and truncates it to
// 63 bytes for long prefixes, so the name itself proves nothing.
const primaryKey = "(primary key)"

// indexName is the logical name of an index of this place.
func (p place) indexName(x index) string {
	if x.Primary {
		return primaryKey
	}
	if rest, ok := strings.CutPrefix(x.Name, sqliteAutoIndex); ok {
		return sqliteAutoIndex + strings.TrimPrefix(rest, p.prefix)
	}
	return strings.TrimPrefix(x.Name, p.prefix)
}

// indexObject names an index of table in findings.
func (p place) indexObject(table, logical string) string {
	if logical == primaryKey {
		return p.qualified(table) + " " + primaryKey
	}
	if rest, ok := strings.CutPrefix(logical, sqliteAutoIndex); ok {
		return sqliteAutoIndex + p.prefix + rest
	}
	return p.qualified(logical)
}
