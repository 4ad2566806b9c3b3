package redisstore_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tripline/tripline/breaker"
	redisstore "github.com/tripline/tripline/store/redis"
)

// TestMisconfiguredStoreRefusedByNew: a store made with an invalid option
// reports it through Err, and breaker.New refuses it.
func TestMisconfiguredStoreRefusedByNew(t *testing.T) {
	f := newFakeRedis(t)
	good := f.store(t)
	require.NoError(t, good.Err())

	bad := redisstore.New(f.client(t), redisstore.WithPrefix("a{b"), redisstore.WithIdleTTL(0))
	t.Cleanup(func() { _ = bad.Close() })
	require.Error(t, bad.Err())
	assert.Contains(t, bad.Err().Error(), "idle TTL")
	_, err := breaker.New("svc", breaker.Config{Store: bad})
	require.Error(t, err)
	assert.ErrorIs(t, err, bad.Err())

	nilClient := redisstore.New(nil)
	require.ErrorContains(t, nilClient.Err(), "client is nil")
}

// TestFind tells a missing circuit from one at rest, which Load reads alike.
func TestFind(t *testing.T) {
	ctx := t.Context()
	f := newFakeRedis(t)
	s := f.store(t, redisstore.WithStrict())
	snap, found, err := s.Find(ctx, "c")
	require.NoError(t, err)
	assert.False(t, found, "never written")
	assert.Equal(t, breaker.Snapshot{Name: "c"}, snap)

	p := breaker.Policy{FailureThreshold: 3, Timeout: time.Second, SuccessThreshold: 1, HalfOpenMaxCalls: 1, ProbeTimeout: time.Second}
	_, err = s.Record(ctx, "c", p, breaker.Outcome{Kind: breaker.OutcomeFailure})
	require.NoError(t, err)
	_, err = s.Record(ctx, "c", p, breaker.Outcome{Kind: breaker.OutcomeSuccess}) // at rest again
	require.NoError(t, err)
	snap, found, err = s.Find(ctx, "c")
	require.NoError(t, err)
	assert.True(t, found, "written, at rest")
	loaded, err := s.Load(ctx, "c")
	require.NoError(t, err)
	assert.Equal(t, loaded, snap, "the same snapshot as Load")
	assert.Zero(t, snap.Failures)
}
