package doctor

import (
	"slices"
	"strings"
	"testing"

	"tenantry/migrations"
	"tenantry/tenants"
)

// TestPlaceMatchesLayout keeps the doctor's idea of where a tenant's
// tables live equal to tenants.Layout's, the authority.
func TestPlaceMatchesLayout(t *testing.T) {
	for _, l := range []tenants.Layout{
		{Strategy: tenants.StrategySchema, Dialect: migrations.Postgres},
		{Strategy: tenants.StrategyPrefix, Dialect: migrations.Postgres},
		{Strategy: tenants.StrategyPrefix, Dialect: migrations.SQLite},
	} {
		for _, table := range []string{"users", "schema_migrations"} {
			if got, want := tenantPlace(l, "acme").qualified(table), l.Table("acme", table); got != want {
				t.Errorf("%s/%s: place names %s, layout %s", l.Strategy, l.Dialect, got, want)
			}
		}
		p := tenantPlace(l, "acme")
		idx := index{Name: l.TenantTarget("acme").Index("users_email_key")}
		if got := p.indexName(idx); got != "users_email_key" {
			t.Errorf("%s/%s: index %s reads as %s, want users_email_key", l.Strategy, l.Dialect, idx.Name, got)
		}
	}
}

func TestIndexName(t *testing.T) {
	tests := []struct {
		place place
		index index
		want  string
	}{
		{place{schema: "acme"}, index{Name: "users_email_key"}, "users_email_key"},
		{place{schema: "acme"}, index{Name: "users_pkey", Primary: true}, primaryKey},
		{place{prefix: "acme_"}, index{Name: "acme_users_email_key"}, "users_email_key"},
		// PostgreSQL truncates long derived names: a primary key is
		// recognised by what it is, not by its name.
		{place{prefix: "a_very_long_schema_name_"}, index{Name: "a_very_long_schema_name_schema_migrati_pkey", Primary: true}, primaryKey},
		{place{prefix: "acme_"}, index{Name: "sqlite_autoindex_acme_users_1"}, "sqlite_autoindex_users_1"},
	}
	for _, tt := range tests {
		if got := tt.place.indexName(tt.index); got != tt.want {
			t.Errorf("%+v.indexName(%s) = %s, want %s", tt.place, tt.index.Name, got, tt.want)
		}
	}
}

func TestOwnersPrefixed(t *testing.T) {
	o := newOwners([]catTenant{{Name: "a", Schema: "a"}, {Name: "ab", Schema: "a_b"}}, migrations.Tenant())
	tests := []struct {
		name, tenant, logical string
		ok                    bool
	}{
		{"a_users", "a", "users", true},
		{"a_b_users", "ab", "users", true}, // the longer schema wins
		{"a_b_schema_migrations", "ab", "schema_migrations", true},
		{"a_notes", "a", "notes", true},
		{"c_users", "", "", false},
		{"users", "", "", false},
	}
	for _, tt := range tests {
		tenant, logical, ok := o.prefixed(tt.name)
		if tenant != tt.tenant || logical != tt.logical || ok != tt.ok {
			t.Errorf("prefixed(%q) = %q, %q, %v; want %q, %q, %v", tt.name, tenant, logical, ok, tt.tenant, tt.logical, tt.ok)
		}
	}
}

func TestCheckHosts(t *testing.T) {
	ts := []catTenant{{ID: 1, Name: "acme"}, {ID: 2, Name: "globex"}, {ID: 3, Name: "idle"}}
	tests := []struct {
		name  string
		hosts []catHost
		want  []string // check/severity/tenant/object
	}{
		{"normalised", []catHost{{"acme.example", 1}, {"globex.example:8080", 2}, {"[::1]:5000", 3}}, nil},
		{"upper case", []catHost{{"ACME.example", 1}, {"globex.example", 2}, {"idle.example", 3}},
			[]string{"hosts/error/acme/ACME.example"}},
		{"trailing dot and default port", []catHost{{"acme.example.", 1}, {"globex.example:80", 2}, {"idle.example", 3}},
			[]string{"hosts/error/acme/acme.example.", "hosts/error/globex/globex.example:80"}},
		{"duplicate across tenants", []catHost{{"acme.example", 1}, {"Acme.example", 2}, {"idle.example", 3}},
			[]string{"hosts/error//acme.example", "hosts/error/globex/Acme.example"}},
		{"duplicate within a tenant", []catHost{{"acme.example", 1}, {"acme.example:80", 1}, {"g.example", 2}, {"idle.example", 3}},
			[]string{"hosts/error/acme/acme.example", "hosts/error/acme/acme.example:80"}},
		{"malformed", []catHost{{"acme example", 1}, {"g.example", 2}, {"idle.example", 3}},
			[]string{"hosts/error/acme/acme example"}},
		{"unknown tenant", []catHost{{"acme.example", 1}, {"g.example", 2}, {"idle.example", 3}, {"ghost.example", 9}},
			[]string{"hosts/error//ghost.example"}},
		{"tenant without host", []catHost{{"acme.example", 1}, {"g.example", 2}},
			[]string{"hosts/warning/idle/idle"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, f := range checkHosts(ts, tt.hosts) {
				got = append(got, strings.Join([]string{f.Check, string(f.Severity), f.Tenant, f.Object}, "/"))
				if f.Message == "" {
					t.Errorf("%+v has no message", f)
				}
			}
			slices.Sort(got)
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestCheckSettings(t *testing.T) {
	roomy := serverSettings{MaxConnections: 100, SuperuserReserved: 3, MaxFilesPerProcess: 1000, SharedBuffers: 128 << 20}
	base := demand{Instances: 1, MaxOpenConns: 16, Databases: []string{"main"}, Listeners: 1, Groups: 16,
		Tenants: 100, MostTenants: 100, RelationsPerTenant: 9, WorkingSet: 100 * 64 << 10}
	tests := []struct {
		name     string
		settings serverSettings
		demand   func(d demand) demand
		want     []string // objects warned about
		says     []string // in the messages, in order of want
	}{
		{name: "fits", settings: roomy, demand: func(d demand) demand { return d }},
		{
			// 1 × (16 + 1) + 3 + 5 = 25 connections.
			name: "connections exactly enough", settings: serverSettings{MaxConnections: 25, SuperuserReserved: 3, MaxFilesPerProcess: 1000, SharedBuffers: 128 << 20},
			demand: func(d demand) demand { return d },
		},
		{
			name: "connections one short", settings: serverSettings{MaxConnections: 24, SuperuserReserved: 3, MaxFilesPerProcess: 1000, SharedBuffers: 128 << 20},
			demand: func(d demand) demand { return d },
			want:   []string{"max_connections"}, says: []string{"need 25"},
		},
		{
			// 3 × (40 + 1) + 3 + 2 reserved + 5 = 133.
			name: "instances", settings: serverSettings{MaxConnections: 100, SuperuserReserved: 3, Reserved: 2, MaxFilesPerProcess: 1000, SharedBuffers: 128 << 20},
			demand: func(d demand) demand { d.Instances, d.MaxOpenConns, d.Groups = 3, 40, 40; return d },
			want:   []string{"max_connections"}, says: []string{"at least 133"},
		},
		{
			// ⌈10,000 ÷ 32⌉ = 313 tenants × 9 + 100 = 2,917 files.
			name: "files at 10,000 tenants", settings: roomy,
			demand: func(d demand) demand {
				d.Tenants, d.MostTenants, d.MaxOpenConns, d.Groups, d.WorkingSet = 10000, 10000, 32, 32, 10<<20
				return d
			},
			want: []string{"max_files_per_process"}, says: []string{"at least 2917"},
		},
		{
			name: "one group serves every tenant", settings: roomy,
			demand: func(d demand) demand { d.Tenants, d.MostTenants, d.Groups = 200, 200, 1; return d },
			want:   []string{"max_files_per_process"}, says: []string{"about 200 tenants"},
		},
		{
			// 1 GiB of tables: suggest 1.25 GiB rounded up to 128 MB steps.
			name: "shared_buffers", settings: roomy,
			demand: func(d demand) demand { d.WorkingSet = 1 << 30; return d },
			want:   []string{"shared_buffers"}, says: []string{"at least 1280MB"},
		},
		{
			name: "no tenants, nothing to size", settings: roomy,
			demand: func(d demand) demand { d.Tenants, d.MostTenants, d.WorkingSet = 0, 0, 1<<30; return d },
		},
		{
			// Two databases on one server, the control one among them:
			// 2 × (2 × 16 + 1) + 3 + 5 = 74.
			name: "two databases on one server", settings: roomy,
			demand: func(d demand) demand { d.Instances, d.Databases = 2, []string{"main", "b"}; return d },
		},
		{
			name: "two databases on a small server", settings: serverSettings{MaxConnections: 73, SuperuserReserved: 3, MaxFilesPerProcess: 1000, SharedBuffers: 128 << 20},
			demand: func(d demand) demand { d.Instances, d.Databases = 2, []string{"main", "b"}; return d },
			want:   []string{"max_connections"}, says: []string{"2 instance(s) × (2 databases on this server (main, b) × database.max_open_conns 16 + 1 listener) + 3 reserved + 5 for operators need 74"},
		},
		{
			// A placement's server has no LISTEN connection: 1 × 16 + 3 + 5 = 24.
			name: "placement without the control database", settings: serverSettings{MaxConnections: 24, SuperuserReserved: 3, MaxFilesPerProcess: 1000, SharedBuffers: 128 << 20},
			demand: func(d demand) demand { d.Databases, d.Listeners = []string{"b"}, 0; return d },
		},
		{
			// Files per backend count only its own database's tenants:
			// 10,000 tenants over two databases, the larger holding 6,000,
			// ⌈6,000 ÷ 32⌉ = 188 × 9 + 100 = 1,792.
			name: "files count the largest database", settings: roomy,
			demand: func(d demand) demand {
				d.Databases, d.Tenants, d.MostTenants, d.MaxOpenConns, d.Groups, d.WorkingSet = []string{"main", "b"}, 10000, 6000, 32, 32, 10<<20
				return d
			},
			want: []string{"max_files_per_process"}, says: []string{"at least 1792"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := checkSettings(tt.settings, tt.demand(base))
			var got []string
			for _, f := range fs {
				got = append(got, f.Object)
				if f.Check != CheckSettings || f.Severity != Warning {
					t.Errorf("%+v: settings findings are warnings", f)
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("warned about %q, want %q", got, tt.want)
			}
			for i, s := range tt.says {
				if !strings.Contains(fs[i].Message, s) {
					t.Errorf("message %q does not say %q", fs[i].Message, s)
				}
			}
		})
	}
}

func TestFormatBytes(t *testing.T) {
	tests := []struct {
		n    int64
		want string
	}{
		{512, "512B"},
		{64 << 10, "64kB"},
		{128 << 20, "128MB"},
		{(128 << 20) + 1, "129MB"},
		{1 << 30, "1GB"},
		{5 << 29, "2560MB"},
	}
	for _, tt := range tests {
		if got := formatBytes(tt.n); got != tt.want {
			t.Errorf("formatBytes(%d) = %s, want %s", tt.n, got, tt.want)
		}
	}
}

func TestExitCode(t *testing.T) {
	tests := []struct {
		errors, warnings int
		warningsOK       bool
		want             int
	}{
		{0, 0, false, ExitClean},
		{0, 0, true, ExitClean},
		{0, 2, false, ExitFindings},
		{0, 2, true, ExitClean},
		{1, 0, true, ExitFindings},
		{1, 3, false, ExitFindings},
	}
	for _, tt := range tests {
		r := Report{Errors: tt.errors, Warnings: tt.warnings}
		if got := r.ExitCode(tt.warningsOK); got != tt.want {
			t.Errorf("%d errors, %d warnings, warningsOK=%v: exit %d, want %d", tt.errors, tt.warnings, tt.warningsOK, got, tt.want)
		}
	}
}

func TestRecordProblems(t *testing.T) {
	set := migrations.Tenant()
	m := set[0]
	var good []record
	for _, m := range set {
		good = append(good, record{Version: m.Version, Name: m.Name, Checksum: m.Checksum(migrations.Postgres)})
	}
	tests := []struct {
		name string
		recs []record
		want []string // substrings, one per problem
	}{
		{"none", nil, nil},
		{"good", good, nil},
		{"checksum", append([]record{{Version: 1, Name: m.Name, Checksum: "edited"}}, good[1:]...), []string{"checksum edited"}},
		{"unknown", append(slices.Clone(good), record{Version: set.Latest() + 1, Name: "future"}), []string{"unknown to this binary"}},
		{"gap", []record{{Version: set.Latest() + 2, Name: "future"}},
			// The unknown version, then every version of the code as a gap.
			append([]string{"unknown to this binary"}, slices.Repeat([]string{"not recorded though later versions are"}, set.Latest())...)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := recordProblems(set, tt.recs, migrations.Postgres)
			if len(got) != len(tt.want) {
				t.Fatalf("got %q, want %d problems like %q", got, len(tt.want), tt.want)
			}
			for i, w := range tt.want {
				if !strings.Contains(got[i], w) {
					t.Errorf("problem %q does not say %q", got[i], w)
				}
			}
		})
	}
}
