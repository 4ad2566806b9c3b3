package redisstore_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tripline/tripline/breaker"
	redisstore "github.com/tripline/tripline/store/redis"
)

// TestIdleViewsDropped: a Store used with ever new circuit names drops the
// circuits that learned nothing for 10 minutes, in a sweep that runs as new
// names come, and keeps the recent ones. (No Redis answers here:
// every call fails fast, and a circuit is made all the same.)
func TestIdleViewsDropped(t *testing.T) {
	var local atomic.Int64
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1})
	c.AddHook(modelReplyHook{}) // no reply in the context: every script call fails
	t.Cleanup(func() { _ = c.Close() })
	s := redisstore.New(c, redisstore.WithStrict(),
		redisstore.WithLocalClock(func() time.Duration { return time.Duration(local.Load()) }))
	t.Cleanup(func() { _ = s.Close() })
	p := breaker.Policy{FailureThreshold: 1, Timeout: time.Second, SuccessThreshold: 1, HalfOpenMaxCalls: 1, ProbeTimeout: time.Second}
	admit := func(name string) {
		_, err := s.Admit(context.Background(), name, p)
		require.Error(t, err, "no Redis answers")
	}

	for i := range 1000 {
		admit(fmt.Sprint("old-", i))
	}
	assert.Equal(t, 1000, s.CircuitCount(), "no sweep below 1024 circuits")

	local.Add(int64(10 * time.Minute))
	for i := range 23 {
		admit(fmt.Sprint("new-", i))
	}
	assert.Equal(t, 1023, s.CircuitCount())
	admit("new-23") // the 1024th: a sweep
	assert.Equal(t, 24, s.CircuitCount(), "the old circuits, idle for 10 minutes, are dropped; the new ones kept")

	admit("old-1") // made again at its next call
	assert.Equal(t, 25, s.CircuitCount())
}
