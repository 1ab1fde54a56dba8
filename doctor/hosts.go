package doctor

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"tenantry/tenants"
)

// checkHosts checks the catalog's hosts: each is stored exactly as
// tenants.NormalizeHost spells it (the resolver normalises the request's
// Host and looks that up, so any other spelling never matches), no two
// stored hosts normalise alike (which of them a request reached would
// depend on which was fixed first), each belongs to a tenant, and each
// tenant answers on some host.
func checkHosts(ts []catTenant, hosts []catHost) []Finding {
	var out []Finding
	names := map[uint64]string{}
	for _, t := range ts {
		names[t.ID] = t.Name
	}
	served := map[uint64]bool{}
	spellings := map[string][]catHost{}
	for _, h := range hosts {
		served[h.TenantID] = true
		tenant, ok := names[h.TenantID]
		if !ok {
			out = append(out, Finding{Check: CheckHosts, Severity: Error, Object: h.Host,
				Message: fmt.Sprintf("host %q belongs to tenant id %d, which is not in the catalog", h.Host, h.TenantID)})
			continue
		}
		n, err := tenants.NormalizeHost(h.Host, false)
		switch {
		case err != nil:
			out = append(out, Finding{Check: CheckHosts, Severity: Error, Tenant: tenant, Object: h.Host,
				Message: fmt.Sprintf("host %q is not a valid host[:port], so no request can match it", h.Host)})
			continue
		case n != h.Host:
			out = append(out, Finding{Check: CheckHosts, Severity: Error, Tenant: tenant, Object: h.Host,
				Message: fmt.Sprintf("host %q is stored unnormalised: requests are looked up as %q, so this row never matches; store it as %q", h.Host, n, n)})
		}
		spellings[n] = append(spellings[n], h)
	}
	for _, n := range slices.Sorted(maps.Keys(spellings)) {
		hs := spellings[n]
		if len(hs) < 2 {
			continue
		}
		owners := map[string]bool{}
		var rows []string
		for _, h := range hs {
			owners[names[h.TenantID]] = true
			rows = append(rows, fmt.Sprintf("%q (%s)", h.Host, names[h.TenantID]))
		}
		f := Finding{Check: CheckHosts, Severity: Error, Object: n,
			Message: fmt.Sprintf("%s are one host once normalised: the catalog holds it %d times, and which tenant it reaches depends on which row is spelt right", strings.Join(rows, ", "), len(hs))}
		if len(owners) == 1 {
			f.Tenant = names[hs[0].TenantID]
		}
		out = append(out, f)
	}
	for _, t := range ts {
		if !served[t.ID] {
			out = append(out, Finding{Check: CheckHosts, Severity: Warning, Tenant: t.Name, Object: t.Name,
				Message: "the tenant answers on no host, so no request can reach it; add one with POST /admin/tenants/{name}/hosts"})
		}
	}
	return out
}
