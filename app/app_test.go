package app_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"tenantry/config"
	"tenantry/internal/testenv"
)

// TestTwoTenantsTwoPorts is the README's curl session over real listeners:
// a user created on one port is visible there and nowhere else.
func TestTwoTenantsTwoPorts(t *testing.T) {
	for _, tc := range []struct {
		name, driver, strategy string
	}{
		{"sqlite", "sqlite", "prefix"},
		{"postgres", "postgres", "schema"},
		{"postgres-prefix", "postgres", "prefix"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env := testenv.Start(t, tc.driver, func(c *config.Config) { c.Tenancy.Strategy = tc.strategy })

			resp, err := http.Post(env.URL1+"/api/users", "application/json",
				strings.NewReader(`{"name":"Ada","email":"ada@example.com"}`))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusCreated {
				t.Fatalf("POST status = %d, want 201", resp.StatusCode)
			}
			if got := resp.Header.Get("Location"); got != "/api/users/1" {
				t.Errorf("Location = %q, want /api/users/1", got)
			}

			for _, tc := range []struct {
				url       string
				wantTotal int
			}{
				{env.URL1, 1},
				{strings.Replace(env.URL1, "127.0.0.1", "localhost", 1), 1},
				{env.URL2, 0},
				{strings.Replace(env.URL2, "127.0.0.1", "localhost", 1), 0},
			} {
				var page struct {
					Users []struct{ Email string } `json:"users"`
					Total int                      `json:"total"`
				}
				getJSON(t, tc.url+"/api/users", &page)
				if page.Total != tc.wantTotal || len(page.Users) != tc.wantTotal {
					t.Errorf("%s: total %d, %d users; want %d", tc.url, page.Total, len(page.Users), tc.wantTotal)
				}
				if tc.wantTotal == 1 && page.Users[0].Email != "ada@example.com" {
					t.Errorf("%s: email %q", tc.url, page.Users[0].Email)
				}
			}
		})
	}
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: status %d", url, resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}
