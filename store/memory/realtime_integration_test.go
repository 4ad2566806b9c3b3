//go:build integration

package memory_test

import (
	"testing"
	"time"

	"github.com/tripline/tripline/breaker"
	"github.com/tripline/tripline/store/memory"
	"github.com/tripline/tripline/store/storetest"
)

var _ breaker.Store = (*memory.Store)(nil)

// TestConformanceRealTime runs the suite on the wall clock, as a store on
// real Redis does, to check that the suite's margins hold. It sleeps for
// about 10s, so it runs with the integration suite.
func TestConformanceRealTime(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Harness {
		return storetest.Harness{Store: memory.New(), Advance: time.Sleep, RealTime: true}
	})
}
