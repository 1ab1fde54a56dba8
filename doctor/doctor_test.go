package doctor_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"gorm.io/gorm"

	"tenantry/app"
	"tenantry/doctor"
	"tenantry/internal/testenv"
	"tenantry/migrations"
	"tenantry/tenants"
)

// layouts are the storage layouts the doctor must audit: both strategies
// on PostgreSQL, and the prefix strategy on SQLite.
var layouts = []struct{ name, driver, strategy string }{
	{"postgres-schema", "postgres", "schema"},
	{"postgres-prefix", "postgres", "prefix"},
	{"sqlite-prefix", "sqlite", "prefix"},
}

// deployment is a running app's database with two tenants, acme and
// globex, provisioned by the catalog as in production.
type deployment struct {
	t      *testing.T
	a      *app.App
	layout tenants.Layout
	driver string
}

func deploy(t *testing.T, driver, strategy string) *deployment {
	t.Helper()
	ctx := context.Background()
	cfg := testenv.Config(testenv.Database(t, driver))
	cfg.Tenancy.Strategy = strategy
	a, err := app.Open(ctx, cfg, testenv.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })
	for _, s := range []tenants.Spec{
		{Name: "acme", Hosts: []string{"acme.example", "www.acme.example:8080"}},
		{Name: "globex", Hosts: []string{"globex.example"}},
	} {
		if _, err := a.Catalog.Create(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	return &deployment{t: t, a: a, layout: a.Catalog.Layout(), driver: driver}
}

func (d *deployment) exec(q string, args ...any) {
	d.t.Helper()
	if err := d.a.DB.Exec(q, args...).Error; err != nil {
		d.t.Fatalf("%s: %v", q, err)
	}
}

func (d *deployment) pg() bool { return d.driver == "postgres" }

// table is tenant schema's logical table, qualified and unquoted.
func (d *deployment) table(schema, logical string) string { return d.layout.Table(schema, logical) }

// index is tenant schema's logical index, qualified and unquoted.
func (d *deployment) index(schema, logical string) string {
	name := d.layout.TenantTarget(schema).Index(logical)
	switch {
	case d.layout.Strategy == tenants.StrategySchema:
		return schema + "." + name
	case d.pg():
		return tenants.PrefixSchema + "." + name
	}
	return name
}

// storage is what the doctor calls the whole of a tenant's storage.
func (d *deployment) storage(schema string) string {
	if d.layout.Strategy == tenants.StrategySchema {
		return schema
	}
	return d.table(schema, "*")
}

func (d *deployment) tenantID(name string) uint64 {
	d.t.Helper()
	var id uint64
	if err := d.a.DB.Raw("SELECT id FROM "+migrations.Quote(d.layout.SharedTable("tenants"))+" WHERE name = ?", name).Scan(&id).Error; err != nil {
		d.t.Fatal(err)
	}
	return id
}

func (d *deployment) addHostRow(host, tenant string) {
	d.t.Helper()
	d.exec("INSERT INTO "+migrations.Quote(d.layout.SharedTable("tenant_hosts"))+" (host, tenant_id, created_at) VALUES (?, ?, ?)",
		host, d.tenantID(tenant), time.Now().UTC())
}

func (d *deployment) remove(name string, dropData bool) {
	d.t.Helper()
	if _, err := d.a.Catalog.Remove(context.Background(), name, dropData); err != nil {
		d.t.Fatal(err)
	}
}

func (d *deployment) deps() doctor.Deps {
	return doctor.Deps{DB: d.a.DB, Layout: d.layout, Migrations: d.a.Catalog.Migrations(), Pool: d.a.Config.Database}
}

// want is a finding without its message: what a test pins down.
type want struct {
	Check    string
	Severity doctor.Severity
	Tenant   string
	Object   string
}

func (w want) String() string {
	return fmt.Sprintf("%s/%s tenant=%q object=%q", w.Check, w.Severity, w.Tenant, w.Object)
}

func wants(fs []doctor.Finding) []want {
	out := make([]want, 0, len(fs))
	for _, f := range fs {
		out = append(out, want{f.Check, f.Severity, f.Tenant, f.Object})
	}
	return out
}

func sortWants(ws []want) []want {
	ws = slices.Clone(ws)
	slices.SortFunc(ws, func(x, y want) int { return strings.Compare(x.String(), y.String()) })
	return ws
}

// TestRun deploys two tenants on each layout, breaks the deployment one
// way per case, and checks that the doctor reports exactly that, against
// the tenant that was broken and never its neighbour.
func TestRun(t *testing.T) {
	nickname, err := migrations.Tenant().Append("nickname", map[migrations.Dialect]string{
		migrations.Postgres: `ALTER TABLE {{table "users"}} ADD COLUMN nickname text;`,
		migrations.SQLite:   `ALTER TABLE {{table "users"}} ADD COLUMN nickname text;`,
	})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		// pgOnly marks cases about PostgreSQL's own features.
		pgOnly  bool
		breakIt func(d *deployment)
		deps    func(d *deployment, deps *doctor.Deps)
		want    func(d *deployment) []want
		// archived is how many archive entries the report must list.
		archived int
	}{
		{
			name: "clean",
			want: func(*deployment) []want { return nil },
		},
		{
			// Removal keeps the data under an archive name: listed, not
			// found wanting, on every layout.
			name:     "tenant removed, data archived",
			breakIt:  func(d *deployment) { d.remove("acme", false) },
			want:     func(*deployment) []want { return nil },
			archived: 1,
		},
		{
			name:    "tenant removed with its data",
			breakIt: func(d *deployment) { d.remove("acme", true) },
			want:    func(*deployment) []want { return nil },
		},
		{
			name: "storage dropped",
			breakIt: func(d *deployment) {
				if d.layout.Strategy == tenants.StrategySchema {
					d.exec(`DROP SCHEMA "acme" CASCADE`)
					return
				}
				for _, table := range migrations.Tenant().Tables() {
					d.exec("DROP TABLE " + migrations.Quote(d.table("acme", table)))
				}
			},
			want: func(d *deployment) []want {
				return []want{{doctor.CheckStorage, doctor.Error, "acme", d.storage("acme")}}
			},
		},
		{
			name:    "table dropped",
			breakIt: func(d *deployment) { d.exec("DROP TABLE " + migrations.Quote(d.table("acme", "users"))) },
			want: func(d *deployment) []want {
				return []want{{doctor.CheckStorage, doctor.Error, "acme", d.table("acme", "users")}}
			},
		},
		{
			name: "column dropped",
			breakIt: func(d *deployment) {
				d.exec("ALTER TABLE " + migrations.Quote(d.table("acme", "users")) + " DROP COLUMN name")
			},
			want: func(d *deployment) []want {
				return []want{{doctor.CheckColumns, doctor.Error, "acme", d.table("acme", "users") + ".name"}}
			},
		},
		{
			name:   "column changed",
			pgOnly: true, // SQLite cannot alter a column
			breakIt: func(d *deployment) {
				d.exec("ALTER TABLE " + migrations.Quote(d.table("acme", "users")) + " ALTER COLUMN name DROP NOT NULL")
			},
			want: func(d *deployment) []want {
				return []want{{doctor.CheckColumns, doctor.Error, "acme", d.table("acme", "users") + ".name"}}
			},
		},
		{
			name: "column added",
			breakIt: func(d *deployment) {
				d.exec("ALTER TABLE " + migrations.Quote(d.table("globex", "users")) + " ADD COLUMN note text")
			},
			want: func(d *deployment) []want {
				return []want{{doctor.CheckColumns, doctor.Warning, "globex", d.table("globex", "users") + ".note"}}
			},
		},
		{
			name:    "index dropped",
			breakIt: func(d *deployment) { d.exec("DROP INDEX " + migrations.Quote(d.index("acme", "users_email_key"))) },
			want: func(d *deployment) []want {
				return []want{{doctor.CheckIndexes, doctor.Error, "acme", d.index("acme", "users_email_key")}}
			},
		},
		{
			name: "checksum edited",
			breakIt: func(d *deployment) {
				d.exec("UPDATE " + migrations.Quote(d.table("acme", "schema_migrations")) + " SET checksum = 'edited' WHERE version = 1")
			},
			want: func(d *deployment) []want {
				return []want{{doctor.CheckMigrations, doctor.Error, "acme", d.table("acme", "schema_migrations")}}
			},
		},
		{
			name: "record deleted",
			breakIt: func(d *deployment) {
				d.exec("DELETE FROM "+migrations.Quote(d.table("acme", "schema_migrations"))+" WHERE version = ?",
					d.a.Catalog.Migrations().Latest())
			},
			want: func(d *deployment) []want {
				return []want{{doctor.CheckMigrations, doctor.Error, "acme", d.table("acme", "schema_migrations")}}
			},
		},
		{
			name: "behind the code",
			deps: func(_ *deployment, deps *doctor.Deps) { deps.Migrations = nickname },
			want: func(d *deployment) []want {
				return []want{
					{doctor.CheckMigrations, doctor.Error, "acme", d.table("acme", "schema_migrations")},
					{doctor.CheckMigrations, doctor.Error, "globex", d.table("globex", "schema_migrations")},
				}
			},
		},
		{
			name: "orphan",
			breakIt: func(d *deployment) {
				if d.layout.Strategy == tenants.StrategySchema {
					d.exec(`CREATE SCHEMA "ghost"`)
				}
				d.exec("CREATE TABLE " + migrations.Quote(d.table("ghost", "users")) + " (id integer)")
			},
			want: func(d *deployment) []want {
				return []want{{doctor.CheckOrphans, doctor.Error, "", d.storageOrTable("ghost", "users")}}
			},
		},
		{
			name: "unexpected tenant table",
			breakIt: func(d *deployment) {
				d.exec("CREATE TABLE " + migrations.Quote(d.table("acme", "notes")) + " (id integer)")
			},
			want: func(d *deployment) []want {
				return []want{{doctor.CheckStorage, doctor.Warning, "acme", d.table("acme", "notes")}}
			},
		},
		{
			name: "tenant data in the shared schema",
			breakIt: func(d *deployment) {
				d.exec("CREATE TABLE " + migrations.Quote(d.layout.SharedTable("users")) + " (id integer, email text)")
			},
			want: func(d *deployment) []want {
				return []want{{doctor.CheckShared, doctor.Error, "", d.layout.SharedTable("users")}}
			},
		},
		{
			name:    "host not normalised",
			breakIt: func(d *deployment) { d.addHostRow("Shop.ACME.example", "acme") },
			want: func(*deployment) []want {
				return []want{{doctor.CheckHosts, doctor.Error, "acme", "Shop.ACME.example"}}
			},
		},
		{
			name:    "host duplicated across tenants",
			breakIt: func(d *deployment) { d.addHostRow("Globex.example", "acme") },
			want: func(*deployment) []want {
				return []want{
					{doctor.CheckHosts, doctor.Error, "acme", "Globex.example"},
					{doctor.CheckHosts, doctor.Error, "", "globex.example"},
				}
			},
		},
		{
			name: "host with a default port",
			breakIt: func(d *deployment) {
				d.addHostRow("shop.acme.example:80", "acme")
				d.addHostRow("shop.acme.example", "acme")
			},
			want: func(*deployment) []want {
				return []want{
					{doctor.CheckHosts, doctor.Error, "acme", "shop.acme.example:80"},
					{doctor.CheckHosts, doctor.Error, "acme", "shop.acme.example"},
				}
			},
		},
		{
			name:   "tenant storage granted to PUBLIC",
			pgOnly: true,
			breakIt: func(d *deployment) {
				if d.layout.Strategy == tenants.StrategySchema {
					d.exec(`GRANT USAGE ON SCHEMA "acme" TO PUBLIC`)
					return
				}
				d.exec("GRANT SELECT ON " + migrations.Quote(d.table("acme", "users")) + " TO PUBLIC")
			},
			want: func(d *deployment) []want {
				return []want{{doctor.CheckGrants, doctor.Error, "acme", d.storageOrTable("acme", "users")}}
			},
		},
		{
			name:   "column granted to PUBLIC",
			pgOnly: true,
			breakIt: func(d *deployment) {
				d.exec("GRANT SELECT (email) ON " + migrations.Quote(d.table("globex", "users")) + " TO PUBLIC")
			},
			want: func(d *deployment) []want {
				return []want{{doctor.CheckGrants, doctor.Error, "globex", d.table("globex", "users") + ".email"}}
			},
		},
		{
			name:    "catalog granted to PUBLIC",
			pgOnly:  true,
			breakIt: func(d *deployment) { d.exec("GRANT SELECT ON public.tenant_hosts TO PUBLIC") },
			want: func(*deployment) []want {
				return []want{{doctor.CheckGrants, doctor.Error, "", "public.tenant_hosts"}}
			},
		},
		{
			name:    "default privileges for PUBLIC",
			pgOnly:  true,
			breakIt: func(d *deployment) { d.exec("ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO PUBLIC") },
			want: func(d *deployment) []want {
				return []want{{doctor.CheckGrants, doctor.Warning, "", "default privileges of " + d.currentUser()}}
			},
		},
		{
			name:   "pools larger than max_connections",
			pgOnly: true,
			// The server is shared and must not be restarted: a pool
			// larger than its max_connections stands in for a small one.
			deps: func(d *deployment, deps *doctor.Deps) {
				deps.Pool.MaxOpenConns = d.setting("max_connections") + 1
			},
			want: func(*deployment) []want {
				return []want{{doctor.CheckSettings, doctor.Warning, "", "max_connections"}}
			},
		},
		{
			name:   "more instances than max_connections",
			pgOnly: true,
			deps: func(d *deployment, deps *doctor.Deps) {
				deps.Instances = d.setting("max_connections")/(deps.Pool.MaxOpenConns+1) + 1
			},
			want: func(*deployment) []want {
				return []want{{doctor.CheckSettings, doctor.Warning, "", "max_connections"}}
			},
		},
	}
	for _, lc := range layouts {
		t.Run(lc.name, func(t *testing.T) {
			t.Parallel()
			for _, tc := range cases {
				if tc.pgOnly && lc.driver != "postgres" {
					continue
				}
				t.Run(tc.name, func(t *testing.T) {
					d := deploy(t, lc.driver, lc.strategy)
					if tc.breakIt != nil {
						tc.breakIt(d)
					}
					deps := d.deps()
					if tc.deps != nil {
						tc.deps(d, &deps)
					}
					rep, err := doctor.Run(context.Background(), deps)
					if err != nil {
						t.Fatalf("Run: %v", err)
					}
					got, exp := sortWants(wants(rep.Findings)), sortWants(tc.want(d))
					if !slices.Equal(got, exp) {
						t.Fatalf("findings:\n got  %v\n want %v\nreport:\n%s", got, exp, dump(rep))
					}
					checkCounts(t, rep)
					if len(rep.Archived) != tc.archived {
						t.Errorf("archived %q, want %d entries", rep.Archived, tc.archived)
					}
				})
			}
		})
	}
}

// checkCounts checks the report's totals and exit codes against its
// findings.
func checkCounts(t *testing.T, rep doctor.Report) {
	t.Helper()
	var errs, warns int
	for _, f := range rep.Findings {
		if f.Severity == doctor.Error {
			errs++
		} else {
			warns++
		}
		if f.Message == "" {
			t.Errorf("finding %+v has no message", f)
		}
	}
	if rep.Errors != errs || rep.Warnings != warns {
		t.Errorf("report counts %d errors, %d warnings; findings hold %d, %d", rep.Errors, rep.Warnings, errs, warns)
	}
	wantStrict, wantLenient := doctor.ExitClean, doctor.ExitClean
	if errs+warns > 0 {
		wantStrict = doctor.ExitFindings
	}
	if errs > 0 {
		wantLenient = doctor.ExitFindings
	}
	if got := rep.ExitCode(false); got != wantStrict {
		t.Errorf("ExitCode(false) = %d, want %d", got, wantStrict)
	}
	if got := rep.ExitCode(true); got != wantLenient {
		t.Errorf("ExitCode(true) = %d, want %d", got, wantLenient)
	}
}

func dump(rep doctor.Report) string {
	var b strings.Builder
	for _, f := range rep.Findings {
		fmt.Fprintf(&b, "  %s %s %s %s: %s\n", f.Check, f.Severity, f.Tenant, f.Object, f.Message)
	}
	return b.String()
}

// storageOrTable is the schema under the schema strategy, and the prefixed
// table otherwise: what the doctor names for a whole orphan or a grant.
func (d *deployment) storageOrTable(schema, table string) string {
	if d.layout.Strategy == tenants.StrategySchema {
		return schema
	}
	return d.table(schema, table)
}

func (d *deployment) currentUser() string {
	d.t.Helper()
	var u string
	if err := d.a.DB.Raw("SELECT current_user").Scan(&u).Error; err != nil {
		d.t.Fatal(err)
	}
	return u
}

func (d *deployment) setting(name string) int {
	d.t.Helper()
	var v int
	if err := d.a.DB.Raw("SELECT setting::int FROM pg_settings WHERE name = ?", name).Scan(&v).Error; err != nil {
		d.t.Fatal(err)
	}
	return v
}

// TestRunChangesNothing runs the doctor on a fresh database, where the
// catalog is missing, and on a deployment, and checks that no object was
// created, changed or left behind: the reference is rolled back (or kept
// in memory) and nothing else writes.
func TestRunChangesNothing(t *testing.T) {
	for _, lc := range layouts {
		t.Run(lc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			cfg := testenv.Config(testenv.Database(t, lc.driver))
			cfg.Tenancy.Strategy = lc.strategy
			fresh, err := app.Open(ctx, cfg, testenv.Logger(t), app.ReadOnly())
			if err != nil {
				t.Fatal(err)
			}
			defer fresh.Close()
			deps := doctor.Deps{DB: fresh.DB, Layout: fresh.Catalog.Layout(), Pool: cfg.Database}
			before := objects(t, fresh.DB, lc.driver)
			rep, err := doctor.Run(ctx, deps)
			if err != nil {
				t.Fatal(err)
			}
			wantMissing := []want{{doctor.CheckCatalog, doctor.Error, "", fresh.Catalog.Layout().SharedTable("tenants")}}
			if got := wants(rep.Findings); !slices.Equal(got, wantMissing) {
				t.Fatalf("fresh database: findings %v, want %v", got, wantMissing)
			}
			for _, c := range rep.Checks[1:] {
				if c.Skipped == "" {
					t.Errorf("check %s ran without a catalog", c.Name)
				}
			}
			if after := objects(t, fresh.DB, lc.driver); !slices.Equal(before, after) {
				t.Fatalf("the doctor changed a fresh database:\n before %v\n after  %v", before, after)
			}

			d := deploy(t, lc.driver, lc.strategy)
			d.addHostRow("Shop.ACME.example", "acme") // a finding, so every check has work
			before = objects(t, d.a.DB, lc.driver)
			if _, err := doctor.Run(ctx, d.deps()); err != nil {
				t.Fatal(err)
			}
			if after := objects(t, d.a.DB, lc.driver); !slices.Equal(before, after) {
				t.Fatalf("the doctor changed the deployment:\n before %v\n after  %v", before, after)
			}
		})
	}
}

// objects lists every user object of the database with its ACL and, for
// tables, its row count, plus any reference relation the doctor may have
// left in any session, so that a created, dropped, granted or written
// object shows.
func objects(t *testing.T, db *gorm.DB, driver string) []string {
	t.Helper()
	var list []string
	var tables []string
	if driver == "postgres" {
		err := db.Raw(`SELECT n.nspname || ' ' || COALESCE(n.nspacl::text, '') FROM pg_namespace n
WHERE n.nspname NOT LIKE 'pg\_%' AND n.nspname <> 'information_schema'
UNION ALL
SELECT n.nspname || '.' || c.relname || ' ' || c.relkind::text || ' ' || COALESCE(c.relacl::text, '') FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE (n.nspname NOT LIKE 'pg\_%' AND n.nspname <> 'information_schema') OR c.relname LIKE 'doctor\_ref%'
UNION ALL
SELECT 'default acl ' || d.defaclacl::text FROM pg_default_acl d
ORDER BY 1`).Scan(&list).Error
		if err != nil {
			t.Fatal(err)
		}
		err = db.Raw(`SELECT quote_ident(table_schema) || '.' || quote_ident(table_name) FROM information_schema.tables
WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1`).Scan(&tables).Error
		if err != nil {
			t.Fatal(err)
		}
	} else {
		if err := db.Raw("SELECT type || ' ' || name || ' ' || COALESCE(sql, '') FROM sqlite_master ORDER BY name").Scan(&list).Error; err != nil {
			t.Fatal(err)
		}
		if err := db.Raw(`SELECT '"' || name || '"' FROM sqlite_master WHERE type = 'table' ORDER BY name`).Scan(&tables).Error; err != nil {
			t.Fatal(err)
		}
	}
	for _, table := range tables {
		var n int64
		if err := db.Raw("SELECT count(*) FROM " + table).Scan(&n).Error; err != nil {
			t.Fatal(err)
		}
		list = append(list, fmt.Sprintf("%s rows=%d", table, n))
	}
	return list
}
