// Package deploy holds no code: it is where the deployment examples under
// deploy/ are run by tests, so that an example that stops working fails
// the build instead of misleading an operator.
//
// The contract its tests keep for deploy/nginx: two tenantry processes on
// one PostgreSQL database, sharing web.session_key and admin.token and
// configured with deploy/nginx/tenantry.yaml, behind Debian's nginx
// configured with deploy/nginx/tenantry.conf (only addresses and paths
// changed), serve every tenant through nginx from both instances; a tenant
// added, or a host moved to another tenant, through one instance's admin
// API is served by the other within one second; and a flash message set by
// a form post one instance answered is shown by the page the other
// answers. The tests need nginx (Debian's nginx package): without it they
// skip, and under CI=true they fail.
package deploy
