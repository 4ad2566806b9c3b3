package breaker_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tripline/tripline/breaker"
)

// within runs f and fails the test if it has not returned within a
// generous bound: a deadlock shows as a failure, not as a hung test run.
func within(t *testing.T, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("call did not return: deadlock")
	}
}

func TestOnStateChangeMayCallTheBreaker(t *testing.T) {
	e := newEnv()
	var b *breaker.Breaker
	var seen []breaker.State
	var err error
	b, err = breaker.New("svc", breaker.Config{
		Store:            e.store,
		FailureThreshold: 1,
		OnStateChange: func(name string, from, to breaker.State) {
			ctx := context.Background()
			// Never under a lock: the Breaker (and its store) can be used here,
			// and the store has already committed the transition.
			s, err := b.Snapshot(ctx)
			assert.NoError(t, err)
			assert.Equal(t, to, s.State)
			seen = append(seen, s.State)
			if to == breaker.StateOpen {
				_, err := b.Allow(ctx)
				assert.ErrorIs(t, err, breaker.ErrOpen)
			}
		},
	})
	require.NoError(t, err)
	ctx := context.Background()
	within(t, func() { // assert, not require: this is not the test's goroutine
		assert.ErrorIs(t, b.Do(ctx, failing), errBoom) // from Record
		e.clock.Advance(b.Policy().Timeout)
		assert.NoError(t, b.Do(ctx, ok))       // from Admit, then Record
		assert.NoError(t, b.ForceOpen(ctx, 0)) // from Apply
		assert.NoError(t, b.Reset(ctx))
	})
	assert.Equal(t, []breaker.State{
		breaker.StateOpen, breaker.StateHalfOpen, breaker.StateClosed, breaker.StateOpen, breaker.StateClosed,
	}, seen)
}

func TestOnStateChangeOnlyOnTheInstanceThatMadeIt(t *testing.T) {
	e := newEnv()
	a, hooksA := e.breaker(t, breaker.Config{FailureThreshold: 1})
	b, hooksB := e.breaker(t, breaker.Config{FailureThreshold: 1})
	ctx := context.Background()

	require.ErrorIs(t, a.Do(ctx, failing), errBoom)
	require.ErrorIs(t, b.Do(ctx, ok), breaker.ErrOpen) // b sees the open circuit, made no transition
	e.clock.Advance(a.Policy().Timeout)
	require.NoError(t, b.Do(ctx, ok))
	require.NoError(t, a.ForceOpen(ctx, time.Minute))
	require.NoError(t, b.Reset(ctx))

	assert.Equal(t, []string{"svc: closed -> open", "svc: closed -> open"}, hooksA.list())
	assert.Equal(t, []string{"svc: open -> half-open", "svc: half-open -> closed", "svc: open -> closed"}, hooksB.list())
}

func TestTransitionsAreLogged(t *testing.T) {
	e := newEnv()
	var logs logBuffer
	b, err := breaker.New("svc", breaker.Config{Store: e.store, FailureThreshold: 1, Logger: logs.logger()})
	require.NoError(t, err)
	ctx := context.Background()

	require.NoError(t, b.Do(ctx, ok))
	assert.Empty(t, logs.records(t), "a call that changes nothing logs nothing")

	require.ErrorIs(t, b.Do(ctx, failing), errBoom)
	e.clock.Advance(b.Policy().Timeout)
	require.NoError(t, b.Do(ctx, ok))
	require.NoError(t, b.ForceOpen(ctx, 0))
	require.NoError(t, b.ForceClose(ctx, 0))
	require.NoError(t, b.Reset(ctx))
	require.NoError(t, b.Reset(ctx)) // closed already: a command, not a state change

	changed := func(from, to string, gen float64, cause string) map[string]any {
		return map[string]any{
			"level": "INFO", "msg": "tripline: circuit state changed", "circuit": "svc",
			"from": from, "to": to, "generation": gen, "cause": cause,
		}
	}
	assert.Equal(t, []map[string]any{
		changed("closed", "open", 1, "outcome"),
		changed("open", "half-open", 2, "timeout"),
		changed("half-open", "closed", 3, "outcome"),
		changed("closed", "open", 4, "force-open"),
		changed("open", "closed", 5, "force-close"),
		{
			"level": "INFO", "msg": "tripline: circuit command applied", "circuit": "svc",
			"state": "closed", "generation": float64(6), "cause": "reset",
		},
		{
			"level": "INFO", "msg": "tripline: circuit command applied", "circuit": "svc",
			"state": "closed", "generation": float64(7), "cause": "reset",
		},
	}, logs.records(t))
}

func TestResetIsATransitionForEveryReplica(t *testing.T) {
	e := newEnv()
	a, hooksA := e.breaker(t, breaker.Config{FailureThreshold: 2})
	b, hooksB := e.breaker(t, breaker.Config{FailureThreshold: 2})
	ctx := context.Background()

	require.ErrorIs(t, b.Do(ctx, failing), errBoom)
	require.ErrorIs(t, b.Do(ctx, failing), errBoom)
	require.ErrorIs(t, a.Do(ctx, ok), breaker.ErrOpen)

	require.NoError(t, a.Reset(ctx))
	assert.Equal(t, []string{"svc: open -> closed"}, hooksA.list())
	assert.Equal(t, []string{"svc: closed -> open"}, hooksB.list())

	fn := &counter{}
	require.NoError(t, b.Do(ctx, fn.fn), "the other replica obeys the reset")
	assert.Equal(t, 1, fn.count())
	s := snapshot(t, b)
	assert.Equal(t, breaker.StateClosed, s.State)
	assert.Equal(t, 0, s.Failures)
	assert.Nil(t, s.Override)
	assert.Equal(t, uint64(2), s.Generation)

	// Reset of a closed circuit starts a generation but changes no state.
	require.NoError(t, a.Reset(ctx))
	assert.Equal(t, uint64(3), snapshot(t, a).Generation)
	assert.Equal(t, []string{"svc: open -> closed"}, hooksA.list())
}

func TestForceOpen(t *testing.T) {
	e := newEnv()
	a, hooksA := e.breaker(t, breaker.Config{Timeout: time.Second})
	b, hooksB := e.breaker(t, breaker.Config{Timeout: time.Second})
	ctx := context.Background()

	require.NoError(t, a.ForceOpen(ctx, 0))
	assert.Equal(t, []string{"svc: closed -> open"}, hooksA.list())

	s := snapshot(t, b)
	assert.Equal(t, breaker.StateOpen, s.State)
	require.NotNil(t, s.Override)
	assert.Equal(t, breaker.OverrideForceOpen, s.Override.Mode)
	assert.Equal(t, e.clock.Now(), s.Override.At)
	assert.True(t, s.Override.Until.IsZero())
	assert.True(t, s.RetryAt.IsZero())

	// Without expiry: rejected long after Timeout, with RetryAfter 0.
	e.clock.Advance(time.Hour)
	fn := &counter{}
	var oe *breaker.OpenError
	require.ErrorAs(t, b.Do(ctx, fn.fn), &oe)
	assert.Equal(t, breaker.OpenError{Name: "svc", State: breaker.StateOpen}, *oe)
	assert.Equal(t, 0, fn.count())

	require.NoError(t, a.Reset(ctx))
	require.NoError(t, b.Do(ctx, fn.fn))
	assert.Equal(t, 1, fn.count())
	assert.Empty(t, hooksB.list())
	assert.Equal(t, []string{"svc: closed -> open", "svc: open -> closed"}, hooksA.list())
}

func TestForceOpenWithTTL(t *testing.T) {
	e := newEnv()
	a, hooksA := e.breaker(t, breaker.Config{Timeout: time.Second})
	b, hooksB := e.breaker(t, breaker.Config{Timeout: time.Second})
	ctx := context.Background()

	require.NoError(t, a.ForceOpen(ctx, time.Minute))
	s := snapshot(t, b)
	require.NotNil(t, s.Override)
	assert.Equal(t, e.clock.Now().Add(time.Minute), s.Override.Until)

	e.clock.Advance(20 * time.Second)
	var oe *breaker.OpenError
	require.ErrorAs(t, b.Do(ctx, ok), &oe)
	assert.Equal(t, 40*time.Second, oe.RetryAfter, "rejected until the override ends, not the Timeout")

	// When the TTL passes the next call is a probe.
	e.clock.Advance(40 * time.Second)
	assert.Nil(t, snapshot(t, b).Override)
	require.NoError(t, b.Do(ctx, func(ctx context.Context) error {
		assert.Equal(t, breaker.StateHalfOpen, snapshot(t, b).State)
		return nil
	}))
	assert.Equal(t, breaker.StateClosed, snapshot(t, b).State)
	assert.Equal(t, []string{"svc: closed -> open"}, hooksA.list())
	assert.Equal(t, []string{"svc: open -> half-open", "svc: half-open -> closed"}, hooksB.list())
}

func TestForceClose(t *testing.T) {
	e := newEnv()
	a, hooksA := e.breaker(t, breaker.Config{FailureThreshold: 2})
	b, _ := e.breaker(t, breaker.Config{FailureThreshold: 2})
	ctx := context.Background()

	require.ErrorIs(t, b.Do(ctx, failing), errBoom)
	require.ErrorIs(t, b.Do(ctx, failing), errBoom)
	require.NoError(t, a.ForceClose(ctx, 0))
	assert.Equal(t, []string{"svc: open -> closed"}, hooksA.list())

	fn := &counter{err: errBoom}
	for range 5 {
		assert.ErrorIs(t, b.Do(ctx, fn.fn), errBoom, "every call is admitted")
	}
	assert.Equal(t, 5, fn.count())
	s := snapshot(t, b)
	assert.Equal(t, breaker.StateClosed, s.State)
	assert.Equal(t, 5, s.Failures, "outcomes are still counted")
	require.NotNil(t, s.Override)
	assert.Equal(t, breaker.OverrideForceClose, s.Override.Mode)

	require.NoError(t, a.Reset(ctx))
	s = snapshot(t, b)
	assert.Nil(t, s.Override)
	assert.Equal(t, 0, s.Failures)
	require.ErrorIs(t, b.Do(ctx, failing), errBoom)
	require.ErrorIs(t, b.Do(ctx, failing), errBoom)
	assert.ErrorIs(t, b.Do(ctx, ok), breaker.ErrOpen, "after Reset the circuit trips again")
}

func TestForceCloseWithTTL(t *testing.T) {
	e := newEnv()
	a, hooksA := e.breaker(t, breaker.Config{FailureThreshold: 2})
	b, hooksB := e.breaker(t, breaker.Config{FailureThreshold: 2})
	ctx := context.Background()

	require.NoError(t, a.ForceClose(ctx, time.Minute))
	assert.Empty(t, hooksA.list(), "closed -> closed is not a change of state")
	for range 3 {
		require.ErrorIs(t, b.Do(ctx, failing), errBoom)
	}
	e.clock.Advance(time.Minute)
	assert.Nil(t, snapshot(t, b).Override)
	require.ErrorIs(t, b.Do(ctx, failing), errBoom)
	assert.Equal(t, breaker.StateOpen, snapshot(t, b).State, "once the override ends the next failure trips")
	assert.Equal(t, []string{"svc: closed -> open"}, hooksB.list())
}

func TestCommandsRejectBadInput(t *testing.T) {
	b, hooks := newEnv().breaker(t, breaker.Config{})
	ctx := context.Background()
	for _, force := range []func(context.Context, time.Duration) error{b.ForceOpen, b.ForceClose} {
		err := force(ctx, -time.Second)
		require.Error(t, err)
		assert.Contains(t, err.Error(), `circuit "svc": negative override TTL -1s`)
		var se *breaker.StoreError
		assert.False(t, errors.As(err, &se), "rejected before the store is asked")
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	assert.Equal(t, context.Canceled, b.Reset(canceled))
	assert.Equal(t, context.Canceled, b.ForceOpen(canceled, 0))
	assert.Equal(t, context.Canceled, b.ForceClose(canceled, 0))
	s := snapshot(t, b)
	assert.Equal(t, uint64(0), s.Generation, "nothing was applied")
	assert.Equal(t, uint64(0), s.StoreErrors)
	assert.Empty(t, hooks.list())
}
