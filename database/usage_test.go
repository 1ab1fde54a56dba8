package database_test

import (
	"context"
	"sync"
	"testing"

	"tenantry/database"
	"tenantry/internal/testenv"
)

// TestUsage: every statement run with a Usage's context, from any
// goroutine, failed ones included, is counted in it with its time, and no
// statement run without it.
func TestUsage(t *testing.T) {
	for _, driver := range testenv.Drivers {
		t.Run(driver, func(t *testing.T) {
			t.Parallel()
			db := openDB(t, testenv.Database(t, driver))
			ctx, usage := database.NewUsageContext(context.Background())
			if usage.Statements() != 0 || usage.Time() != 0 {
				t.Fatalf("fresh Usage = %d statements, %v", usage.Statements(), usage.Time())
			}
			if err := exec(ctx, db, "CREATE TABLE counted (n integer)"); err != nil {
				t.Fatal(err)
			}
			var wg sync.WaitGroup
			for range 4 {
				wg.Go(func() {
					if err := exec(ctx, db, "INSERT INTO counted VALUES (1)"); err != nil {
						t.Error(err)
					}
				})
			}
			wg.Wait()
			if err := exec(ctx, db, "SELECT * FROM no_such_table"); err == nil {
				t.Fatal("a statement on a missing table succeeded")
			}
			// Not counted: another context.
			if err := exec(context.Background(), db, "INSERT INTO counted VALUES (2)"); err != nil {
				t.Fatal(err)
			}
			if got := usage.Statements(); got != 6 {
				t.Errorf("Statements() = %d, want 6 (create, 4 inserts, the failure)", got)
			}
			if usage.Time() <= 0 {
				t.Errorf("Time() = %v, want above 0", usage.Time())
			}
		})
	}
}
