package main

import (
	"errors"
	"regexp"
	"strings"
	"testing"

	"tenantry/internal/testenv"
	"tenantry/tenants"
)

// TestTenantsLimits drives `tenantry tenants limits` on each database:
// showing, setting some flags while the others keep their value, 0 going
// back to the default, refusing bad values and unknown tenants, and
// leaving other tenants alone.
func TestTenantsLimits(t *testing.T) {
	for _, driver := range testenv.Drivers {
		t.Run(driver, func(t *testing.T) {
			t.Parallel()
			dbc := testenv.Database(t, driver)
			mustCLI(t, dbc, "tenants", "add", "--name", "acme", "--host", "acme.test")
			mustCLI(t, dbc, "tenants", "add", "--name", "bolt", "--host", "bolt.test")
			// The pool of 16 the test databases have: half of it per tenant.
			for _, step := range []struct {
				args []string
				want string
			}{
				{nil, `^acme\s+unlimited \(default\)\s+-\s+8 \(default\)$`},
				{[]string{"--rate", "2.5", "--concurrency", "3"}, `^acme\s+2\.5 \(own\)\s+3 \(default\)\s+3 \(own\)$`},
				{[]string{"--burst", "10"}, `^acme\s+2\.5 \(own\)\s+10 \(own\)\s+3 \(own\)$`},
				{[]string{"--rate", "0"}, `^acme\s+unlimited \(default\)\s+-\s+3 \(own\)$`},
				{[]string{"--concurrency", "0", "--burst", "0"}, `^acme\s+unlimited \(default\)\s+-\s+8 \(default\)$`},
			} {
				out := mustCLI(t, dbc, append([]string{"tenants", "limits", "acme"}, step.args...)...)
				lines := strings.Split(strings.TrimSpace(out), "\n")
				if len(lines) != 2 || !strings.HasPrefix(lines[0], "NAME") || !regexp.MustCompile(step.want).MatchString(lines[1]) {
					t.Errorf("tenants limits acme %s:\n%s\nwant a header and a line matching %s", strings.Join(step.args, " "), out, step.want)
				}
			}
			mustCLI(t, dbc, "tenants", "limits", "acme", "--rate", "1")
			for _, bad := range []struct {
				args []string
				want string
			}{
				{[]string{"acme", "--rate", "-1"}, "must be 0 (the configured default)"},
				{[]string{"acme", "--concurrency", "1000000"}, "up to 100000"},
				{[]string{"acme", "--rate", "NaN"}, "must be 0 (the configured default)"},
				{[]string{"acme", "--burst", "many"}, "invalid argument"},
				{[]string{}, "accepts 1 arg"},
			} {
				_, _, err := cli(t, dbc, append([]string{"tenants", "limits"}, bad.args...)...)
				if err == nil || !strings.Contains(strings.ToLower(err.Error()), strings.ToLower(bad.want)) {
					t.Errorf("tenants limits %s: err = %v, want one containing %q", strings.Join(bad.args, " "), err, bad.want)
				}
			}
			if _, _, err := cli(t, dbc, "tenants", "limits", "nobody", "--rate", "1"); !errors.Is(err, tenants.ErrNotFound) {
				t.Errorf("tenants limits nobody: err = %v, want ErrNotFound", err)
			}
			if out := mustCLI(t, dbc, "tenants", "limits", "acme"); !strings.Contains(out, "1 (own)") {
				t.Errorf("a refused change was stored:\n%s", out)
			}
			if out := mustCLI(t, dbc, "tenants", "limits", "bolt"); !regexp.MustCompile(`(?m)^bolt\s+unlimited \(default\)\s+-\s+8 \(default\)$`).MatchString(out) {
				t.Errorf("bolt's limits changed with acme's:\n%s", out)
			}
		})
	}
}
