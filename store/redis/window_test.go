package redisstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tripline/tripline/breaker"
	redisstore "github.com/tripline/tripline/store/redis"
)

// TestWindowKeepsOnlyCountedFailures (issue 17, item 2): a failure trims
// the window by time and by count, so Redis holds only failures that may
// still count: at most FailureThreshold, none older than the window (they
// stayed for the idle TTL before). The window's key goes once its newest
// failure no longer counts.
func TestWindowKeepsOnlyCountedFailures(t *testing.T) {
	ctx := context.Background()
	f := newFakeRedis(t)
	s := f.store(t, redisstore.WithStrict())
	p := policy(3)
	p.FailureWindow = time.Minute
	r, err := s.Apply(ctx, "c", breaker.Command{Kind: breaker.CommandForceClose}) // counts, never trips
	require.NoError(t, err)
	window := s.Keys("c")[1]
	fail := func() {
		t.Helper()
		_, err := s.Record(ctx, "c", p, breaker.Outcome{Kind: breaker.OutcomeFailure, Generation: r.Generation})
		require.NoError(t, err)
	}
	held := func() int {
		t.Helper()
		if !f.Exists(window) {
			return 0
		}
		m, err := f.ZMembers(window)
		require.NoError(t, err)
		return len(m)
	}

	for range 10 {
		fail()
		f.Advance(time.Second)
	}
	assert.Equal(t, 3, held(), "at most FailureThreshold failures")
	f.Advance(p.FailureWindow)
	snap, err := s.Load(ctx, "c")
	require.NoError(t, err)
	assert.Zero(t, snap.Failures)
	assert.Zero(t, held(), "the key went with its last counted failure")

	fail()
	f.Advance(p.FailureWindow / 2)
	fail()
	f.Advance(p.FailureWindow / 2)
	fail()
	assert.Equal(t, 2, held(), "the failure a window old was dropped")
	snap, err = s.Load(ctx, "c")
	require.NoError(t, err)
	assert.Equal(t, 2, snap.Failures)
}
