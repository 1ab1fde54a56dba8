package tenants_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"tenantry/fault"
	"tenantry/internal/testenv"
	"tenantry/tenants"
)

// TestSetLimits: a tenant's own limits are stored, changed one at a time,
// returned to the default by 0 (stored as NULL), refused when out of
// range, and never touch another tenant's.
func TestSetLimits(t *testing.T) {
	for _, driver := range stackDrivers {
		t.Run(driver, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			s := newStack(t, driver, 2, "acme", "bolt")
			changes := 0
			s.catalog.OnChange(func(context.Context) { changes++ })

			created, err := s.catalog.Get(ctx, "acme")
			if err != nil {
				t.Fatal(err)
			}
			// The Limiter keeps the newest limits by updated_at: a change
			// must move it (the pool's clock counts microseconds).
			testenv.Eventually(t, time.Second, func() bool {
				return time.Now().Truncate(time.Microsecond).After(created.UpdatedAt)
			}, "the clock moving past the creation stamp")
			got, err := s.catalog.SetLimits(ctx, "acme", tenants.LimitsChange{Rate: ptr(2.5), Burst: ptr(10), Concurrency: ptr(3)})
			if err != nil {
				t.Fatal(err)
			}
			if !got.UpdatedAt.After(created.UpdatedAt) {
				t.Errorf("updated_at %v did not move past %v", got.UpdatedAt, created.UpdatedAt)
			}
			if want := "2.5 10 3"; limitsText(got) != want {
				t.Errorf("after setting all three: %s, want %s", limitsText(got), want)
			}
			// One at a time: the others keep their values.
			got, err = s.catalog.SetLimits(ctx, "acme", tenants.LimitsChange{Concurrency: ptr(5)})
			if err != nil {
				t.Fatal(err)
			}
			if want := "2.5 10 5"; limitsText(got) != want {
				t.Errorf("after changing the concurrency: %s, want %s", limitsText(got), want)
			}
			// 0 is the default again, stored as NULL.
			got, err = s.catalog.SetLimits(ctx, "acme", tenants.LimitsChange{Rate: ptr(0.0), Burst: ptr(0)})
			if err != nil {
				t.Fatal(err)
			}
			if want := "default default 5"; limitsText(got) != want {
				t.Errorf("after 0: %s, want %s", limitsText(got), want)
			}
			if want := "NULL NULL 5"; s.storedLimits(t, "acme") != want {
				t.Errorf("stored: %s, want %s", s.storedLimits(t, "acme"), want)
			}
			// Cross-tenant: bolt never had limits.
			if want := "NULL NULL NULL"; s.storedLimits(t, "bolt") != want {
				t.Errorf("bolt's stored limits: %s, want %s", s.storedLimits(t, "bolt"), want)
			}
			if l, err := s.catalog.Get(ctx, "bolt"); err != nil || limitsText(l) != "default default default" {
				t.Errorf("bolt: %s (%v), want every default", limitsText(l), err)
			}
			if changes != 3 {
				t.Errorf("%d changes announced, want 3", changes)
			}

			// Nothing to change: no write, no announcement.
			if _, err := s.catalog.SetLimits(ctx, "acme", tenants.LimitsChange{}); err != nil || changes != 3 {
				t.Errorf("empty change: err %v, %d changes announced, want 3", err, changes)
			}
			if _, err := s.catalog.SetLimits(ctx, "nobody", tenants.LimitsChange{Rate: ptr(1.0)}); !errors.Is(err, tenants.ErrNotFound) {
				t.Errorf("unknown tenant: err = %v, want ErrNotFound", err)
			}
			if _, err := s.catalog.SetLimits(ctx, "nobody", tenants.LimitsChange{}); !errors.Is(err, tenants.ErrNotFound) {
				t.Errorf("unknown tenant, empty change: err = %v, want ErrNotFound", err)
			}
			_, err = s.catalog.SetLimits(ctx, "acme", tenants.LimitsChange{Rate: ptr(-1.0), Concurrency: ptr(tenants.MaxConcurrency + 1)})
			if !errors.Is(err, tenants.ErrInvalidLimit) || fault.KindOf(err) != fault.Invalid {
				t.Fatalf("out of range: err = %v, want ErrInvalidLimit", err)
			}
			for _, field := range []string{"rate", "concurrency"} {
				if !strings.Contains(err.Error(), "must be 0 (the configured default)") || !hasField(err, field) {
					t.Errorf("out of range: %v does not name %s", err, field)
				}
			}
			if want := "NULL NULL 5"; s.storedLimits(t, "acme") != want {
				t.Errorf("a refused change was stored: %s, want %s", s.storedLimits(t, "acme"), want)
			}
		})
	}
}

func TestLimitsChangeValid(t *testing.T) {
	nan := 0.0
	nan /= nan
	for _, tc := range []struct {
		name   string
		ch     tenants.LimitsChange
		fields []string
	}{
		{"empty", tenants.LimitsChange{}, nil},
		{"zeros", tenants.LimitsChange{Rate: ptr(0.0), Burst: ptr(0), Concurrency: ptr(0)}, nil},
		{"the largest", tenants.LimitsChange{Rate: ptr(float64(tenants.MaxRateLimit)), Burst: ptr(tenants.MaxRateBurst), Concurrency: ptr(tenants.MaxConcurrency)}, nil},
		{"a fraction of a request per second", tenants.LimitsChange{Rate: ptr(0.001)}, nil},
		{"negative", tenants.LimitsChange{Rate: ptr(-0.5), Burst: ptr(-1), Concurrency: ptr(-1)}, []string{"rate", "burst", "concurrency"}},
		{"too large", tenants.LimitsChange{Rate: ptr(1e12), Burst: ptr(tenants.MaxRateBurst + 1)}, []string{"rate", "burst"}},
		{"not a number", tenants.LimitsChange{Rate: &nan}, []string{"rate"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.ch.Valid()
			if len(tc.fields) == 0 {
				if err != nil {
					t.Errorf("Valid = %v, want nil", err)
				}
				return
			}
			for _, f := range tc.fields {
				if !hasField(err, f) {
					t.Errorf("Valid = %v, want an error for %s", err, f)
				}
			}
		})
	}
}

// hasField reports whether err joins an ErrInvalidLimit for field.
func hasField(err error, field string) bool {
	var joined interface{ Unwrap() []error }
	errs := []error{err}
	if errors.As(err, &joined) {
		errs = joined.Unwrap()
	}
	for _, e := range errs {
		if fe, ok := fault.As(e); ok && errors.Is(e, tenants.ErrInvalidLimit) && fe.Field == field {
			return true
		}
	}
	return false
}

// limitsText shows a tenant's own limits as "rate burst concurrency".
func limitsText(t *tenants.Tenant) string {
	if t == nil {
		return "<nil>"
	}
	l := t.Limits()
	show := func(v any, set bool) string {
		if !set {
			return "default"
		}
		return fmt.Sprint(v)
	}
	var r float64
	var b, c int
	if l.Rate != nil {
		r = *l.Rate
	}
	if l.Burst != nil {
		b = *l.Burst
	}
	if l.Concurrency != nil {
		c = *l.Concurrency
	}
	return show(r, l.Rate != nil) + " " + show(b, l.Burst != nil) + " " + show(c, l.Concurrency != nil)
}

// storedLimits reads a tenant's limit columns straight from the catalog
// table, NULL shown as NULL.
func (s *stack) storedLimits(t *testing.T, name string) string {
	t.Helper()
	var rate sql.NullFloat64
	var burst, conc sql.NullInt64
	q := "SELECT rate_limit, rate_burst, max_concurrent FROM " + quote(s.layout.SharedTable("tenants")) + " WHERE name = ?"
	if err := s.db.Raw(q, name).Row().Scan(&rate, &burst, &conc); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	show := func(v any, valid bool) string {
		if !valid {
			return "NULL"
		}
		return fmt.Sprint(v)
	}
	return show(rate.Float64, rate.Valid) + " " + show(burst.Int64, burst.Valid) + " " + show(conc.Int64, conc.Valid)
}
