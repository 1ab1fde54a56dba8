// Package contract holds the tests that keep tenantry's published API
// contracts true: openapi.yaml (the tenant API) and openapi-admin.yaml (the
// admin API) at the module root, and their Postman collections in postman/.
//
// The tests load each document with kin-openapi and check every response of
// a running service (testenv.Start, on PostgreSQL and on SQLite; its admin
// listener for the admin API) against it, status, headers and body, for
// every documented status of every operation; they compare each document
// with its router in both directions; they check that each collection has
// a request for every operation of its document and calls nothing else;
// and they run each collection with newman against a running service,
// failing on any failed assertion. The package has no code of its own.
package contract
