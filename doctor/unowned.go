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

// checkUnowned looks at everything on database db that no tenant placed
// there owns: tables in the shared schema besides the catalog's (on the
// control database; every table there on the others, which hold no
// catalog), and schemas or prefixed tables of tenants that are not placed
// on db. A schema of a tenant placed on another database is an orphan
// too, and says so: it is what an interrupted move leaves, or (a warning)
// the other side of a move still unfinished. Archived data of removed or
// moved tenants is listed in the report, not found wanting.
func (a *audit) checkUnowned(snap *snapshot, db *placement) {
	l := a.d.Layout
	o := newOwners(db.tenants, a.set)
	shared := ""
	if l.Dialect == migrations.Postgres {
		shared = tenants.SharedSchema
	}
	prefixHome, prefixed := "", l.Strategy == tenants.StrategyPrefix
	if prefixed {
		prefixHome = tenantPlace(l, "").schema
	}

	orphans := map[string]int{}
	for _, s := range slices.Sorted(maps.Keys(db.inv.schemas)) {
		switch {
		case db.inv.schemas[s], s == shared, prefixed && s == prefixHome:
		case isArchived(s):
			a.rep.Archived = append(a.rep.Archived, archived(db, s))
		case !prefixed && o.bySchema[s] != "":
		default:
			orphans[s] = 0
		}
	}

	keys := slices.SortedFunc(maps.Keys(db.inv.rels), func(x, y relKey) int {
		return strings.Compare(x.schema+"."+x.name, y.schema+"."+y.name)
	})
	for _, k := range keys {
		r := db.inv.rels[k]
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
		if inShared && catalogTables[k.name] && db.control {
			continue
		}
		if tenantHome := (prefixed && k.schema == prefixHome) || (!prefixed && o.bySchema[k.schema] != ""); tenantHome {
			if a.tenantRelation(db, o, k, r, obj, prefixed) {
				continue
			}
		}
		switch p, ok := o.orphanPrefix(k.name); {
		case prefixed && (k.schema == prefixHome) && ok:
			f := Finding{Check: CheckOrphans, Severity: Error, Object: obj,
				Message: fmt.Sprintf("%s %s has the prefix of schema %q, which no tenant in the catalog has: data nobody serves, and a tenant created with that schema would collide with it; archive or drop it once you know whose it is", r.kind, obj, p)}
			if sev, why, ok := elsewhere(snap, db, p); ok {
				f.Severity = sev
				f.Message = fmt.Sprintf("%s %s has the prefix of schema %q, which no tenant placed on database %s has: %s", r.kind, obj, p, db.name, why)
			}
			a.add(f)
		case prefixed && k.schema == prefixHome && !inShared:
			a.add(Finding{Check: CheckOrphans, Severity: Error, Object: obj,
				Message: fmt.Sprintf("%s %s is among the tenants' tables but belongs to no tenant in the catalog", r.kind, obj)})
		case inShared && !db.control:
			a.add(Finding{Check: CheckShared, Severity: Error, Object: obj,
				Message: fmt.Sprintf("%s %s is in the shared schema of database %s, which holds no catalog (that is on %s): tenantry keeps nothing there, and tenant data must never live outside its tenant's schema; if it is an old catalog or another application's, move it off this database",
					r.kind, obj, db.name, snap.placements[0].name)})
		case inShared:
			a.add(Finding{Check: CheckShared, Severity: Error, Object: obj,
				Message: fmt.Sprintf("%s %s is in the shared schema but is not part of the catalog (tenants, tenant_hosts, schema_migrations): tenant data must never live there, outside every tenant's scope", r.kind, obj)})
		}
	}

	for _, s := range slices.Sorted(maps.Keys(orphans)) {
		f := Finding{Check: CheckOrphans, Severity: Error, Object: s,
			Message: fmt.Sprintf("schema %s%s belongs to no tenant in the catalog (%s): data nobody serves, and a tenant created with this schema name would fail; archive or drop it once you know whose it is", s, onDatabase(db), tableCount(orphans[s]))}
		if sev, why, ok := elsewhere(snap, db, s); ok {
			f.Severity = sev
			f.Message = fmt.Sprintf("schema %s on database %s belongs to no tenant placed there (%s): %s", s, db.name, tableCount(orphans[s]), why)
		}
		a.add(f)
	}
}

// elsewhere explains an orphan on db named for the schema of a tenant
// placed on another database. While that tenant's move to or from db is
// unfinished (moving_to names db) the orphan is the move's other side, a
// warning: the placements check reports the move. Otherwise it is what an
// interrupted move leaves behind, and the tenant is served from its own
// database, so this copy is nobody's.
func elsewhere(snap *snapshot, db *placement, schema string) (Severity, string, bool) {
	for _, t := range snap.tenants {
		if t.Schema != schema {
			continue
		}
		home := snap.databaseName(t.Database)
		if snap.placement(t.Database) == nil {
			return Error, fmt.Sprintf("tenant %s has this name but is placed on database %s, which is not configured (see its placements finding): if %s names this database wrongly, correct the tenant's row; otherwise this is what an interrupted move leaves", t.Name, home, home), true
		}
		if t.MovingTo == db.name {
			return Warning, fmt.Sprintf("it is the other side of tenant %s's unfinished move between databases %s and %s (the copy before the switch, the source until it is retired); see the tenant's placements finding", t.Name, home, db.name), true
		}
		return Error, fmt.Sprintf("tenant %s, placed on database %s, has this name: this is what an interrupted move leaves (a copy not dropped before the switch, or a source not retired after it). The tenant is served from %s only; check that its data is there, then archive or drop this one", t.Name, home, home), true
	}
	return "", "", false
}

// archived names archived data for Report.Archived: as it is on the
// control database, with the database's name on another.
func archived(db *placement, name string) string {
	if db.control {
		return name
	}
	return name + " on database " + db.name
}

// tenantRelation handles a relation in a place where tenants' tables
// live: an archived table, or a table of a catalog tenant that is either
// one of the code's (fine) or not (a warning). It reports whether the
// relation was accounted for.
func (a *audit) tenantRelation(db *placement, o owners, k relKey, r *relation, obj string, prefixed bool) bool {
	if prefixed && isArchived(k.name) {
		group := k.name
		for _, table := range o.sorted {
			if g, ok := strings.CutSuffix(k.name, "_"+table); ok {
				group = g + "_*"
				break
			}
		}
		a.rep.Archived = append(a.rep.Archived, archived(db, qualify(k.schema, group)))
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
