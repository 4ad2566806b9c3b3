package redisstore_test

import (
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	redisstore "github.com/tripline/tripline/store/redis"
)

// epoch is where the fake Redis clock starts: whole seconds, so times in
// microseconds compare exactly.
var epoch = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

// fakeRedis is a miniredis whose TIME and key expiry follow a fake clock.
type fakeRedis struct {
	*miniredis.Miniredis
	mu  sync.Mutex
	now time.Time
}

func newFakeRedis(t *testing.T) *fakeRedis {
	t.Helper()
	m := miniredis.RunT(t)
	m.ClockTTL(true) // TTLs run down as SetTime moves the clock
	m.SetTime(epoch)
	return &fakeRedis{Miniredis: m, now: epoch}
}

// Advance moves TIME and every TTL forward by d.
func (f *fakeRedis) Advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = f.now.Add(d)
	f.SetTime(f.now)
}

// Now is the fake clock's time.
func (f *fakeRedis) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

// client returns a new client on f, closed when the test ends.
func (f *fakeRedis) client(t *testing.T) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: f.Addr()})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// store returns a Store with its own client on f.
func (f *fakeRedis) store(t *testing.T, opts ...redisstore.Option) *redisstore.Store {
	t.Helper()
	s := redisstore.New(f.client(t), opts...)
	return s
}

// requireAllKeysExpire checks that every key in f has a TTL, and returns
// how many keys there are.
func (f *fakeRedis) requireAllKeysExpire(t *testing.T) int {
	t.Helper()
	keys := f.Keys()
	for _, k := range keys {
		require.Positive(t, f.TTL(k), "key %q has no TTL", k)
	}
	return len(keys)
}
