package memory_test

import (
	"testing"

	"github.com/tripline/tripline/breaker"
	"github.com/tripline/tripline/store/memory"
	"github.com/tripline/tripline/store/storetest"
)

// TestModel checks the memory store, on a fake clock, against the model of
// the state machine in storetest.
func TestModel(t *testing.T) {
	storetest.RunModel(t, func(t *testing.T) storetest.Harness {
		clock := newFakeClock()
		st := memory.New(memory.WithClock(clock.Now))
		return storetest.Harness{
			Store:      st,
			NewReplica: func(*testing.T) breaker.Store { return st },
			Advance:    clock.Advance,
		}
	})
}
