// Package storetest is the conformance suite for breaker.Store
// implementations, in the manner of testing/slogtest: every store (memory,
// Redis, Redis Cluster) runs the same checks.
package storetest

import (
	"testing"
	"time"

	"github.com/tripline/tripline/breaker"
)

// Harness is one store under test.
type Harness struct {
	// Store is the store the suite drives.
	Store breaker.Store
	// NewReplica returns another Store on the same backing state, as another
	// replica of a service would have (for Redis: a new client and Store on
	// the same server). It may return Store itself for in-process stores.
	NewReplica func(t *testing.T) breaker.Store
	// Advance moves the store's clock forward by d. Fake clocks move at
	// once; a store on real time (real Redis) sleeps, so the suite keeps
	// its durations short.
	Advance func(d time.Duration)
	// RealTime is true when Advance sleeps: the suite then uses wider
	// margins around deadlines.
	RealTime bool
}

// Run runs the conformance suite. newHarness is called once per subtest and
// must return a store holding no circuits (or a fresh prefix).
func Run(t *testing.T, newHarness func(t *testing.T) Harness) {
	t.Helper()
	_ = newHarness
	t.Fatal("storetest: suite not written yet")
}
