package redisstore_test

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tripline/tripline/breaker"
	redisstore "github.com/tripline/tripline/store/redis"
)

// reports collects what a Breaker's OnStateChange (made) and OnStateSeen
// (seen) were called with, in order.
type reports chan string

func (r reports) made(_ string, from, to breaker.State) {
	r <- "made " + from.String() + " -> " + to.String()
}
func (r reports) seen(_ string, from, to breaker.State) {
	r <- "seen " + from.String() + " -> " + to.String()
}

// next waits for the next report.
func (r reports) next(t *testing.T) string {
	t.Helper()
	select {
	case s := <-r:
		return s
	case <-time.After(5 * time.Second):
		require.FailNow(t, "no report within 5s")
		return ""
	}
}

func reportingBreaker(t *testing.T, s *redisstore.Store, r reports) *breaker.Breaker {
	t.Helper()
	b, err := breaker.New("svc", breaker.Config{Store: s, FailureThreshold: 1, Timeout: time.Hour,
		OnStateChange: r.made, OnStateSeen: r.seen})
	require.NoError(t, err)
	return b
}

// TestStateSeenFollowsTheFleet is issue 16's per-replica state: replica A
// hears, through OnStateSeen, that B tripped the circuit and that an
// operator reset it; B reports its own trip through OnStateChange only,
// and never as seen (its reply or the published event may come first).
func TestStateSeenFollowsTheFleet(t *testing.T) {
	f := newFakeRedis(t)
	sa, sb := f.store(t), f.store(t)
	ra, rb := make(reports, 16), make(reports, 16)
	a, b := reportingBreaker(t, sa, ra), reportingBreaker(t, sb, rb)
	ctx := context.Background()
	ok := func(context.Context) error { return nil }
	require.NoError(t, a.Do(ctx, ok))
	require.NoError(t, b.Do(ctx, ok))
	live(t, sa)
	live(t, sb)

	require.Error(t, b.Do(ctx, func(context.Context) error { return assert.AnError }))
	assert.Equal(t, "made closed -> open", rb.next(t))
	assert.Equal(t, "seen closed -> open", ra.next(t), "A hears of B's trip")
	require.ErrorIs(t, a.Do(ctx, ok), breaker.ErrOpen)

	ops := f.store(t, redisstore.WithStrict())
	_, err := ops.Apply(ctx, "svc", breaker.Command{Kind: breaker.CommandReset})
	require.NoError(t, err)
	assert.Equal(t, "seen open -> closed", ra.next(t))
	assert.Equal(t, "seen open -> closed", rb.next(t), "B's own trip was never reported as seen")
	assert.Empty(t, ra)
	assert.Empty(t, rb)
	runtime.KeepAlive(a) // a Breaker no longer reachable is not told
	runtime.KeepAlive(b)
}

// TestStateSeenFromReplies: a strict store hears no events; its Breaker
// learns of a change another replica made from the reply to its next
// call.
func TestStateSeenFromReplies(t *testing.T) {
	f := newFakeRedis(t)
	sa, sb := f.store(t, redisstore.WithStrict()), f.store(t, redisstore.WithStrict())
	ra, rb := make(reports, 16), make(reports, 16)
	a, b := reportingBreaker(t, sa, ra), reportingBreaker(t, sb, rb)
	ctx := context.Background()
	ok := func(context.Context) error { return nil }
	require.NoError(t, a.Do(ctx, ok))

	require.Error(t, b.Do(ctx, func(context.Context) error { return assert.AnError }))
	assert.Equal(t, "made closed -> open", rb.next(t))
	assert.Empty(t, ra, "A has not asked Redis since")
	require.ErrorIs(t, a.Do(ctx, ok), breaker.ErrOpen)
	assert.Equal(t, "seen closed -> open", ra.next(t))
	assert.Empty(t, ra)
	assert.Empty(t, rb)
	runtime.KeepAlive(b)
}
