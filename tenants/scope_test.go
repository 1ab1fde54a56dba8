package tenants_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"gorm.io/gorm"

	"tenantry/migrations"
	"tenantry/models"
	"tenantry/tenants"
)

func quote(name string) string { return migrations.Quote(name) }

func TestScopeRefusesUnscopedTenantQueries(t *testing.T) {
	for _, driver := range stackDrivers {
		t.Run(driver, func(t *testing.T) {
			t.Parallel()
			s := newStack(t, driver, 4, "acme")
			ctx := context.Background()
			var users []models.User
			var n int64
			for name, err := range map[string]error{
				"find":   s.db.WithContext(ctx).Find(&users).Error,
				"count":  s.db.WithContext(ctx).Model(&models.User{}).Count(&n).Error,
				"create": s.db.WithContext(ctx).Create(&models.User{Name: "x", Email: "x@example.com"}).Error,
				"update": s.db.WithContext(ctx).Model(&models.User{}).Where("id = 1").Update("name", "y").Error,
				"delete": s.db.WithContext(ctx).Where("id = 1").Delete(&models.User{}).Error,
			} {
				if !errors.Is(err, tenants.ErrNoTenant) {
					t.Errorf("%s without a tenant: err = %v, want ErrNoTenant", name, err)
				}
			}
			if _, err := s.scope.DB(ctx); !errors.Is(err, tenants.ErrNoTenant) {
				t.Errorf("Scope.DB without a tenant: err = %v, want ErrNoTenant", err)
			}
			if got := s.rows(t, "acme", "users"); got != 0 {
				t.Errorf("acme has %d users after refused writes, want 0", got)
			}
		})
	}
}

func TestScopeRefusesEscapes(t *testing.T) {
	for _, driver := range stackDrivers {
		t.Run(driver, func(t *testing.T) {
			t.Parallel()
			s := newStack(t, driver, 4, "acme", "globex")
			gctx, gdb := s.session(t, "globex")
			if _, err := models.CreateUser(gctx, gdb, input("Gina", "gina@example.com")); err != nil {
				t.Fatal(err)
			}
			_, db := s.session(t, "acme")
			other := s.layout.Table("globex", "users")
			var users []models.User
			var ts []tenants.Tenant
			var n int64
			for name, err := range map[string]error{
				"raw select":        db.Raw("SELECT * FROM " + quote(other)).Scan(&users).Error,
				"exec":              db.Exec("DELETE FROM " + quote(other)).Error,
				"explicit table":    db.Table(other).Find(&users).Error,
				"table with model":  db.Table(other).Model(&models.User{}).Count(&n).Error,
				"catalog model":     db.Find(&ts).Error,
				"joins":             db.Joins("JOIN " + quote(other) + " o ON o.id = users.id").Find(&users).Error,
				"map without model": db.Table("users").Find(&[]map[string]any{}).Error,
			} {
				if !errors.Is(err, tenants.ErrOutsideScope) {
					t.Errorf("%s: err = %v, want ErrOutsideScope", name, err)
				}
			}
			if len(users) != 0 || len(ts) != 0 {
				t.Errorf("escapes returned rows: %d users, %d tenants", len(users), len(ts))
			}
			if got := s.rows(t, "globex", "users"); got != 1 {
				t.Errorf("globex has %d users, want 1 (exec must not have run)", got)
			}
		})
	}
}

func input(name, email string) models.UserInput { return models.UserInput{Name: &name, Email: &email} }

// TestPoolPoisoning alternates tenants on pools of one and two
// connections, and on pools split into groups of one connection each (so
// tenants move between connections through their home groups and
// overflow), including after failed statements and rolled-back
// transactions: no state left on a connection may leak a request into
// another tenant.
func TestPoolPoisoning(t *testing.T) {
	pools := []struct{ conns, groups int }{{1, 1}, {2, 1}, {2, 2}, {3, 3}}
	for _, driver := range stackDrivers {
		for _, p := range pools {
			if driver == "sqlite" && p.groups > 1 {
				continue // SQLite is always one connection
			}
			t.Run(fmt.Sprintf("%s/%dconn/%dgroups", driver, p.conns, p.groups), func(t *testing.T) {
				t.Parallel()
				names := []string{"alpha", "beta", "gamma"}
				s := newStackGroups(t, driver, p.conns, p.groups, names...)
				want := map[string]int{}
				for i := range 60 {
					name := names[i%len(names)]
					ctx, db := s.session(t, name)
					email := fmt.Sprintf("%s-%d@example.com", name, i)
					if _, err := models.CreateUser(ctx, db, input("U", email)); err != nil {
						t.Fatalf("create in %s: %v", name, err)
					}
					want[name]++
					// A failing statement (duplicate email) and a rolled-back
					// transaction on the same connection.
					if _, err := models.CreateUser(ctx, db, input("U", email)); !errors.Is(err, models.ErrEmailTaken) {
						t.Fatalf("duplicate in %s: err = %v", name, err)
					}
					_ = db.Transaction(func(tx *gorm.DB) error {
						_, _ = models.CreateUser(ctx, tx, input("Rolled", "rb-"+email))
						return errors.New("roll back")
					})
					next := names[(i+1)%len(names)]
					nctx, ndb := s.session(t, next)
					page, err := models.ListUsers(nctx, ndb, 500, 0)
					if err != nil {
						t.Fatal(err)
					}
					for _, u := range page.Users {
						if !strings.HasPrefix(u.Email, next+"-") {
							t.Fatalf("tenant %s saw %s's user %s", next, strings.SplitN(u.Email, "-", 2)[0], u.Email)
						}
					}
				}
				for _, n := range names {
					if got := s.rows(t, n, "users"); got != int64(want[n]) {
						t.Errorf("%s has %d rows, want %d", n, got, want[n])
					}
				}
			})
		}
	}
}

func TestSchemaNameInjection(t *testing.T) {
	for _, driver := range stackDrivers {
		t.Run(driver, func(t *testing.T) {
			t.Parallel()
			s := newStack(t, driver, 2)
			ctx := context.Background()
			for _, schema := range []string{
				`x"; DROP SCHEMA public CASCADE; --`,
				`public`, `pg_catalog`, `information_schema`, `x.y`, `X`, `a b`, `x'--`, `tenantry_tenants`,
				strings.Repeat("a", 64),
			} {
				_, err := s.catalog.Create(ctx, tenants.Spec{Name: "inj", Schema: schema, Hosts: []string{"inj.test"}})
				if !errors.Is(err, tenants.ErrInvalidName) {
					t.Errorf("schema %q: err = %v, want ErrInvalidName", schema, err)
				}
			}
			for _, name := range []string{`a"b`, "", "UPPER", "-lead", "x y", strings.Repeat("n", 64)} {
				_, err := s.catalog.Create(ctx, tenants.Spec{Name: name, Schema: "ok_schema", Hosts: []string{"n.test"}})
				if !errors.Is(err, tenants.ErrInvalidName) {
					t.Errorf("name %q: err = %v, want ErrInvalidName", name, err)
				}
			}
			ts, err := s.catalog.List(ctx)
			if err != nil || len(ts) != 0 {
				t.Errorf("catalog after refused creates: %d tenants, %v", len(ts), err)
			}
		})
	}
}
