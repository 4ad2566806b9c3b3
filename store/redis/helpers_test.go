package redisstore_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	redisstore "github.com/tripline/tripline/store/redis"
)

// epoch is where the fake Redis clock starts: whole seconds, so times in
// microseconds compare exactly.
var epoch = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

// fakeRedis is a miniredis whose TIME and key expiry follow a fake clock.
// The stores it makes read a local clock that moves with it (their local
// views age as Redis time passes), so no test sleeps.
type fakeRedis struct {
	*miniredis.Miniredis
	mu    sync.Mutex
	now   time.Time
	local time.Duration // the stores' local monotonic clock
}

func newFakeRedis(t testing.TB) *fakeRedis {
	t.Helper()
	m := miniredis.RunT(t)
	m.ClockTTL(true) // TTLs run down as SetTime moves the clock
	m.SetTime(epoch)
	return &fakeRedis{Miniredis: m, now: epoch, local: time.Hour}
}

// Advance moves TIME, every TTL and the stores' local clock forward by d.
func (f *fakeRedis) Advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = f.now.Add(d)
	f.local += d
	f.SetTime(f.now)
}

// Local is the stores' local clock.
func (f *fakeRedis) Local() time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.local
}

// AdvanceLocal moves only the stores' local clock (Redis time stands still).
func (f *fakeRedis) AdvanceLocal(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.local += d
}

// Now is the fake clock's time.
func (f *fakeRedis) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

// client returns a new client on f, closed when the test ends.
func (f *fakeRedis) client(t testing.TB) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: f.Addr()})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// store returns a Store with its own client on f, on f's local clock,
// closed (before its client) when the test ends.
func (f *fakeRedis) store(t testing.TB, opts ...redisstore.Option) *redisstore.Store {
	t.Helper()
	return f.storeOn(t, f.client(t), opts...)
}

// testCallTimeout replaces the 50ms default in tests on miniredis, whose
// Lua is slow under -race (milliseconds a call, one call at a time); the
// default is tested on its own (TestCallTimeout).
const testCallTimeout = 10 * time.Second

// storeOn returns a Store on client, on f's local clock, closed when the
// test ends.
func (f *fakeRedis) storeOn(t testing.TB, client redis.UniversalClient, opts ...redisstore.Option) *redisstore.Store {
	t.Helper()
	base := []redisstore.Option{redisstore.WithLocalClock(f.Local), redisstore.WithCallTimeout(testCallTimeout)}
	s := redisstore.New(client, append(base, opts...)...)
	t.Cleanup(func() { assert.NoError(t, s.Close(), "Close") })
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

// replayHook runs every script call twice while armed, as go-redis does when
// it retries a command whose reply was lost: same arguments, same call id.
// The caller gets the second reply.
type replayHook struct {
	armed atomic.Bool
	runs  atomic.Int64 // script executions that ran while armed
}

func (h *replayHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *replayHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		name := cmd.Name()
		if !h.armed.Load() || (name != "evalsha" && name != "eval") {
			return next(ctx, cmd)
		}
		if err := next(ctx, cmd); err != nil {
			return err // NOSCRIPT: Script.Run sends EVAL next
		}
		h.runs.Add(1)
		err := next(ctx, cmd)
		if err == nil {
			h.runs.Add(1)
		}
		return err
	}
}

func (h *replayHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// countHook counts the commands a client sends, pipelined or not: each
// process call is one round trip.
type countHook struct {
	mu        sync.Mutex
	trips     int
	commands  map[string]int
	pipelined int
}

func newCountHook() *countHook { return &countHook{commands: map[string]int{}} }

func (h *countHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *countHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.mu.Lock()
		h.trips++
		h.commands[cmd.Name()]++
		h.mu.Unlock()
		return next(ctx, cmd)
	}
}

func (h *countHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.mu.Lock()
		h.trips++
		for _, c := range cmds {
			h.commands[c.Name()]++
			h.pipelined++
		}
		h.mu.Unlock()
		return next(ctx, cmds)
	}
}

// take returns the round trips and commands counted since the last take.
func (h *countHook) take() (int, map[string]int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	trips, cmds := h.trips, h.commands
	h.trips, h.commands, h.pipelined = 0, map[string]int{}, 0
	return trips, cmds
}
