package main

import _ "embed" // for go:embed

// openAPI is the OpenAPI description of the tenant API (openapi.yaml),
// served at GET /openapi.yaml on every tenant host. Tests load the same
// file from the module root (see testenv.OpenAPI).
//
//go:embed openapi.yaml
var openAPI []byte
