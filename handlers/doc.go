// Package handlers is tenantry's HTTP surface: New builds the one
// http.Handler that every tenant listener serves, and routes.go lists every
// route.
//
// Tenant routes run behind the tenant middleware (package tenants), which
// resolves the Host to a tenant before any handler runs; handlers then reach
// the database only through Scope.DB, whose session cannot leave that
// tenant. Every error goes through one mapping (errors.go) to an RFC 9457
// problem+json response; internal details are logged, never sent.
package handlers
