package tenants

import (
	"fmt"

	"tenantry/migrations"
)

// Strategy is how tenants' tables are kept apart.
type Strategy string

// Strategies.
const (
	// StrategySchema gives each tenant a PostgreSQL schema of its own.
	StrategySchema Strategy = "schema"
	// StrategyPrefix names each tenant's tables <schema>_<table>. On
	// PostgreSQL they live in PrefixSchema, never in the shared schema.
	StrategyPrefix Strategy = "prefix"
)

// PrefixSchema holds the prefixed tenant tables on PostgreSQL, so that no
// tenant data lives in the shared schema under either strategy.
const PrefixSchema = "tenantry_tenants"

// SharedSchema is the PostgreSQL schema of the catalog.
const SharedSchema = "public"

// longestTable is the longest logical table name a tenant has; a prefixed
// name must still fit PostgreSQL's 63-byte identifiers, which it would
// otherwise truncate silently and so could merge two tenants' tables.
const longestTable = len("schema_migrations")

// Layout spells table names for one database and strategy. It is the only
// place that decides where a tenant's data lives.
type Layout struct {
	Strategy Strategy
	Dialect  migrations.Dialect
}

// NewLayout checks that the strategy is possible on the dialect.
func NewLayout(strategy Strategy, dialect migrations.Dialect) (Layout, error) {
	switch {
	case strategy != StrategySchema && strategy != StrategyPrefix:
		return Layout{}, fmt.Errorf("tenancy strategy %q: want schema or prefix", strategy)
	case dialect != migrations.Postgres && dialect != migrations.SQLite:
		return Layout{}, fmt.Errorf("dialect %q: want postgres or sqlite", dialect)
	case strategy == StrategySchema && dialect != migrations.Postgres:
		return Layout{}, fmt.Errorf("tenancy strategy schema needs PostgreSQL")
	}
	return Layout{Strategy: strategy, Dialect: dialect}, nil
}

// ValidateSchema checks a schema name against the naming rules and against
// this layout's length limit.
func (l Layout) ValidateSchema(s string) error {
	if err := ValidateSchema(s); err != nil {
		return err
	}
	if l.Strategy == StrategyPrefix && len(s)+1+longestTable > 63 {
		return ErrInvalidName.With("schema",
			fmt.Sprintf("schema %q is too long for the prefix strategy (at most %d characters)", s, 63-1-longestTable), nil)
	}
	return nil
}

// Table is the unquoted, qualified name of a tenant's logical table.
func (l Layout) Table(schema, table string) string {
	switch {
	case l.Strategy == StrategySchema:
		return schema + "." + table
	case l.Dialect == migrations.Postgres:
		return PrefixSchema + "." + schema + "_" + table
	default:
		return schema + "_" + table
	}
}

// SharedTable is the unquoted, qualified name of a catalog table.
func (l Layout) SharedTable(table string) string {
	if l.Dialect == migrations.Postgres {
		return SharedSchema + "." + table
	}
	return table
}

// TenantTarget is where tenant migrations for schema are applied.
func (l Layout) TenantTarget(schema string) migrations.Target {
	return migrations.Target{
		Dialect: l.Dialect,
		Table:   func(t string) string { return l.Table(schema, t) },
		Index: func(i string) string {
			if l.Strategy == StrategySchema {
				return i
			}
			return schema + "_" + i
		},
	}
}

// SharedTarget is where shared migrations are applied.
func (l Layout) SharedTarget() migrations.Target {
	return migrations.Target{Dialect: l.Dialect, Table: l.SharedTable, Index: func(i string) string { return i }}
}
