package database_test

import (
	"context"
	"errors"
	"testing"

	"gorm.io/gorm"

	"tenantry/database"
	"tenantry/internal/testenv"
)

type ghostKey struct{}

// TestUnknownPlacement: a statement for a placement this process has no
// pool for fails as ErrUnknownPlacement whatever GORM method sends it,
// reaches no database, and does not make the control database look down.
func TestUnknownPlacement(t *testing.T) {
	dbc := testenv.Postgres(t)
	health := database.NewHealth(testenv.Logger(t))
	where := func(ctx context.Context) string {
		if ctx.Value(ghostKey{}) != nil {
			return "ghost"
		}
		return ""
	}
	db, _, err := database.Open(t.Context(), dbc, testenv.Logger(t), database.WithHealth(health), database.WithPlacements(nil, where))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = database.Close(db) })
	ghost := context.WithValue(t.Context(), ghostKey{}, true)

	var n int
	for name, run := range map[string]func() error{
		"Raw/Scan": func() error { return db.WithContext(ghost).Raw("SELECT 1").Scan(&n).Error },
		"Exec":     func() error { return db.WithContext(ghost).Exec("SELECT 1").Error },
		"Row":      func() error { return db.WithContext(ghost).Raw("SELECT 1").Row().Scan(&n) },
		"Transaction": func() error {
			return db.WithContext(ghost).Transaction(func(tx *gorm.DB) error { return tx.Exec("SELECT 1").Error })
		},
	} {
		if err := run(); !errors.Is(err, database.ErrUnknownPlacement) {
			t.Errorf("%s on an unknown placement: %v, want ErrUnknownPlacement", name, err)
		}
		if !health.Available() {
			t.Errorf("%s on an unknown placement made the control database look down", name)
		}
	}
	if err := db.WithContext(t.Context()).Raw("SELECT 1").Scan(&n).Error; err != nil || n != 1 {
		t.Errorf("control database after them: %v (%d)", err, n)
	}
}
