package tenants_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"tenantry/fault"
	"tenantry/migrations"
	"tenantry/tenants"
)

// TestNamingErrors checks what a refused name tells the operator: kind
// Invalid, code invalid-name, the field at fault and a message restating
// the input and the rule, all from the typed error (no text parsing).
func TestNamingErrors(t *testing.T) {
	prefix := tenants.Layout{Strategy: tenants.StrategyPrefix, Dialect: migrations.SQLite}
	schema := tenants.Layout{Strategy: tenants.StrategySchema, Dialect: migrations.Postgres}
	long := strings.Repeat("a", 50)
	for _, tc := range []struct {
		name      string
		err       error
		field     string
		message   string // "" when the input is valid
		wantValid bool
	}{
		{"valid schema", tenants.ValidateSchema("acme"), "", "", true},
		{"valid name", tenants.ValidateName("acme-corp"), "", "", true},
		{"schema pattern", tenants.ValidateSchema("Acme"), "schema", `schema "Acme" must match ^[a-z_][a-z0-9_]{0,62}$`, false},
		{"schema reserved by PostgreSQL", tenants.ValidateSchema("pg_x"), "schema", `schema "pg_x" is reserved`, false},
		{"schema reserved by tenantry", tenants.ValidateSchema("archived_x"), "schema", `schema "archived_x" is reserved`, false},
		{"schema reserved by SQLite", tenants.ValidateSchema("sqlite_x"), "schema",
			`schema "sqlite_x" is reserved: names starting with sqlite belong to SQLite`, false},
		{"schema starting with sqlite", tenants.ValidateSchema("sqlitefoo"), "schema",
			`schema "sqlitefoo" is reserved: names starting with sqlite belong to SQLite`, false},
		{"schema sqlite", tenants.ValidateSchema("sqlite"), "schema",
			`schema "sqlite" is reserved: names starting with sqlite belong to SQLite`, false},
		{"schema containing sqlite", tenants.ValidateSchema("my_sqlite"), "", "", true},
		{"name pattern", tenants.ValidateName("Not A Name"), "name", `tenant name "Not A Name" must match ^[a-z0-9][a-z0-9_-]{0,62}$`, false},
		{"too long for prefixes", prefix.ValidateSchema(long), "schema",
			fmt.Sprintf(`schema %q is too long for the prefix strategy (at most 45 characters)`, long), false},
		{"long is fine for schemas", schema.ValidateSchema(long), "", "", true},
		{"layout checks the rules too", schema.ValidateSchema("sqlite_x"), "schema",
			`schema "sqlite_x" is reserved: names starting with sqlite belong to SQLite`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.wantValid {
				if tc.err != nil {
					t.Fatalf("err = %v, want nil", tc.err)
				}
				return
			}
			if !errors.Is(tc.err, tenants.ErrInvalidName) {
				t.Fatalf("err = %v, want ErrInvalidName", tc.err)
			}
			fe, ok := fault.As(tc.err)
			if !ok {
				t.Fatalf("err = %v, want a *fault.Error", tc.err)
			}
			if fe.Kind != fault.Invalid || fe.Code != "invalid-name" || fe.Field != tc.field || fe.Message != tc.message {
				t.Errorf("got kind %v code %q field %q message %q, want invalid invalid-name %q %q",
					fe.Kind, fe.Code, fe.Field, fe.Message, tc.field, tc.message)
			}
		})
	}
}

// TestSQLiteNamesRefusedEverywhere: a tenant whose schema starts with
// "sqlite" used to fail on SQLite with a 500 ("object name reserved for
// internal use") after the catalog had begun; it is refused up front as
// ErrInvalidName, on every database, so a name valid on one is valid on
// both. The tenant already there is untouched.
func TestSQLiteNamesRefusedEverywhere(t *testing.T) {
	for _, driver := range stackDrivers {
		t.Run(driver, func(t *testing.T) {
			t.Parallel()
			s := newStack(t, driver, 2, "acme")
			ctx := context.Background()
			for _, spec := range []tenants.Spec{
				{Name: "sqlite_x", Hosts: []string{"x.test"}},                      // schema derived from the name
				{Name: "sqlitefoo", Hosts: []string{"foo.test"}},                   // no underscore
				{Name: "fine", Schema: "sqlite_master", Hosts: []string{"f.test"}}, // SQLite's own table
				{Name: "fine", Schema: "sqlitex", Hosts: []string{"g.test"}},
			} {
				_, err := s.catalog.Create(ctx, spec)
				if !errors.Is(err, tenants.ErrInvalidName) || fault.KindOf(err) != fault.Invalid {
					t.Errorf("create %+v: err = %v, want ErrInvalidName of kind invalid", spec, err)
				}
				if _, err := s.catalog.Ensure(ctx, spec); !errors.Is(err, tenants.ErrInvalidName) {
					t.Errorf("ensure %+v: err = %v, want ErrInvalidName", spec, err)
				}
			}
			ts, err := s.catalog.List(ctx)
			if err != nil || len(ts) != 1 || ts[0].Name != "acme" {
				t.Fatalf("catalog after refused creates: %+v, %v; want acme alone", ts, err)
			}
			// The tenant already there still works.
			if n := s.rows(t, "acme", "users"); n != 0 {
				t.Errorf("acme has %d users, want 0", n)
			}
		})
	}
}

// TestCatalogErrors checks the kind, code and message of each refusal of
// the catalog on every database, which the admin API shows as they are.
func TestCatalogErrors(t *testing.T) {
	for _, driver := range stackDrivers {
		t.Run(driver, func(t *testing.T) {
			t.Parallel()
			s := newStack(t, driver, 2, "acme", "beta")
			ctx := context.Background()
			_, errExists := s.catalog.Create(ctx, tenants.Spec{Name: "acme", Hosts: []string{"new.test"}})
			_, errSchema := s.catalog.Create(ctx, tenants.Spec{Name: "other", Schema: "acme", Hosts: []string{"o.test"}})
			_, errHost := s.catalog.Create(ctx, tenants.Spec{Name: "thief", Hosts: []string{"BETA.test"}})
			_, errAddHost := s.catalog.AddHost(ctx, "acme", "beta.test")
			_, errGet := s.catalog.Get(ctx, "nobody")
			_, errStatus := s.catalog.SetStatus(ctx, "acme", "frozen")
			_, errSetStatus := s.catalog.SetStatus(ctx, "nobody", tenants.StatusSuspended)
			errRemoveHost := s.catalog.RemoveHost(ctx, "acme", "beta.test")
			_, errMalformed := s.catalog.AddHost(ctx, "acme", "bad host")
			for _, tc := range []struct {
				name          string
				err, sentinel error
				kind          fault.Kind
				code, message string
			}{
				{"name taken", errExists, tenants.ErrExists, fault.Conflict, "tenant-exists", `Conflicts with an existing tenant: "acme".`},
				{"schema taken", errSchema, tenants.ErrExists, fault.Conflict, "tenant-exists",
					`Conflicts with an existing tenant: schema "acme" is used by another tenant.`},
				{"host of another tenant", errHost, tenants.ErrHostTaken, fault.Conflict, "host-taken", "Host beta.test already belongs to another tenant."},
				{"added host of another tenant", errAddHost, tenants.ErrHostTaken, fault.Conflict, "host-taken", "Host beta.test already belongs to another tenant."},
				{"unknown tenant", errGet, tenants.ErrNotFound, fault.NotFound, "tenant-not-found", "No tenant has this name."},
				{"unknown status", errStatus, tenants.ErrInvalidName, fault.Invalid, "invalid-name", `status "frozen" must be "active" or "suspended"`},
				{"status of an unknown tenant", errSetStatus, tenants.ErrNotFound, fault.NotFound, "tenant-not-found", "No tenant has this name."},
				{"host the tenant lacks", errRemoveHost, tenants.ErrNotFound, fault.NotFound, "tenant-not-found", `Tenant "acme" does not answer on host beta.test.`},
				{"malformed host", errMalformed, tenants.ErrMalformedHost, fault.Invalid, "invalid-host", `"bad host": bad host name`},
			} {
				if !errors.Is(tc.err, tc.sentinel) {
					t.Errorf("%s: err = %v, want %v", tc.name, tc.err, tc.sentinel)
					continue
				}
				fe, _ := fault.As(tc.err)
				if fe.Kind != tc.kind || fe.Code != tc.code || fe.Message != tc.message {
					t.Errorf("%s: got %v %q %q, want %v %q %q", tc.name, fe.Kind, fe.Code, fe.Message, tc.kind, tc.code, tc.message)
				}
			}
			// Nothing of the refused requests reached another tenant.
			b, err := s.catalog.Get(ctx, "beta")
			if err != nil || strings.Join(b.HostNames(), ",") != "beta.test" {
				t.Errorf("beta after the refusals: %v, %v; want its one host", b, err)
			}
		})
	}
}
