package tenants_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"tenantry/config"
	"tenantry/database"
	"tenantry/internal/testenv"
	"tenantry/migrations"
	"tenantry/tenants"
)

// TestIsolationUnderConcurrency runs 50 tenants' writers and readers at
// once through the real HTTP stack, then counts every schema's rows
// straight from the database: no row may land in the wrong tenant and no
// response may carry another tenant's row.
func TestIsolationUnderConcurrency(t *testing.T) {
	const tenantsN, writes = 50, 8
	for _, driver := range testenv.Drivers {
		t.Run(driver, func(t *testing.T) {
			t.Parallel()
			// This test is about isolation, not latency: on a loaded
			// machine under -race, SQLite's one connection can queue a
			// write past the default request deadline (a 503 by design).
			env := testenv.Start(t, driver, func(c *config.Config) {
				c.Server.RequestTimeout, c.Server.WriteTimeout = time.Minute, 2*time.Minute
			})
			ctx := t.Context()
			port := env.Addr1[strings.LastIndexByte(env.Addr1, ':')+1:]
			names := make([]string, tenantsN)
			for i := range names {
				names[i] = fmt.Sprintf("iso%02d", i)
				if _, err := env.App.Catalog.Create(ctx, tenants.Spec{Name: names[i], Hosts: []string{names[i] + ".test:" + port}}); err != nil {
					t.Fatal(err)
				}
			}
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
			do := func(method, name string, body []byte) (*http.Response, error) {
				req, err := http.NewRequestWithContext(ctx, method, env.URL1+"/api/users?limit=500", bytes.NewReader(body))
				if err != nil {
					return nil, err
				}
				req.Host = name + ".test:" + port
				req.Header.Set("Content-Type", "application/json")
				return client.Do(req)
			}

			var wg sync.WaitGroup
			errs := make(chan error, tenantsN*writes*2)
			for _, name := range names {
				wg.Add(2)
				go func() { // writer
					defer wg.Done()
					for i := range writes {
						body, _ := json.Marshal(map[string]string{"name": name, "email": fmt.Sprintf("%s-%d@example.com", name, i)})
						resp, err := do("POST", name, body)
						if err != nil {
							errs <- err
							return
						}
						resp.Body.Close()
						if resp.StatusCode != http.StatusCreated {
							errs <- fmt.Errorf("%s: POST status %d", name, resp.StatusCode)
						}
					}
				}()
				go func() { // reader
					defer wg.Done()
					for range writes {
						resp, err := do("GET", name, nil)
						if err != nil {
							errs <- err
							return
						}
						var page struct {
							Users []struct{ Name, Email string } `json:"users"`
						}
						err = json.NewDecoder(resp.Body).Decode(&page)
						resp.Body.Close()
						if err != nil {
							errs <- err
							return
						}
						for _, u := range page.Users {
							if u.Name != name || !strings.HasPrefix(u.Email, name+"-") {
								errs <- fmt.Errorf("tenant %s was shown %s's user %s", name, u.Name, u.Email)
							}
						}
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			// On PostgreSQL the point is that tenants' statements ran on
			// each other's home connections (database.Router): with 100
			// clients on 16 connections, homes are busy and statements
			// overflow or leave home after database.home_wait.
			if driver == "postgres" {
				pool, err := database.Pool(env.App.DB)
				if err != nil {
					t.Fatal(err)
				}
				if pool.Overflows() == 0 {
					t.Error("no statement ran outside its tenant's home connection group: the routing was not exercised")
				}
			}

			layout, err := tenants.NewLayout(tenants.Strategy(config.DefaultStrategy(driver)), migrations.Dialect(driver))
			if err != nil {
				t.Fatal(err)
			}
			for _, name := range names {
				var total, foreign int64
				table := migrations.Quote(layout.Table(name, "users"))
				if err := env.App.DB.Raw("SELECT count(*) FROM " + table).Scan(&total).Error; err != nil {
					t.Fatal(err)
				}
				if err := env.App.DB.Raw("SELECT count(*) FROM "+table+" WHERE name <> ?", name).Scan(&foreign).Error; err != nil {
					t.Fatal(err)
				}
				if total != writes || foreign != 0 {
					t.Errorf("%s: %d rows (want %d), %d foreign (want 0)", name, total, writes, foreign)
				}
			}
		})
	}
}
