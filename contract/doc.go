// Package contract holds the tests that keep tenantry's published API
// contracts true: openapi.yaml (the tenant API) and openapi-admin.yaml (the
// admin API) at the module root, and their Postman collections in postman/.
//
// The tests load each document with kin-openapi and check every response of
// a running service (testenv.Start, on PostgreSQL and on SQLite; its admin
// listener for the admin API) against it, status, headers and body, for
// every documented status of every operation; they compare each document
// with its router in both directions; they check that each collection has
// a request for every operation of its document and calls nothing else,
// and that every request asserts its status, headers and body; and they
// run each collection with newman, with its Postman environment as shipped
// but for the ports, against the tenantry binary started on free loopback
// ports (service_test.go), failing on any failed assertion and on a
// process that does not exit 0 on SIGTERM. The package has no code of its
// own.
package contract
