// Package handlers is tenantry's HTTP surface: New builds the one
// http.Handler that every tenant listener serves, and routes.go lists every
// route.
//
// Tenant routes run behind the tenant middleware (package tenants), which
// resolves the Host to a tenant before any handler runs; handlers then reach
// the database only through Scope.DB, whose session cannot leave that
// tenant. The JSON API (api_*.go) and the HTML pages (html_*.go) call the
// same domain functions in package models; only encoding differs. Every
// error goes through one mapping, problemFor in errors.go, and is written
// either as an RFC 9457 problem+json response (/api/*, /openapi.yaml,
// health checks, and clients that prefer JSON) or as a readable HTML page
// (page routes and browsers); internal details are logged, never sent.
package handlers
