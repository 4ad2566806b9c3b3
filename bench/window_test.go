package bench

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/tripline/tripline/breaker"
	redisstore "github.com/tripline/tripline/store/redis"
)

// The window benchmark (issue 17, item 2) measures what one failure costs
// in sliding-window mode when the window is full: the circuit is forced
// closed (it counts failures but never trips), and its window holds
// FailureThreshold failures, all within the window (1h). Each op is one
// Store.Record of a failure, one script call:
//
//	BenchmarkWindow/threshold=<n>/impl=ours-redis
//
// Metrics, besides ns/op (the caller's round trip):
//
//	redis-us/op  the time Redis spent in the script, from INFO
//	             commandstats (evalsha usec) deltas around the loop: Redis
//	             serves no other client while a script runs

// windowThresholds are the thresholds the benchmark measures: the default,
// a large one, and breaker.MaxFailureThreshold.
var windowThresholds = []int{5, 1000, breaker.MaxFailureThreshold}

// BenchmarkWindow runs the window benchmark on one redis-server of its own.
func BenchmarkWindow(b *testing.B) {
	env := startRedis(b)
	for _, n := range windowThresholds {
		b.Run(fmt.Sprintf("threshold=%d/impl=ours-redis", n), func(b *testing.B) {
			w := newFullWindow(b, env, n)
			us0 := env.scriptMicros(b)
			b.ReportAllocs()
			for b.Loop() {
				w.fail(b)
			}
			b.StopTimer()
			b.ReportMetric(float64(env.scriptMicros(b)-us0)/float64(b.N), "redis-us/op")
			w.check(b)
		})
	}
}

// fullWindow is a forced-closed circuit whose window is full.
type fullWindow struct {
	st   *redisstore.Store
	name string
	p    breaker.Policy
	gen  uint64
}

// newFullWindow forces a new circuit closed and fills its window with
// threshold failures, written straight into the window's sorted set (at
// large thresholds, recording them one by one would take longer than the
// benchmark).
func newFullWindow(tb testing.TB, env *redisEnv, threshold int) *fullWindow {
	tb.Helper()
	ctx := context.Background()
	c, _ := env.client(tb)
	name := newName("window")
	st := redisstore.New(c, redisstore.WithStrict(), redisstore.WithPrefix(name),
		redisstore.WithCallTimeout(benchCallTimeout))
	tb.Cleanup(func() { _ = st.Close() })
	w := &fullWindow{st: st, name: name, p: breaker.Policy{
		FailureThreshold: threshold,
		FailureWindow:    time.Hour,
		Timeout:          time.Hour,
		SuccessThreshold: 1,
		HalfOpenMaxCalls: 1,
		ProbeTimeout:     time.Minute,
	}}
	r, err := st.Apply(ctx, name, breaker.Command{Kind: breaker.CommandForceClose, Actor: "bench"})
	if err != nil {
		tb.Fatalf("ForceClose: %v", err)
	}
	w.gen = r.Generation
	w.fail(tb) // the circuit's window (the policy's) is known from here on
	now, err := env.admin.Time(ctx).Result()
	if err != nil {
		tb.Fatalf("TIME: %v", err)
	}
	at := float64(now.UnixMicro())
	key := st.Keys(name)[1]
	const batch = 10_000
	for i := 1; i < threshold; i += batch {
		pipe := env.admin.Pipeline()
		for j := i; j < min(i+batch, threshold); j++ {
			pipe.ZAdd(ctx, key, redis.Z{Score: at, Member: "fill-" + strconv.Itoa(j)})
		}
		if _, err := pipe.Exec(ctx); err != nil {
			tb.Fatalf("filling the window: %v", err)
		}
	}
	w.check(tb)
	return w
}

// fail records one failure, which must be counted without a trip.
func (w *fullWindow) fail(tb testing.TB) {
	r, err := w.st.Record(context.Background(), w.name, w.p, breaker.Outcome{Kind: breaker.OutcomeFailure, Generation: w.gen})
	if err != nil {
		tb.Fatalf("Record: %v", err)
	}
	if r.Ignored || r.State != breaker.StateClosed || r.Generation != w.gen {
		tb.Fatalf("Record of a failure on a forced-closed circuit: %+v", r)
	}
}

// check requires the window to be full: threshold failures, counted by Load
// and held in Redis.
func (w *fullWindow) check(tb testing.TB) {
	tb.Helper()
	ctx := context.Background()
	snap, err := w.st.Load(ctx, w.name)
	if err != nil {
		tb.Fatalf("Load: %v", err)
	}
	if snap.Failures != w.p.FailureThreshold || snap.State != breaker.StateClosed {
		tb.Fatalf("Load: %d failures in state %s, want %d in closed", snap.Failures, snap.State, w.p.FailureThreshold)
	}
}

// scriptMicros returns the microseconds Redis spent in EVALSHA and EVAL
// so far.
func (e *redisEnv) scriptMicros(tb testing.TB) int64 {
	tb.Helper()
	stats := e.commandStats(tb)
	return stats["evalsha"]["usec"] + stats["eval"]["usec"]
}

// TestWindow runs the window benchmark's body for a few failures at every
// threshold, so that it cannot rot (CI runs it, on a redis-server of its
// own): the window stays full and the circuit closed.
func TestWindow(t *testing.T) {
	env := startRedis(t)
	for _, n := range windowThresholds {
		t.Run(fmt.Sprintf("threshold=%d", n), func(t *testing.T) {
			w := newFullWindow(t, env, n)
			us0 := env.scriptMicros(t)
			const failures = 20
			for range failures {
				w.fail(t)
			}
			t.Logf("%.0fµs of Redis time per failure", float64(env.scriptMicros(t)-us0)/failures)
			w.check(t)
			size, err := env.admin.ZCard(context.Background(), w.st.Keys(w.name)[1]).Result()
			if err != nil {
				t.Fatalf("ZCARD: %v", err)
			}
			if size != int64(n) {
				t.Errorf("the window holds %d failures, want the threshold, %d", size, n)
			}
		})
	}
}
