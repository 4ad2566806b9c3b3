//go:build integration

package integration

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
	"github.com/tripline/tripline/internal/redisserver"
	redisstore "github.com/tripline/tripline/store/redis"
	"github.com/tripline/tripline/store/storetest"
)

// prefixSeq makes every store test's prefix unique within the run.
var prefixSeq atomic.Uint64

func newPrefix(t *testing.T) string {
	return fmt.Sprintf("itest%d-%d", time.Now().UnixNano()%1e6, prefixSeq.Add(1))
}

// newClient returns a client on a single server, closed when t ends.
func newClient(t *testing.T, addr string) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// newClusterClient returns a cluster client, closed when t ends.
func newClusterClient(t *testing.T, addrs []string) *redis.ClusterClient {
	t.Helper()
	c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// requireEveryKeyExpires scans every master (or the single server) and
// requires a TTL on every key under prefix; it returns the number of keys.
func requireEveryKeyExpires(t *testing.T, c redis.UniversalClient, prefix string) int {
	t.Helper()
	ctx := context.Background()
	var n atomic.Int64 // ForEachMaster runs check on every master at once
	check := func(ctx context.Context, c *redis.Client) error {
		it := c.Scan(ctx, 0, prefix+":*", 1000).Iterator()
		for it.Next(ctx) {
			ttl, err := c.PTTL(ctx, it.Val()).Result()
			if err != nil {
				return err
			}
			if ttl == -2*time.Nanosecond { // gone since the scan
				continue
			}
			assert.Positive(t, ttl, "key %q has no TTL", it.Val())
			n.Add(1)
		}
		return it.Err()
	}
	switch c := c.(type) {
	case *redis.ClusterClient:
		require.NoError(t, c.ForEachMaster(ctx, check))
	case *redis.Client:
		require.NoError(t, check(ctx, c))
	default:
		t.Fatalf("unexpected client %T", c)
	}
	return int(n.Load())
}

func TestRedisStoreConformanceSingle(t *testing.T) {
	srv := redisserver.StartSingle(t)
	storetest.Run(t, func(t *testing.T) storetest.Harness {
		prefix := newPrefix(t)
		c := newClient(t, srv.Addr())
		t.Cleanup(func() { requireEveryKeyExpires(t, c, prefix) })
		return storetest.Harness{
			Store: redisstore.New(c, redisstore.WithPrefix(prefix)),
			NewReplica: func(t *testing.T) breaker.Store {
				return redisstore.New(newClient(t, srv.Addr()), redisstore.WithPrefix(prefix))
			},
			Advance:  time.Sleep,
			RealTime: true,
		}
	})
}

func TestRedisStoreConformanceCluster(t *testing.T) {
	cl := redisserver.StartCluster(t, 3, 0)
	storetest.Run(t, func(t *testing.T) storetest.Harness {
		prefix := newPrefix(t)
		c := newClusterClient(t, cl.Addrs())
		t.Cleanup(func() { requireEveryKeyExpires(t, c, prefix) })
		return storetest.Harness{
			Store: redisstore.New(c, redisstore.WithPrefix(prefix)),
			NewReplica: func(t *testing.T) breaker.Store {
				return redisstore.New(newClusterClient(t, cl.Addrs()), redisstore.WithPrefix(prefix))
			},
			Advance:  time.Sleep,
			RealTime: true,
		}
	})
}
