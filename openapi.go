package main

import _ "embed" // for go:embed

// openAPI is the OpenAPI description of the tenant API (openapi.yaml),
// served at GET /openapi.yaml on every tenant host. Tests load the same
// file from the module root (see testenv.OpenAPI).
//
//go:embed openapi.yaml
var openAPI []byte

// adminOpenAPI is the OpenAPI description of the admin API
// (openapi-admin.yaml), served only by the admin listener, behind its
// token, at GET /admin/openapi.yaml: tenant hosts never advertise the
// operator API. Tests load the same file (see testenv.AdminOpenAPI).
//
//go:embed openapi-admin.yaml
var adminOpenAPI []byte
