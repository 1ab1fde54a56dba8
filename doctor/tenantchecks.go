package doctor

import (
	"fmt"
	"slices"
	"strings"

	"tenantry/migrations"
	"tenantry/tenants"
)

// checkCatalog checks the shared schema's migration records and that every
// catalog row could have been written by tenantry.
func (a *audit) checkCatalog(snap *snapshot) {
	l := a.d.Layout
	table := l.SharedTable("schema_migrations")
	shared := migrations.Shared()
	if !snap.sharedRecorded {
		a.add(Finding{Check: CheckCatalog, Severity: Error, Object: table,
			Message: "the shared schema has a catalog but no migration records, so no tenantry knows what it holds; restore the table or rebuild the catalog"})
	} else {
		for _, msg := range recordProblems(shared, snap.shared, l.Dialect) {
			a.add(Finding{Check: CheckCatalog, Severity: Error, Object: table, Message: msg})
		}
		if v := recordedVersion(snap.shared); v < shared.Latest() {
			a.add(Finding{Check: CheckCatalog, Severity: Error, Object: table,
				Message: fmt.Sprintf("the shared schema is at version %d, the code needs %d; run `tenantry migrate`", v, shared.Latest())})
		}
	}
	for _, t := range snap.tenants {
		if err := tenants.ValidateName(t.Name); err != nil {
			a.add(Finding{Check: CheckCatalog, Severity: Error, Tenant: t.Name, Object: t.Name,
				Message: fmt.Sprintf("tenant name breaks tenantry's rules (%v): it was not written by tenantry", err)})
		}
		if err := l.ValidateSchema(t.Schema); err != nil {
			a.add(Finding{Check: CheckCatalog, Severity: Error, Tenant: t.Name, Object: t.Schema,
				Message: fmt.Sprintf("schema name breaks tenantry's rules (%v): it could name a table no tenant should reach", err)})
		}
		if t.Status != string(tenants.StatusActive) && t.Status != string(tenants.StatusSuspended) {
			a.add(Finding{Check: CheckCatalog, Severity: Error, Tenant: t.Name, Object: t.Name,
				Message: fmt.Sprintf("status %q is neither active nor suspended", t.Status)})
		}
	}
}

// recordProblems lists what is wrong with recs against set: versions the
// code does not know, checksums that differ, versions skipped.
func recordProblems(set migrations.Set, recs []record, d migrations.Dialect) []string {
	var out []string
	byVersion := map[int]migrations.Migration{}
	for _, m := range set {
		byVersion[m.Version] = m
	}
	have := map[int]bool{}
	for _, r := range recs {
		have[r.Version] = true
		m, ok := byVersion[r.Version]
		switch {
		case !ok:
			out = append(out, fmt.Sprintf("version %d (%s) is recorded but unknown to this binary: the database was migrated by a newer tenantry", r.Version, r.Name))
		case r.Checksum != m.Checksum(d):
			out = append(out, fmt.Sprintf("%04d_%s was applied with checksum %.12s, the code has %.12s: the migration changed after it was applied, so this schema may differ from a new one",
				m.Version, m.Name, r.Checksum, m.Checksum(d)))
		}
	}
	for v := 1; v < recordedVersion(recs); v++ {
		if m, ok := byVersion[v]; ok && !have[v] {
			out = append(out, fmt.Sprintf("%04d_%s is not recorded though later versions are", v, m.Name))
		}
	}
	return out
}

// checkTenants checks each catalog tenant placed on db: its storage
// exists there, its records agree with the catalog and the code, and its
// tables have the reference's columns and indexes.
func (a *audit) checkTenants(db *placement, refs map[int]*reference) {
	l := a.d.Layout
	latest := a.set.Latest()
	allTables := a.set.Tables()
	for _, t := range db.tenants {
		p := tenantPlace(l, t.Schema)
		if !a.hasStorage(db, p, allTables) {
			what := fmt.Sprintf("schema %s does not exist", t.Schema)
			if p.prefix != "" {
				what = fmt.Sprintf("none of its tables (%s) exists", p.storage())
			}
			a.add(Finding{Check: CheckStorage, Severity: Error, Tenant: t.Name, Object: p.storage(),
				Message: what + onDatabase(db) + ": the catalog lists the tenant, so its hosts resolve, and every request for it fails"})
			continue
		}
		recs, readable := db.records[t.Schema]
		recTable := p.qualified("schema_migrations")
		if !readable && db.inv.table(p.key("schema_migrations")) != nil {
			a.add(Finding{Check: CheckMigrations, Severity: Error, Tenant: t.Name, Object: recTable,
				Message: "the migration records cannot be read (version, name or checksum column missing), so nothing can tell what this schema holds"})
		}
		for _, msg := range recordProblems(a.set, recs, l.Dialect) {
			a.add(Finding{Check: CheckMigrations, Severity: Error, Tenant: t.Name, Object: recTable, Message: msg})
		}
		switch rec := recordedVersion(recs); {
		case rec != t.SchemaVersion:
			a.add(Finding{Check: CheckMigrations, Severity: Error, Tenant: t.Name, Object: recTable,
				Message: fmt.Sprintf("the catalog says version %d but the tenant's own records show %d: one of them is wrong, and `tenantry migrate` trusts the records", t.SchemaVersion, rec)})
		case rec < latest:
			a.add(Finding{Check: CheckMigrations, Severity: Error, Tenant: t.Name, Object: recTable,
				Message: fmt.Sprintf("behind the code: at version %d, the code needs %d; the service answers 503 for this tenant until `tenantry migrate` brings it up", rec, latest)})
		}
		if ref := refs[expectedVersion(t, recs, latest)]; ref != nil {
			a.compareTenant(db, t, p, ref)
		}
	}
}

// hasStorage reports whether anything of the tenant's exists: its schema,
// or under the prefix strategy any of its tables.
func (a *audit) hasStorage(db *placement, p place, tables []string) bool {
	if p.prefix == "" {
		_, ok := db.inv.schemas[p.schema]
		return ok
	}
	for _, table := range tables {
		if db.inv.rels[p.key(table)] != nil {
			return true
		}
	}
	return false
}

// compareTenant compares each of the reference's tables with the tenant's.
func (a *audit) compareTenant(db *placement, t catTenant, p place, ref *reference) {
	for _, table := range ref.tables() {
		want := ref.inv.rels[ref.place.key(table)]
		got := db.inv.rels[p.key(table)]
		obj := p.qualified(table)
		switch {
		case got == nil:
			a.add(Finding{Check: CheckStorage, Severity: Error, Tenant: t.Name, Object: obj,
				Message: fmt.Sprintf("%s %s is missing%s (version %d has it): requests that use it fail", want.kind, obj, onDatabase(db), ref.version)})
			continue
		case got.kind != want.kind:
			a.add(Finding{Check: CheckStorage, Severity: Error, Tenant: t.Name, Object: obj,
				Message: fmt.Sprintf("%s is a %s, version %d makes it a %s", obj, got.kind, ref.version, want.kind)})
			continue
		}
		a.compareColumns(t, obj, got, want)
		a.compareIndexes(t, p, table, got, ref, want)
	}
}

func (a *audit) compareColumns(t catTenant, obj string, got, want *relation) {
	have := map[string]column{}
	for _, c := range got.columns {
		have[c.Name] = c
	}
	expected := map[string]bool{}
	for _, w := range want.columns {
		expected[w.Name] = true
		g, ok := have[w.Name]
		switch {
		case !ok:
			a.add(Finding{Check: CheckColumns, Severity: Error, Tenant: t.Name, Object: obj + "." + w.Name,
				Message: fmt.Sprintf("column %s (%s) is missing: statements that name it fail", w.Name, w.describe())})
		case g.describe() != w.describe():
			a.add(Finding{Check: CheckColumns, Severity: Error, Tenant: t.Name, Object: obj + "." + w.Name,
				Message: fmt.Sprintf("column %s is %s, the migrations make it %s", w.Name, g.describe(), w.describe())})
		}
	}
	for _, g := range got.columns {
		if expected[g.Name] {
			continue
		}
		f := Finding{Check: CheckColumns, Severity: Warning, Tenant: t.Name, Object: obj + "." + g.Name,
			Message: fmt.Sprintf("column %s (%s) is not made by any migration", g.Name, g.describe())}
		if g.NotNull && g.Default == "" && !g.PK {
			f.Severity = Error
			f.Message += ", and as NOT NULL without a default it makes every insert fail"
		}
		a.add(f)
	}
}

func (a *audit) compareIndexes(t catTenant, p place, table string, got *relation, ref *reference, want *relation) {
	wantBy := map[string]index{}
	for _, x := range want.indexes {
		wantBy[ref.place.indexName(x)] = x
	}
	gotBy := map[string]index{}
	for _, x := range got.indexes {
		gotBy[p.indexName(x)] = x
	}
	names := func(m map[string]index) []string {
		out := make([]string, 0, len(m))
		for n := range m {
			out = append(out, n)
		}
		slices.Sort(out)
		return out
	}
	for _, n := range names(wantBy) {
		w := wantBy[n]
		g, ok := gotBy[n]
		obj := p.indexObject(table, n)
		switch {
		case !ok:
			a.add(Finding{Check: CheckIndexes, Severity: Error, Tenant: t.Name, Object: obj,
				Message: fmt.Sprintf("index %s (%s) is missing: %s", obj, w.describe(), missingIndexCost(w))})
		case g.describe() != w.describe():
			a.add(Finding{Check: CheckIndexes, Severity: Error, Tenant: t.Name, Object: obj,
				Message: fmt.Sprintf("index %s is %s, the migrations make it %s", obj, g.describe(), w.describe())})
		}
	}
	for _, n := range names(gotBy) {
		if _, ok := wantBy[n]; ok {
			continue
		}
		g := gotBy[n]
		a.add(Finding{Check: CheckIndexes, Severity: Warning, Tenant: t.Name, Object: g.Name,
			Message: fmt.Sprintf("index %s (%s) is not made by any migration; it costs every write and may break a later migration that creates one of that name", g.Name, g.describe())})
	}
}

func missingIndexCost(w index) string {
	if w.Unique || w.Primary {
		return "the uniqueness it enforces is not enforced, and lookups scan the table"
	}
	return "lookups that use it scan the table"
}

// onDatabase names db in a message when the deployment has more than one
// database; with one, every finding is about it.
func onDatabase(db *placement) string {
	if db.control && db.alone {
		return ""
	}
	return " on database " + db.name
}

// isArchived reports names tenantry gives the data of removed tenants.
func isArchived(name string) bool { return strings.HasPrefix(name, "archived_") }
