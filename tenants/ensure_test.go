package tenants_test

import (
	"context"
	"sync"
	"testing"

	"tenantry/database"
	"tenantry/internal/testenv"
	"tenantry/tenants"
)

// TestEnsureFromTwoProcessesAtOnce starts two "processes" (two pools on
// one PostgreSQL database) that bootstrap the catalog and seed the same
// tenants at the same moment, as two instances starting together do: both
// must succeed and the catalog must hold each tenant once.
func TestEnsureFromTwoProcessesAtOnce(t *testing.T) {
	dbc := testenv.Postgres(t)
	specs := []tenants.Spec{
		{Name: "one", Hosts: []string{"one.test", "www.one.test"}},
		{Name: "two", Hosts: []string{"two.test"}},
	}
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make(chan error, 2)
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := context.Background()
			db, dialect, err := database.Open(ctx, dbc, testenv.Logger(t))
			if err != nil {
				errs <- err
				return
			}
			defer database.Close(db)
			layout, _ := tenants.NewLayout(tenants.StrategySchema, dialect)
			if _, err := tenants.NewScope(db, layout); err != nil {
				errs <- err
				return
			}
			cat := tenants.NewCatalog(db, layout, testenv.Logger(t))
			<-start
			if err := cat.Bootstrap(ctx); err != nil {
				errs <- err
				return
			}
			for _, s := range specs {
				if _, err := cat.Ensure(ctx, s); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent start: %v", err)
	}
	s := newStackOn(t, dbc)
	ts, err := s.catalog.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(ts) != 2 || len(ts[0].Hosts) != 2 || len(ts[1].Hosts) != 1 {
		t.Errorf("catalog after two concurrent starts: %+v", ts)
	}
	for _, tn := range ts {
		if got := s.rows(t, tn.Schema, "schema_migrations"); got != int64(tn.SchemaVersion) {
			t.Errorf("%s: %d migration records, want %d (each applied once)", tn.Name, got, tn.SchemaVersion)
		}
	}
}
