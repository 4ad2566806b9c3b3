package memory_test

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

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

// TestReadsStoreNothing checks the memory store's promise that a circuit
// that was only read (admitted while closed, loaded, or sent a success) is
// not stored: Apply with IfExists still finds no state for it.
func TestReadsStoreNothing(t *testing.T) {
	ctx := t.Context()
	p := breaker.Policy{FailureThreshold: 3, Timeout: time.Second, SuccessThreshold: 1, HalfOpenMaxCalls: 1, ProbeTimeout: time.Second}
	st := memory.New()
	a, err := st.Admit(ctx, "svc", p)
	require.NoError(t, err)
	require.True(t, a.Allowed)
	_, err = st.Load(ctx, "svc")
	require.NoError(t, err)
	r, err := st.Record(ctx, "svc", p, breaker.Outcome{Kind: breaker.OutcomeSuccess, Generation: a.Generation})
	require.NoError(t, err)
	assert.Equal(t, breaker.Result{State: breaker.StateClosed}, r)
	_, err = st.Apply(ctx, "svc", breaker.Command{Kind: breaker.CommandReset, IfExists: true})
	assert.ErrorIs(t, err, breaker.ErrUnknownCircuit)

	// A failure is state.
	_, err = st.Record(ctx, "svc", p, breaker.Outcome{Kind: breaker.OutcomeFailure, Generation: a.Generation})
	require.NoError(t, err)
	_, err = st.Apply(ctx, "svc", breaker.Command{Kind: breaker.CommandReset, IfExists: true})
	assert.NoError(t, err)
}
