package app_test

import (
	"context"
	"net"
	"net/http"
	"strings"
	"testing"

	"tenantry/app"
	"tenantry/config"
	"tenantry/internal/testenv"
)

func openApp(t *testing.T, mutate func(*config.Config)) *app.App {
	t.Helper()
	cfg := testenv.Config(testenv.SQLite(t))
	mutate(&cfg)
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	a, err := app.Open(context.Background(), cfg, testenv.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })
	return a
}

// TestAdminListenerServedWithTenants checks the wiring: Listen opens the
// admin listener beside the tenant ones, Serve serves the admin API there
// (and only there) behind the token, and stops it with the rest.
func TestAdminListenerServedWithTenants(t *testing.T) {
	a := openApp(t, func(c *config.Config) {
		c.Server.Listen = []string{testenv.FreeAddr(t)}
		c.Admin.Listen, c.Admin.Token = "127.0.0.1:0", "wiring-token"
	})
	lns, err := a.Listen()
	if err != nil {
		t.Fatal(err)
	}
	if a.AdminAddr() == "" {
		t.Fatal("AdminAddr is empty after Listen with admin.listen set")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, lns) }()

	get := func(url, auth string) int {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, url, nil)
		if err != nil {
			t.Fatal(err)
		}
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	adminURL := "http://" + a.AdminAddr() + "/admin/tenants"
	tenantURL := "http://" + lns[0].Addr().String() + "/admin/tenants"
	for _, tc := range []struct {
		name, url, auth string
		want            int
	}{
		{"admin, no token", adminURL, "", http.StatusUnauthorized},
		{"admin, token", adminURL, "Bearer wiring-token", http.StatusOK},
		// The admin routes do not exist on a tenant port, token or not:
		// the tenant handler resolves the (unknown) host and says 404.
		{"tenant port, token", tenantURL, "Bearer wiring-token", http.StatusNotFound},
	} {
		if got := get(tc.url, tc.auth); got != tc.want {
			t.Errorf("%s: status %d, want %d", tc.name, got, tc.want)
		}
	}

	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Serve after cancel = %v, want nil", err)
	}
	if _, err := net.Dial("tcp", a.AdminAddr()); err == nil {
		t.Error("the admin listener still accepts connections after Serve returned")
	}
}

// TestAdminPortInUseFailsListen: a busy admin port stops start-up before
// anything is served, and the tenant listeners already opened are closed.
func TestAdminPortInUseFailsListen(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	tenantAddr := testenv.FreeAddr(t)
	a := openApp(t, func(c *config.Config) {
		c.Server.Listen = []string{tenantAddr}
		c.Admin.Listen = busy.Addr().String()
	})
	if _, err := a.Listen(); err == nil || !strings.Contains(err.Error(), "admin") {
		t.Fatalf("Listen with the admin port in use = %v, want an error naming the admin listener", err)
	}
	ln, err := net.Listen("tcp", tenantAddr)
	if err != nil {
		t.Fatalf("tenant address still held after the failed Listen: %v", err)
	}
	_ = ln.Close()
}
