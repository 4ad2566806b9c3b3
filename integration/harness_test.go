//go:build integration

package integration

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tripline/tripline/internal/redisserver"
)

// TestHarness checks the machinery the other tests stand on: a server of
// our own (not 6379) that a go-redis client and a pub/sub reach, and that
// TestMain's leak check passes once they are closed.
func TestHarness(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	srv := redisserver.StartSingle(t)
	require.NotEqual(t, 6379, srv.Port())

	c := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer c.Close()
	require.NoError(t, c.Ping(ctx).Err())

	ps := c.Subscribe(ctx, "harness")
	defer ps.Close()
	_, err := ps.Receive(ctx) // subscription confirmed
	require.NoError(t, err)
	require.NoError(t, c.Publish(ctx, "harness", "hello").Err())
	msg, err := ps.ReceiveMessage(ctx)
	require.NoError(t, err)
	assert.Equal(t, "hello", msg.Payload)
}
