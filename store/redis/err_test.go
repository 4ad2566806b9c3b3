package redisstore_test

import (
	"testing"

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
