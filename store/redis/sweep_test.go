package redisstore_test

import (
	"context"
	"fmt"
	"math"
	"runtime"
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

// TestViewCountBound (issue 17, item 6): past WithMaxViews circuits, a
// sweep drops the least recently learned views, down to 7/8 of the bound;
// a view that learned since is kept.
func TestViewCountBound(t *testing.T) {
	const bound = 100
	for _, tc := range []struct {
		name string
		tick time.Duration // local time between two views
	}{
		{"distinct times", time.Nanosecond},
		{"one instant", 0}, // ties: as many are dropped all the same
	} {
		t.Run(tc.name, func(t *testing.T) {
			var local atomic.Int64
			c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1})
			t.Cleanup(func() { _ = c.Close() })
			s := redisstore.New(c, redisstore.WithStrict(), redisstore.WithMaxViews(bound),
				redisstore.WithLocalClock(func() time.Duration { return time.Duration(local.Load()) }))
			t.Cleanup(func() { _ = s.Close() })
			learn := func(name string) {
				local.Add(int64(tc.tick))
				s.AddView(name)
			}

			for i := range bound {
				learn(fmt.Sprint("old-", i))
			}
			require.Equal(t, bound, s.CircuitCount(), "no sweep up to the bound")
			learn("new-0")
			assert.Equal(t, bound-bound/8, s.CircuitCount(), "over the bound: down to 7/8 of it")
			assert.True(t, s.ViewOf("new-0").Known, "the newest is kept")
			if tc.tick == 0 {
				return
			}
			for i := range bound + 1 - (bound - bound/8) {
				assert.False(t, s.ViewOf(fmt.Sprint("old-", i)).Known, "old-%d: among the least recently learned", i)
			}
			learn("old-13") // the oldest kept learns again

			for i := 1; s.CircuitCount() < bound; i++ {
				learn(fmt.Sprint("new-", i))
			}
			learn("new-last")
			assert.Equal(t, bound-bound/8, s.CircuitCount())
			assert.True(t, s.ViewOf("old-13").Known, "a view that learned since is kept")
			assert.False(t, s.ViewOf("old-14").Known)
			assert.True(t, s.ViewOf("new-last").Known)
		})
	}
}

// TestDroppedViewAsksRedis: a circuit dropped by the count bound is made
// again at its next call, which asks Redis, so it decides as Redis says.
// (Kept, its fresh view would have admitted the call: the trip's message
// was lost.)
func TestDroppedViewAsksRedis(t *testing.T) {
	f := newFakeRedis(t)
	a := f.store(t)
	b, hb := f.countedStore(t, redisstore.WithMaxViews(2))
	p := policy(1)
	warm(t, b, "svc", p) // b learns "svc" and "warm-up svc"
	b.DropEvents(true)
	call(t, a, "svc", p, breaker.OutcomeFailure)
	f.AdvanceLocal(time.Millisecond)
	b.AddView("warm-up svc")   // learns again: "svc" is the least recently learned
	admitted(t, b, "other", p) // the third circuit: a sweep drops one
	require.Equal(t, 2, b.CircuitCount())
	require.False(t, b.ViewOf("svc").Known, "dropped")

	f.AdvanceLocal(time.Millisecond) // "svc", made again, is the newest
	hb.take()
	got := admitted(t, b, "svc", p)
	assert.False(t, got.Allowed, "Redis says open: %+v", got)
	assert.Equal(t, breaker.StateOpen, got.State)
	_, cmds := hb.take()
	assert.Equal(t, 1, cmds["evalsha"], "the call asks Redis: %v", cmds)
	assert.True(t, b.ViewOf("svc").Known, "and learns the view again")
}

// TestMaxViewsOption: a bound below 1 makes every call fail with an error
// that says so; any bound above works.
func TestMaxViewsOption(t *testing.T) {
	f := newFakeRedis(t)
	for _, tc := range []struct {
		n   int
		err string
	}{
		{0, "max views 0 is less than 1"},
		{-1, "max views -1 is less than 1"},
		{1, ""},
		{math.MaxInt, ""},
	} {
		t.Run(fmt.Sprint(tc.n), func(t *testing.T) {
			s := f.store(t, redisstore.WithMaxViews(tc.n))
			_, err := s.Admit(context.Background(), "c", policy(1))
			if tc.err == "" {
				assert.NoError(t, err)
				return
			}
			assert.ErrorContains(t, err, "redisstore: invalid store")
			assert.ErrorContains(t, err, tc.err)
		})
	}
}

// newViewStore is a strict store on a client that reaches no Redis, on a
// fixed local clock: AddView fills it without a round trip.
func newViewStore(b *testing.B, opts ...redisstore.Option) *redisstore.Store {
	b.Helper()
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1})
	b.Cleanup(func() { _ = c.Close() })
	s := redisstore.New(c, append([]redisstore.Option{redisstore.WithStrict()}, opts...)...)
	b.Cleanup(func() { _ = s.Close() })
	return s
}

// BenchmarkViewMemory reports the heap a store keeps per circuit it holds
// a view of (names of 16 bytes, made beforehand).
func BenchmarkViewMemory(b *testing.B) {
	const n = 100_000
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("tenant-%09d", i)
	}
	var before, after runtime.MemStats
	for b.Loop() {
		s := newViewStore(b)
		runtime.GC()
		runtime.ReadMemStats(&before)
		for _, name := range names {
			s.AddView(name)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		require.Equal(b, n, s.CircuitCount())
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "B/view")
	}
}

// BenchmarkNewView is the cost of a view of a new name: in a store that
// never reaches its bound, and in one that holds its bound (10,000 here),
// where every 1,250 new names a sweep reads the learn time of every view
// and drops the oldest 1,250 (included).
func BenchmarkNewView(b *testing.B) {
	const bound = 10_000
	for _, bc := range []struct {
		name  string
		bound int
	}{
		{"unbounded", math.MaxInt32},
		{"at the bound", bound},
	} {
		b.Run(bc.name, func(b *testing.B) {
			s := newViewStore(b, redisstore.WithMaxViews(bc.bound))
			for i := range bound {
				s.AddView(fmt.Sprint("warm-", i))
			}
			names := make([]string, b.N)
			for i := range names {
				names[i] = fmt.Sprint("name-", i)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for _, name := range names {
				s.AddView(name)
			}
			b.StopTimer()
			require.LessOrEqual(b, s.CircuitCount(), bc.bound)
		})
	}
}
