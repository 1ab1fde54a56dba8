package doctor

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"gorm.io/gorm"

	"tenantry/tenants"
)

// grant is one privilege PUBLIC holds on a schema, relation or column.
type grant struct {
	Kind      string // "schema", "column", or the relkind of a relation
	Schema    string
	Name      string
	Col       string
	Privilege string
	Extension bool
}

// defaultGrant is one privilege ALTER DEFAULT PRIVILEGES gives PUBLIC on
// objects a role creates from now on.
type defaultGrant struct {
	Role      string
	Schema    string // "" for every schema
	ObjType   string // r tables, S sequences, n schemas
	Privilege string
}

// readGrants lists what PUBLIC may do, from the ACLs themselves
// (aclexplode, grantee 0 is PUBLIC) rather than has_*_privilege, which
// would also count what a role inherits and says nothing about defaults.
// A NULL ACL means the built-in default, which gives PUBLIC nothing on
// schemas, tables and sequences.
func readGrants(ctx context.Context, tx *gorm.DB) ([]grant, []defaultGrant, error) {
	q := tx.WithContext(ctx)
	var gs []grant
	ext := func(class, oid string) string {
		return `EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = '` + class + `'::regclass AND d.objid = ` + oid + ` AND d.deptype = 'e')`
	}
	err := q.Raw(`SELECT 'schema' AS kind, n.nspname AS schema, '' AS name, '' AS col, a.privilege_type AS privilege,
	` + ext("pg_namespace", "n.oid") + ` AS extension
FROM pg_namespace n, aclexplode(n.nspacl) a
WHERE a.grantee = 0 AND ` + postgresUser + `
UNION ALL
SELECT c.relkind::text, n.nspname, c.relname, '', a.privilege_type, ` + ext("pg_class", "c.oid") + `
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace, aclexplode(c.relacl) a
WHERE a.grantee = 0 AND c.relkind IN ('r', 'p', 'f', 'v', 'm', 'S') AND ` + postgresUser + `
UNION ALL
SELECT 'column', n.nspname, c.relname, t.attname, a.privilege_type, ` + ext("pg_class", "c.oid") + `
FROM pg_attribute t JOIN pg_class c ON c.oid = t.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace,
	aclexplode(t.attacl) a
WHERE a.grantee = 0 AND t.attnum > 0 AND NOT t.attisdropped AND ` + postgresUser + `
ORDER BY 2, 3, 4, 5`).Scan(&gs).Error
	if err != nil {
		return nil, nil, fmt.Errorf("read privileges: %w", err)
	}
	var ds []defaultGrant
	err = q.Raw(`SELECT pg_get_userbyid(d.defaclrole) AS role, COALESCE(n.nspname, '') AS schema,
	d.defaclobjtype::text AS obj_type, a.privilege_type AS privilege
FROM pg_default_acl d LEFT JOIN pg_namespace n ON n.oid = d.defaclnamespace
CROSS JOIN LATERAL aclexplode(d.defaclacl) a
WHERE a.grantee = 0 AND d.defaclobjtype IN ('r', 'S', 'n')
ORDER BY 1, 2, 3, 4`).Scan(&ds).Error
	if err != nil {
		return nil, nil, fmt.Errorf("read default privileges: %w", err)
	}
	return gs, ds, nil
}

// checkGrants reports every privilege PUBLIC holds on tenantry's objects:
// PUBLIC is every role on the server, present and future, so a grant to
// it reaches across every database boundary an operator draws with roles.
//
// tenantry itself grants nothing: `CREATE SCHEMA` and `CREATE TABLE` leave
// the ACL at its default, owner only. What can give PUBLIC a tenant's
// objects is a manual GRANT, or ALTER DEFAULT PRIVILEGES for the role
// tenantry runs as; the latter is reported as a warning because it
// exposes only objects created later.
//
// It looks at one database, db, and its tenants: PUBLIC is server-wide,
// but a grant is an object's, and each database has its own.
func (a *audit) checkGrants(db *placement) {
	l := a.d.Layout
	o := newOwners(db.tenants, a.set)
	type target struct{ kind, schema, name, col string }
	privs := map[target][]string{}
	var order []target
	for _, g := range db.grants {
		if g.Extension {
			continue
		}
		t := target{g.Kind, g.Schema, g.Name, g.Col}
		if _, ok := privs[t]; !ok {
			order = append(order, t)
		}
		privs[t] = append(privs[t], g.Privilege)
	}
	for _, t := range order {
		ps := privs[t]
		list := strings.Join(ps, ", ")
		switch {
		case t.kind == "schema" && t.schema == tenants.SharedSchema:
			// USAGE on public is PostgreSQL's default and opens no table.
			if slices.Contains(ps, "CREATE") {
				beside := "beside the catalog"
				if !db.control {
					beside = "to database " + db.name
				}
				a.add(Finding{Check: CheckGrants, Severity: Warning, Object: t.schema,
					Message: fmt.Sprintf("PUBLIC may CREATE in the shared schema %s: any role on the server can add tables %s (PostgreSQL 15 revokes this in new databases; upgraded ones keep it); REVOKE CREATE ON SCHEMA %s FROM PUBLIC", t.schema, beside, t.schema)})
			}
		case t.kind == "schema":
			tenant := ""
			if l.Strategy == tenants.StrategySchema {
				tenant = o.bySchema[t.schema]
			}
			a.add(Finding{Check: CheckGrants, Severity: Error, Tenant: tenant, Object: t.schema,
				Message: fmt.Sprintf("PUBLIC has %s on schema %s: every role on the server can reach into it; REVOKE ALL ON SCHEMA %s FROM PUBLIC", list, t.schema, t.schema)})
		default:
			obj := t.schema + "." + t.name
			what := "relation"
			if t.kind == "column" {
				obj += "." + t.col
				what = "column"
			}
			a.add(Finding{Check: CheckGrants, Severity: Error, Tenant: o.of(l, relKey{t.schema, t.name}), Object: obj,
				Message: fmt.Sprintf("PUBLIC has %s on %s %s: every role on the server can use it, bypassing tenantry's scope; REVOKE ALL ON %s FROM PUBLIC", list, what, obj, t.schema+"."+t.name)})
		}
	}
	objType := map[string]string{"r": "tables", "S": "sequences", "n": "schemas"}
	for _, d := range db.defaults {
		where, in := "in every schema", ""
		if d.Schema != "" {
			where, in = "in schema "+d.Schema, " IN SCHEMA "+d.Schema
		}
		who := fmt.Sprintf("if tenantry runs as %s, tenants created from now on are exposed", d.Role)
		if d.Role == db.user {
			who = fmt.Sprintf("tenantry connects as %s, so tenants created from now on are exposed", d.Role)
		}
		a.add(Finding{Check: CheckGrants, Severity: Warning, Object: "default privileges of " + d.Role,
			Message: fmt.Sprintf("ALTER DEFAULT PRIVILEGES gives PUBLIC %s on new %s that role %s creates %s: %s; ALTER DEFAULT PRIVILEGES FOR ROLE %s%s REVOKE %s ON %s FROM PUBLIC",
				d.Privilege, objType[d.ObjType], d.Role, where, who, d.Role, in, d.Privilege, strings.ToUpper(objType[d.ObjType]))})
	}
}
