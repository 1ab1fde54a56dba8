package doctor

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"tenantry/migrations"
	"tenantry/tenants"
)

// catalogTables are the only tables the shared schema may hold.
var catalogTables = map[string]bool{"tenants": true, "tenant_hosts": true, "schema_migrations": true}

// owners tells which catalog tenant a physical name belongs to.
type owners struct {
	bySchema map[string]string // tenant schema → tenant name
	tables   map[string]bool   // every logical tenant table of the code
	sorted   []string          // the same, sorted, for a stable choice
}

func newOwners(ts []catTenant, set migrations.Set) owners {
	o := owners{bySchema: map[string]string{}, tables: map[string]bool{}}
	for _, t := range ts {
		o.bySchema[t.Schema] = t.Name
	}
	o.sorted = set.Tables()
	for _, table := range o.sorted {
		o.tables[table] = true
	}
	return o
}

// prefixed splits a prefixed name into the tenant whose schema prefixes
// it and the logical rest. Two tenants may prefix one name (schemas a and
// a_b both prefix a_b_users); the longer schema wins, as it is the only
// one whose tables can be named so.
func (o owners) prefixed(name string) (tenant, logical string, ok bool) {
	for i := len(name) - 1; i > 0; i-- {
		if name[i] != '_' {
			continue
		}
		if t, ok := o.bySchema[name[:i]]; ok {
			return t, name[i+1:], true
		}
	}
	return "", "", false
}

// orphanPrefix returns the schema a prefixed name would belong to when it
// ends in one of the code's logical tables, as every prefixed tenant
// table does.
func (o owners) orphanPrefix(name string) (string, bool) {
	for _, table := range o.sorted {
		if p, ok := strings.CutSuffix(name, "_"+table); ok && p != "" {
			return p, true
		}
	}
	return "", false
}

// of returns the tenant owning relation k under layout l, "" for none.
func (o owners) of(l tenants.Layout, k relKey) string {
	if l.Strategy == tenants.StrategySchema {
		return o.bySchema[k.schema]
	}
	if k.schema == tenantPlace(l, "").schema {
		t, _, _ := o.prefixed(k.name)
		return t
	}
	return ""
}

// checkUnowned looks at everything in the database that no catalog tenant
// owns: tables in the shared schema besides the catalog's, and schemas or
// prefixed tables of tenants that are not in the catalog. Archived data of
// removed tenants is listed in the report, not found wanting.
func (a *audit) checkUnowned(snap *snapshot) {
	l := a.d.Layout
	o := newOwners(snap.tenants, a.set)
	shared := ""
	if l.Dialect == migrations.Postgres {
		shared = tenants.SharedSchema
	}
	prefixHome, prefixed := "", l.Strategy == tenants.StrategyPrefix
	if prefixed {
		prefixHome = tenantPlace(l, "").schema
	}

	orphans := map[string]int{}
	for _, s := range slices.Sorted(maps.Keys(snap.inv.schemas)) {
		switch {
		case snap.inv.schemas[s], s == shared, prefixed && s == prefixHome:
		case isArchived(s):
			a.rep.Archived = append(a.rep.Archived, s)
		case !prefixed && o.bySchema[s] != "":
		default:
			orphans[s] = 0
		}
	}

	keys := slices.SortedFunc(maps.Keys(snap.inv.rels), func(x, y relKey) int {
		return strings.Compare(x.schema+"."+x.name, y.schema+"."+y.name)
	})
	for _, k := range keys {
		r := snap.inv.rels[k]
		if r.extension || (r.kind != kindTable && r.kind != kindView) {
			continue
		}
		if n, ok := orphans[k.schema]; ok {
			orphans[k.schema] = n + 1
			continue
		}
		if isArchived(k.schema) {
			continue
		}
		obj := k.name
		if k.schema != "" {
			obj = k.schema + "." + k.name
		}
		inShared := k.schema == shared
		if inShared && catalogTables[k.name] {
			continue
		}
		if tenantHome := (prefixed && k.schema == prefixHome) || (!prefixed && o.bySchema[k.schema] != ""); tenantHome {
			if a.tenantRelation(o, k, r, obj, prefixed) {
				continue
			}
		}
		switch p, ok := o.orphanPrefix(k.name); {
		case prefixed && (k.schema == prefixHome) && ok:
			a.add(Finding{Check: CheckOrphans, Severity: Error, Object: obj,
				Message: fmt.Sprintf("%s %s has the prefix of schema %q, which no tenant in the catalog has: data nobody serves, and a tenant created with that schema would collide with it; archive or drop it once you know whose it is", r.kind, obj, p)})
		case prefixed && k.schema == prefixHome && !inShared:
			a.add(Finding{Check: CheckOrphans, Severity: Error, Object: obj,
				Message: fmt.Sprintf("%s %s is among the tenants' tables but belongs to no tenant in the catalog", r.kind, obj)})
		case inShared:
			a.add(Finding{Check: CheckShared, Severity: Error, Object: obj,
				Message: fmt.Sprintf("%s %s is in the shared schema but is not part of the catalog (tenants, tenant_hosts, schema_migrations): tenant data must never live there, outside every tenant's scope", r.kind, obj)})
		}
	}

	for _, s := range slices.Sorted(maps.Keys(orphans)) {
		a.add(Finding{Check: CheckOrphans, Severity: Error, Object: s,
			Message: fmt.Sprintf("schema %s belongs to no tenant in the catalog (%s): data nobody serves, and a tenant created with this schema name would fail; archive or drop it once you know whose it is", s, tableCount(orphans[s]))})
	}
}

// tenantRelation handles a relation in a place where tenants' tables
// live: an archived table, or a table of a catalog tenant that is either
// one of the code's (fine) or not (a warning). It reports whether the
// relation was accounted for.
func (a *audit) tenantRelation(o owners, k relKey, r *relation, obj string, prefixed bool) bool {
	if prefixed && isArchived(k.name) {
		group := k.name
		for _, table := range o.sorted {
			if g, ok := strings.CutSuffix(k.name, "_"+table); ok {
				group = g + "_*"
				break
			}
		}
		a.rep.Archived = append(a.rep.Archived, qualify(k.schema, group))
		return true
	}
	tenant, logical := o.bySchema[k.schema], k.name
	if prefixed {
		var ok bool
		if tenant, logical, ok = o.prefixed(k.name); !ok {
			return false
		}
	}
	if !o.tables[logical] {
		a.add(Finding{Check: CheckStorage, Severity: Warning, Tenant: tenant, Object: obj,
			Message: fmt.Sprintf("%s %s is not made by any tenant migration: tenantry neither serves nor migrates it, and removing the tenant may leave it behind", r.kind, obj)})
	}
	return true
}

func qualify(schema, name string) string {
	if schema == "" {
		return name
	}
	return schema + "." + name
}

func tableCount(n int) string {
	if n == 1 {
		return "1 table or view"
	}
	return fmt.Sprintf("%d tables and views", n)
}
