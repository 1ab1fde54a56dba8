package main

import (
	"testing"

	"tenantry/internal/testenv"
)

// TestMain builds the tenantry binary at most once for the whole package
// (testenv.Binary) and removes it afterwards.
func TestMain(m *testing.M) { testenv.Main(m) }
