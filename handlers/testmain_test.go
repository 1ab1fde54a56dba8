package handlers_test

import (
	"testing"

	"tenantry/internal/testenv"
)

// TestMain runs the package's tests under testenv.Main, which fails the run
// if any line the services logged held an e-mail address: every user these
// tests create has one, so none may reach the log at any level.
func TestMain(m *testing.M) { testenv.Main(m) }
