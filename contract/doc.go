// Package contract holds the tests that keep tenantry's published API
// contract true: openapi.yaml at the module root and the Postman collection
// in postman/.
//
// The tests load openapi.yaml with kin-openapi and check every response of
// a running service (testenv.Start, on PostgreSQL and on SQLite) against
// it, status and body; they check that the collection has a request for
// every operation of the document and calls nothing else; and they run the
// collection with newman against a running service, failing on any failed
// assertion. The package has no code of its own.
package contract
