package tenants_test

import (
	"context"
	"fmt"
	"testing"

	"tenantry/migrations"
	"tenantry/models"
	"tenantry/tenants"
)

// TestUsageMeasuresOnlyTheTenantsTables measures two tenants whose names
// share a prefix ("ten" and "ten_x", whose tables under the prefix
// strategy both start with "ten_"), on every database and layout: each
// sees exactly its own rows, counted against the database, and, on
// PostgreSQL, sizes that the other's growth does not change.
func TestUsageMeasuresOnlyTheTenantsTables(t *testing.T) {
	for _, driver := range stackDrivers {
		t.Run(driver, func(t *testing.T) {
			t.Parallel()
			s := newStack(t, driver, 4, "ten", "ten_x")
			usage := tenants.NewUsage(s.catalog)
			addUsers := func(name string, n int) {
				t.Helper()
				ctx, db := s.session(t, name)
				for i := range n {
					if _, err := models.CreateUser(ctx, db, input("U", fmt.Sprintf("%s-%d-%d@example.com", name, n, i))); err != nil {
						t.Fatal(err)
					}
				}
			}
			addUsers("ten", 3)
			addUsers("ten_x", 5)
			measure := func(name string) *tenants.Storage {
				t.Helper()
				tn, err := s.catalog.Get(context.Background(), name)
				if err != nil {
					t.Fatal(err)
				}
				st, err := usage.Measure(context.Background(), tn)
				if err != nil {
					t.Fatalf("measure %s: %v", name, err)
				}
				return st
			}
			migrated := int64(len(s.catalog.Migrations()))
			for _, tc := range []struct {
				name  string
				users int64
			}{{"ten", 3}, {"ten_x", 5}} {
				st := measure(tc.name)
				want := map[string]int64{"idempotency_keys": 0, "schema_migrations": migrated, "users": tc.users}
				if got := rowsByTable(st); got != fmt.Sprint(want) {
					t.Errorf("%s: rows %s, want %v", tc.name, got, want)
				}
				var sum int64
				for _, ts := range st.Tables {
					if direct := s.rows(t, tc.name, ts.Table); direct != ts.Rows {
						t.Errorf("%s.%s: %d rows measured, %d in the database", tc.name, ts.Table, ts.Rows, direct)
					}
					sum += ts.Rows
				}
				if st.Rows != sum {
					t.Errorf("%s: total rows %d, want the tables' sum %d", tc.name, st.Rows, sum)
				}
				checkBytes(t, s, tc.name, st)
			}

			// The other tenant grows; this one's figures stay as they were.
			before := measure("ten")
			addUsers("ten_x", 200)
			if after := measure("ten"); fmt.Sprint(summary(after)) != fmt.Sprint(summary(before)) {
				t.Errorf("ten changed when ten_x grew: %v, was %v", summary(after), summary(before))
			}
			if got := measure("ten_x").Rows; got != 5+200+migrated {
				t.Errorf("ten_x: %d rows, want %d", got, 5+200+migrated)
			}
		})
	}
}

// TestUsageSkipsMissingTables: a tenant without one of the set's tables
// (behind the code, or half removed) is measured without it.
func TestUsageSkipsMissingTables(t *testing.T) {
	for _, driver := range stackDrivers {
		t.Run(driver, func(t *testing.T) {
			t.Parallel()
			s := newStack(t, driver, 4, "acme")
			if err := s.db.Exec("DROP TABLE " + quote(s.layout.Table("acme", "idempotency_keys"))).Error; err != nil {
				t.Fatal(err)
			}
			tn, err := s.catalog.Get(context.Background(), "acme")
			if err != nil {
				t.Fatal(err)
			}
			st, err := tenants.NewUsage(s.catalog).Measure(context.Background(), tn)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := rowsByTable(st), fmt.Sprint(map[string]int64{"schema_migrations": int64(len(s.catalog.Migrations())), "users": 0}); got != want {
				t.Errorf("rows %s, want %s", got, want)
			}
		})
	}
}

// rowsByTable is a Storage's rows as a printed map, table → rows.
func rowsByTable(st *tenants.Storage) string {
	m := map[string]int64{}
	for _, ts := range st.Tables {
		m[ts.Table] = ts.Rows
	}
	return fmt.Sprint(m)
}

// summary is what Measure says of every table, sizes included.
func summary(st *tenants.Storage) []string {
	var out []string
	for _, ts := range st.Tables {
		b := "-"
		if ts.Bytes != nil {
			b = fmt.Sprint(*ts.Bytes)
		}
		out = append(out, fmt.Sprintf("%s:%d:%s", ts.Table, ts.Rows, b))
	}
	return out
}

// checkBytes holds the sizes to what the database says: on PostgreSQL
// each table's total relation size plus its owned sequence, summed; on
// SQLite no sizes, and the file's pages.
func checkBytes(t *testing.T, s *stack, name string, st *tenants.Storage) {
	t.Helper()
	if s.layout.Dialect == migrations.SQLite {
		if st.Bytes != nil {
			t.Errorf("%s: bytes %d on SQLite, want none", name, *st.Bytes)
		}
		for _, ts := range st.Tables {
			if ts.Bytes != nil {
				t.Errorf("%s.%s: bytes on SQLite, want none", name, ts.Table)
			}
		}
		if f := st.File; f == nil || f.PageSize <= 0 || f.Pages <= 0 || f.Bytes != f.PageSize*f.Pages || f.FreePages < 0 {
			t.Errorf("%s: database file %+v, want its pages", name, f)
		}
		return
	}
	if st.File != nil || st.Bytes == nil {
		t.Fatalf("%s on PostgreSQL: bytes %v, file %+v; want bytes and no file", name, st.Bytes, st.File)
	}
	var sum int64
	for _, ts := range st.Tables {
		qualified := quote(s.layout.Table(name, ts.Table))
		var want int64
		q := "SELECT pg_total_relation_size(?::regclass)"
		args := []any{qualified}
		if ts.Table == "users" {
			// Its bigserial id owns a sequence, which is the tenant's too.
			q += " + pg_relation_size(pg_get_serial_sequence(?, 'id')::regclass)"
			args = append(args, qualified)
		}
		if err := s.db.Raw(q, args...).Scan(&want).Error; err != nil {
			t.Fatal(err)
		}
		if ts.Bytes == nil || *ts.Bytes != want || want <= 0 {
			t.Errorf("%s.%s: bytes %v, want %d", name, ts.Table, ts.Bytes, want)
		}
		sum += want
	}
	if *st.Bytes != sum {
		t.Errorf("%s: bytes %d, want the tables' sum %d", name, *st.Bytes, sum)
	}
}
