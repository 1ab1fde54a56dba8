package tenants_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"gorm.io/gorm"

	"tenantry/migrations"
	"tenantry/models"
)

// BenchmarkScope compares the two ways of confining a statement to a
// tenant schema that are safe on a shared pool and behind PgBouncer in
// transaction mode:
//
//   - qualified: the scope rewrites the table to "schema"."users"; one
//     round trip per statement, no transaction needed for reads;
//   - set_local: BEGIN; SELECT set_config('search_path', schema, true);
//     the statement on the unqualified table; COMMIT.
//
// Each iteration reads one user by id and a page of 50 with its count,
// for a tenant picked round-robin among 20, from parallel goroutines.
// Run: go test -run '^$' -bench Scope -benchtime 3s ./tenants/
// The figures and the choice are recorded in doc.go.
func BenchmarkScope(b *testing.B) {
	const tenantsN, usersPer = 20, 50
	names := make([]string, tenantsN)
	for i := range names {
		names[i] = fmt.Sprintf("bench%02d", i)
	}
	s := newStack(b, "postgres", 16, names...)
	ctxs := make([]context.Context, tenantsN)
	for i, n := range names {
		ctx, db := s.session(b, n)
		ctxs[i] = ctx
		for j := range usersPer {
			if _, err := models.CreateUser(ctx, db, input("U", fmt.Sprintf("u%d@example.com", j))); err != nil {
				b.Fatal(err)
			}
		}
	}

	b.Run("qualified", func(b *testing.B) {
		var next atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				ctx := ctxs[next.Add(1)%tenantsN]
				db, err := s.scope.DB(ctx)
				if err != nil {
					b.Error(err)
					return
				}
				if _, err := models.GetUser(ctx, db, 7); err != nil {
					b.Error(err)
					return
				}
				if _, err := models.ListUsers(ctx, db, 50, 0); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})

	b.Run("set_local", func(b *testing.B) {
		var next atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				i := next.Add(1) % tenantsN
				// The unscoped pool: this variant is what the scope would do
				// with search_path instead of qualified names.
				err := s.db.WithContext(context.Background()).Transaction(func(tx *gorm.DB) error {
					if err := tx.Exec("SELECT set_config('search_path', ?, true)", migrations.Quote(names[i])).Error; err != nil {
						return err
					}
					var u models.User
					if err := tx.Raw("SELECT * FROM users WHERE id = ? LIMIT 1", 7).Scan(&u).Error; err != nil {
						return err
					}
					var total int64
					if err := tx.Raw("SELECT count(*) FROM users").Scan(&total).Error; err != nil {
						return err
					}
					var us []models.User
					return tx.Raw("SELECT * FROM users ORDER BY id LIMIT 50").Scan(&us).Error
				})
				if err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}
