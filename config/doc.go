// Package config is the only package that reads configuration. Load
// combines, from lowest to highest precedence, built-in defaults, a YAML
// file, TENANTRY_* environment variables and command-line flags, and returns
// a typed Config that has been validated: an invalid value is an error that
// names the key and the values it accepts, so start-up stops before anything
// listens.
package config
