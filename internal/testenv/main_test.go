package testenv

import "testing"

// TestMain runs this package's tests under Main, so that TestLeakFailsRun
// sees Main's check fail a run.
func TestMain(m *testing.M) { Main(m) }
