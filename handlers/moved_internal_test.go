package handlers

import (
	"context"
	"errors"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"tenantry/database"
	"tenantry/tenants"
)

// catalogNow is a tenants.Lookup that answers with the catalog as it is
// now, whatever the request was resolved against: a placement that
// changed under a request.
type catalogNow struct{ t *tenants.Tenant }

func (l catalogNow) ByHost(ctx context.Context, _ string) (*tenants.Tenant, error) {
	// As the scope does: a catalog statement made as a tenant is refused.
	if _, ok := tenants.FromContext(ctx); ok {
		return nil, tenants.ErrOutsideScope
	}
	if l.t == nil {
		return nil, tenants.ErrUnknownHost
	}
	return l.t, nil
}

func (l catalogNow) List(context.Context) ([]tenants.Tenant, error) {
	if l.t == nil {
		return nil, nil
	}
	return []tenants.Tenant{*l.t}, nil
}

// TestMovedAway: a tenant's tables gone under a request answer 503
// tenant-moved when the host now resolves to the same tenant on another
// database (a move retired them), and 404 tenant-gone otherwise.
func TestMovedAway(t *testing.T) {
	served := &tenants.Tenant{ID: 7, Name: "acme", Schema: "acme", Status: tenants.StatusActive}
	moved := *served
	moved.Database = "b"
	other := moved
	other.ID = 8
	gone := database.ErrGone.With("", "", errors.New(`relation "acme.users" does not exist`))
	for _, tc := range []struct {
		name string
		now  *tenants.Tenant
		err  error
		want error
	}{
		{"moved to another database", &moved, gone, tenants.ErrMoved},
		{"removed", nil, gone, database.ErrGone},
		{"still on its database", served, gone, database.ErrGone},
		{"host now another tenant's", &other, gone, database.ErrGone},
		{"not a gone table", &moved, database.ErrUnavailable, database.ErrUnavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mw, err := tenants.NewMiddleware(tenants.NewResolver(catalogNow{tc.now}, time.Second), nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			s := &Server{Deps: Deps{Tenants: mw}}
			c, _ := gin.CreateTestContext(httptest.NewRecorder())
			c.Request = httptest.NewRequest("POST", "http://acme.test/api/users", nil)
			c.Request = c.Request.WithContext(tenants.NewContext(c.Request.Context(), served))
			got := s.movedAway(c, tc.err)
			if !errors.Is(got, tc.want) {
				t.Errorf("movedAway = %v, want %v", got, tc.want)
			}
			if tc.want == database.ErrGone && errors.Is(got, tenants.ErrMoved) {
				t.Errorf("movedAway = %v: a removed tenant shown as moved", got)
			}
			pr, _ := problemFor(got)
			if tc.want == tenants.ErrMoved && pr.Status != 503 {
				t.Errorf("moved: status %d, want 503", pr.Status)
			}
		})
	}
}
