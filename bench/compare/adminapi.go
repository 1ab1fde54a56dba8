package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"time"
)

// adminAPI calls tenantry's admin listener with its bearer token.
type adminAPI struct {
	base, token string
	client      *http.Client
}

func newAdminAPI(base, token string) adminAPI {
	return adminAPI{base: base, token: token, client: &http.Client{Transport: &http.Transport{Proxy: nil}}}
}

// errNoProfiler is profile's error when the admin listener has no
// /debug/pprof.
var errNoProfiler = errors.New("the admin listener has no /debug/pprof/profile (404)")

func (c adminAPI) do(ctx context.Context, method, path string, body any, timeout time.Duration) (*http.Response, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			cancel()
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		cancel()
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.client.Do(req)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	resp.Body = cancelOnClose{resp.Body, cancel}
	return resp, nil
}

// cancelOnClose ends a request's context when its body is closed.
type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b cancelOnClose) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}

// expect reads resp and fails unless its status is want.
func expect(resp *http.Response, want int) error {
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s: status %d: %s", resp.Request.Method, resp.Request.URL.Path, resp.StatusCode, body)
	}
	return nil
}

// createTenant is POST /admin/tenants (openapi-admin.yaml); the schema is
// derived from the name.
func (c adminAPI) createTenant(ctx context.Context, name string, hosts []string) error {
	resp, err := c.do(ctx, http.MethodPost, "/admin/tenants", map[string]any{"name": name, "hosts": hosts}, time.Minute)
	if err != nil {
		return err
	}
	return expect(resp, http.StatusCreated)
}

// removeTenant is DELETE /admin/tenants/{name}?drop_data=true.
func (c adminAPI) removeTenant(ctx context.Context, name string) error {
	resp, err := c.do(ctx, http.MethodDelete, "/admin/tenants/"+url.PathEscape(name)+"?drop_data=true", nil, time.Minute)
	if err != nil {
		return err
	}
	return expect(resp, http.StatusOK)
}

// profile writes a CPU profile of secs seconds to path.
func (c adminAPI) profile(ctx context.Context, secs int, path string) error {
	resp, err := c.do(ctx, http.MethodGet, "/debug/pprof/profile?seconds="+strconv.Itoa(secs), nil, time.Duration(secs)*time.Second+time.Minute)
	if err != nil {
		return err
	}
	if resp.StatusCode == http.StatusNotFound {
		resp.Body.Close()
		return errNoProfiler
	}
	if resp.StatusCode != http.StatusOK {
		return expect(resp, http.StatusOK)
	}
	defer resp.Body.Close()
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return fmt.Errorf("profile: %w", err)
	}
	return f.Close()
}
