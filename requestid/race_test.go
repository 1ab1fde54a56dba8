//go:build race

package requestid_test

// raceEnabled: the race detector's instrumentation moves New's random
// buffer to the heap, one allocation more than in a normal build.
const raceEnabled = true
