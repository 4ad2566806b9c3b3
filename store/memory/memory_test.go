package memory_test

import (
	"sync"
	"testing"
	"time"

	"github.com/tripline/tripline/breaker"
	"github.com/tripline/tripline/store/memory"
	"github.com/tripline/tripline/store/storetest"
)

// fakeClock is a clock that moves only when told to.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Harness {
		clock := newFakeClock()
		st := memory.New(memory.WithClock(clock.Now))
		return storetest.Harness{
			Store:      st,
			NewReplica: func(*testing.T) breaker.Store { return st },
			Advance:    clock.Advance,
		}
	})
}

// TestConformanceRealTime runs the suite on the wall clock, as a store on
// real Redis does, to check that the suite's margins hold.
func TestConformanceRealTime(t *testing.T) {
	if testing.Short() {
		t.Skip("real-time run of the suite (about 10s) skipped in -short mode")
	}
	storetest.Run(t, func(t *testing.T) storetest.Harness {
		return storetest.Harness{Store: memory.New(), Advance: time.Sleep, RealTime: true}
	})
}
