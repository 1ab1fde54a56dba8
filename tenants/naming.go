package tenants

import (
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"
)

var schemaPattern = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// ValidateSchema checks a schema name: it must match ^[a-z_][a-z0-9_]{0,62}$
// and must not be a name PostgreSQL, SQLite or tenantry keeps for itself.
// Names are quoted in SQL as well; this rule keeps them readable and safe
// to put in table prefixes, advisory-lock keys and log lines.
//
// A name is refused on both databases when either one keeps it: SQLite
// refuses objects named sqlite_… ("object name reserved for internal
// use"), which a prefixed table of schema sqlite_x would be, and a tenant
// must be movable from one database to the other, so every schema
// starting with "sqlite" is refused on PostgreSQL too, before anything is
// created.
func ValidateSchema(s string) error {
	switch {
	case !schemaPattern.MatchString(s):
		return ErrInvalidName.With("schema", fmt.Sprintf("schema %q must match ^[a-z_][a-z0-9_]{0,62}$", s), nil)
	case s == "public" || s == "information_schema" || strings.HasPrefix(s, "pg_") ||
		s == PrefixSchema || strings.HasPrefix(s, "archived_"):
		return ErrInvalidName.With("schema", fmt.Sprintf("schema %q is reserved", s), nil)
	case strings.HasPrefix(s, "sqlite"):
		return ErrInvalidName.With("schema", fmt.Sprintf("schema %q is reserved: names starting with sqlite belong to SQLite", s), nil)
	}
	return nil
}

var namePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// ValidateName checks a tenant name: 1–63 lower-case letters, digits, '-'
// and '_', starting with a letter or digit.
func ValidateName(n string) error {
	if !utf8.ValidString(n) || !namePattern.MatchString(n) {
		return ErrInvalidName.With("name", fmt.Sprintf("tenant name %q must match ^[a-z0-9][a-z0-9_-]{0,62}$", n), nil)
	}
	return nil
}

// SchemaFromName derives a schema name from a tenant name when none is given.
func SchemaFromName(name string) string {
	s := strings.ReplaceAll(name, "-", "_")
	if s != "" && s[0] >= '0' && s[0] <= '9' {
		s = "t_" + s
	}
	if len(s) > 63 {
		s = s[:63]
	}
	return s
}
