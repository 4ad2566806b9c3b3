package breaker_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tripline/tripline/breaker"
)

// TestIssue17ResetOnDegradedBreaker: a Breaker whose store is down and
// whose fallback tripped admits the next call once its own Reset (or
// ForceClose) has returned, whether the store took the command or not.
func TestIssue17ResetOnDegradedBreaker(t *testing.T) {
	for _, tc := range []struct {
		name    string
		applies bool // the store takes commands (only admissions fail)
		command func(*breaker.Breaker, context.Context) error
	}{
		{"reset, store down", false, (*breaker.Breaker).Reset},
		{"reset, store takes commands", true, (*breaker.Breaker).Reset},
		{"force close, store down", false, func(b *breaker.Breaker, ctx context.Context) error { return b.ForceClose(ctx, 0) }},
		{"force close, store takes commands", true, func(b *breaker.Breaker, ctx context.Context) error { return b.ForceClose(ctx, 0) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hooks := &hookLog{}
			b, fs, _, _ := faultyBreaker(t, breaker.Config{FailureThreshold: 1, Timeout: time.Minute, OnStateChange: hooks.hook})
			ctx := context.Background()
			fs.down(true)
			fs.set(func(s *faultyStore) { s.failApply = !tc.applies })
			require.Same(t, errBoom, b.Do(ctx, failing))
			require.ErrorIs(t, b.Do(ctx, ok), breaker.ErrOpen, "the fallback tripped")

			err := tc.command(b, ctx)
			if tc.applies {
				require.NoError(t, err)
			} else {
				var se *breaker.StoreError
				require.ErrorAs(t, err, &se)
				assert.Equal(t, breaker.StoreError{Name: "svc", Op: "apply", Err: errStoreDown}, *se)
			}

			fn := &counter{}
			require.NoError(t, b.Do(ctx, fn.fn), "admitted at once: no time passed, the store was not asked")
			assert.Equal(t, 1, fn.count())
			assert.True(t, snapshot(t, b).Degraded)
			assert.Equal(t, []string{"svc: closed -> open", "svc: open -> closed"}, hooks.list())
			admits, _, _, _ := fs.calls()
			assert.Equal(t, 1, admits, "every call but the first was decided by the fallback")
		})
	}
}

// TestForceOpenTTLOnFallback: ForceOpen with a TTL holds the fallback
// open for the TTL on the Breaker's clock; then the next call is a probe.
func TestForceOpenTTLOnFallback(t *testing.T) {
	hooks := &hookLog{}
	b, fs, _, e := faultyBreaker(t, breaker.Config{Timeout: time.Minute, OnStateChange: hooks.hook})
	ctx := context.Background()
	fs.down(true)
	require.ErrorIs(t, b.ForceOpen(ctx, 10*time.Second), errStoreDown)

	var oe *breaker.OpenError
	require.ErrorAs(t, b.Do(ctx, ok), &oe)
	assert.Equal(t, breaker.OpenError{Name: "svc", State: breaker.StateOpen, RetryAfter: 10 * time.Second}, *oe)
	e.clock.Advance(10*time.Second - time.Millisecond)
	require.ErrorIs(t, b.Do(ctx, ok), breaker.ErrOpen, "the probe of the store failed; the fallback is still forced open")
	e.clock.Advance(time.Millisecond)
	require.NoError(t, b.Do(ctx, ok), "the TTL is over: a probe, which closes the fallback")
	assert.Equal(t, []string{"svc: closed -> open", "svc: open -> half-open", "svc: half-open -> closed"}, hooks.list())
	assert.Equal(t, breaker.Snapshot{Name: "svc"}, sharedSnapshot(t, fs), "the store saw nothing")
}

// TestForceCloseTTLOnFallback: ForceClose with a TTL admits every call of
// a tripped fallback, counting without tripping, until the TTL ends.
func TestForceCloseTTLOnFallback(t *testing.T) {
	b, fs, _, e := faultyBreaker(t, breaker.Config{FailureThreshold: 2, Timeout: time.Minute})
	ctx := context.Background()
	fs.down(true)
	for range 2 {
		require.Same(t, errBoom, b.Do(ctx, failing))
	}
	require.ErrorIs(t, b.Do(ctx, ok), breaker.ErrOpen)
	require.ErrorIs(t, b.ForceClose(ctx, 10*time.Second), errStoreDown)
	for range 3 {
		require.Same(t, errBoom, b.Do(ctx, failing), "forced closed: admitted, and it does not trip")
	}
	e.clock.Advance(10 * time.Second)
	require.Same(t, errBoom, b.Do(ctx, failing), "the override ended: this failure trips the fallback")
	require.ErrorIs(t, b.Do(ctx, ok), breaker.ErrOpen)
}

// TestCommandOnFallbackEndsAtHandBack: a command the store never took
// holds the fallback only until the hand-back, where the shared state
// takes over.
func TestCommandOnFallbackEndsAtHandBack(t *testing.T) {
	hooks := &hookLog{}
	b, fs, _, e := faultyBreaker(t, breaker.Config{OnStateChange: hooks.hook})
	ctx := context.Background()
	fs.down(true)
	require.ErrorIs(t, b.ForceOpen(ctx, 0), errStoreDown)
	require.ErrorIs(t, b.Do(ctx, ok), breaker.ErrOpen)

	fs.down(false)
	e.clock.Advance(firstBackoff)
	require.NoError(t, b.Do(ctx, ok), "the probe's call, decided by the store: closed")
	assert.False(t, snapshot(t, b).Degraded)
	assert.Equal(t, []string{"svc: closed -> open", "svc: open -> closed"}, hooks.list())
}

// TestResetReachesTheFallbackSetAside: a Reset the store takes after a
// hand-back also resets the fallback set aside, so an episode that
// resumes it does not reject with what it counted before the Reset.
func TestResetReachesTheFallbackSetAside(t *testing.T) {
	b, fs, _, e := faultyBreaker(t, breaker.Config{FailureThreshold: 1, Timeout: time.Minute})
	ctx := context.Background()
	fs.set(func(s *faultyStore) { s.failAdmit = true })
	require.Same(t, errBoom, b.Do(ctx, failing), "served by the fallback, which trips")

	fs.set(func(s *faultyStore) { s.failAdmit = false })
	e.clock.Advance(firstBackoff)
	require.False(t, snapshot(t, b).Degraded, "the Snapshot's probe handed back; no outcome recorded since")
	require.NoError(t, b.Reset(ctx))

	fs.set(func(s *faultyStore) { s.failAdmit = true })
	e.clock.Advance(time.Millisecond)
	fn := &counter{}
	require.NoError(t, b.Do(ctx, fn.fn), "the resumed fallback was reset too")
	assert.Equal(t, 1, fn.count())
	s := snapshot(t, b)
	assert.True(t, s.Degraded)
	assert.Equal(t, uint64(2), s.Generation, "the fallback that tripped (1), then reset (2): resumed")
}
