//go:build integration

package integration

import (
	"context"
	"errors"
	"log/slog"
	"runtime"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tripline/tripline/breaker"
	redisstore "github.com/tripline/tripline/store/redis"
)

// scriptCounter counts the script calls (EVALSHA, EVAL) a client sends,
// pipelined or not.
type scriptCounter struct{ n atomic.Int64 }

func (h *scriptCounter) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *scriptCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if cmd.Name() == "evalsha" || cmd.Name() == "eval" {
			h.n.Add(1)
		}
		return next(ctx, cmd)
	}
}

func (h *scriptCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, c := range cmds {
			if c.Name() == "evalsha" || c.Name() == "eval" {
				h.n.Add(1)
			}
		}
		return next(ctx, cmds)
	}
}

// logHook is a slog.Handler that hands every record to a function.
type logHook func(slog.Record)

func (h logHook) Enabled(context.Context, slog.Level) bool      { return true }
func (h logHook) Handle(_ context.Context, r slog.Record) error { h(r); return nil }
func (h logHook) WithAttrs([]slog.Attr) slog.Handler            { return h }
func (h logHook) WithGroup(string) slog.Handler                 { return h }

// viewReplica is one replica on local views: its own client (script calls
// counted), Store and Breaker.
type viewReplica struct {
	store   *redisstore.Store
	breaker *breaker.Breaker
	scripts *scriptCounter
}

// newViewReplica makes a replica on be under prefix; its store is closed
// (before its client) when t ends.
func newViewReplica(t *testing.T, be backend, prefix, name string, cfg breaker.Config, opts ...redisstore.Option) *viewReplica {
	t.Helper()
	c := be.newClient(t)
	h := &scriptCounter{}
	c.AddHook(h)
	st := redisstore.New(c, append([]redisstore.Option{redisstore.WithPrefix(prefix)}, opts...)...)
	t.Cleanup(func() { assert.NoError(t, st.Close()) })
	cfg.Store = st
	b, err := breaker.New(name, cfg)
	require.NoError(t, err)
	return &viewReplica{store: st, breaker: b, scripts: h}
}

// warm makes r decide its closed-state calls locally: successful calls
// until one costs no script call (the subscription is live and the view
// fresh), within a deadline.
func (r *viewReplica) warm(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	for deadline := time.Now().Add(10 * time.Second); ; {
		before := r.scripts.n.Load()
		require.NoError(t, r.breaker.Do(ctx, func(context.Context) error { return nil }))
		if r.scripts.n.Load() == before {
			return
		}
		require.False(t, time.Now().After(deadline), "the replica never decided a call from its view")
		time.Sleep(time.Millisecond) // waiting for the subscription, polling with a deadline
	}
}

// TestLocalViewFleetTripsOnce: with every call failing, N replicas x M
// goroutines on local views, the circuit trips exactly once (OnStateChange
// once fleet-wide) and at most threshold + 2 x (N*M - 1) calls run.
func TestLocalViewFleetTripsOnce(t *testing.T) {
	const replicas, perReplica, threshold, rounds = 4, 16, 5, 10
	callers := replicas * perReplica
	for _, be := range backends(t) {
		t.Run(be.name, func(t *testing.T) {
			ctx := context.Background()
			var most int64
			for round := range rounds {
				prefix := newPrefix(t)
				var (
					changes  atomic.Int64
					firstErr atomic.Pointer[string]
				)
				cfg := breaker.Config{
					FailureThreshold: threshold,
					Timeout:          time.Minute,
					OnStateChange:    func(string, breaker.State, breaker.State) { changes.Add(1) },
					Logger: slog.New(logHook(func(r slog.Record) {
						r.Attrs(func(a slog.Attr) bool {
							if a.Key == "error" {
								msg := a.Value.String()
								firstErr.CompareAndSwap(nil, &msg)
							}
							return true
						})
					})),
				}
				fleet := make([]*viewReplica, replicas)
				for i := range fleet {
					// A store call that outlasts its deadline starts a
					// degraded episode, whose local fallback trips on its
					// own (breaker's "Store failures"): this test is about
					// the shared circuit, so the deadline is generous for
					// 64 callers on a loaded machine under -race.
					fleet[i] = newViewReplica(t, be, prefix, "fleet", cfg, redisstore.WithCallTimeout(2*time.Second))
					fleet[i].warm(t)
				}
				bs := make([]*breaker.Breaker, len(fleet))
				for i, r := range fleet {
					bs[i] = r.breaker
				}
				ran := failTogether(t, ctx, bs, perReplica)
				bound := int64(threshold + 2*(callers-1))
				assert.Equal(t, int64(1), changes.Load(), "round %d: OnStateChange calls fleet-wide", round)
				assert.LessOrEqual(t, ran, bound, "round %d: calls run", round)
				assert.GreaterOrEqual(t, ran, int64(threshold), "round %d", round)
				snap, err := fleet[0].breaker.Snapshot(ctx)
				require.NoError(t, err)
				assert.Equal(t, breaker.StateOpen, snap.State)
				assert.EqualValues(t, 1, snap.Generation, "round %d: tripped exactly once", round)
				most = max(most, ran)
				var storeErrors, degraded uint64
				for _, r := range fleet {
					snap, err := r.breaker.Snapshot(ctx)
					require.NoError(t, err)
					storeErrors += snap.StoreErrors
					degraded += snap.DegradedCalls
				}
				t.Logf("round %d: %d calls ran (threshold %d, %d callers, bound %d); %d store errors, %d calls decided degraded",
					round, ran, threshold, callers, bound, storeErrors, degraded)
				if storeErrors > 0 {
					assert.Fail(t, "store errors", "round %d: %d, the first: %s", round, storeErrors, *firstErr.Load())
				}
			}
			t.Logf("%s: at most %d calls ran in %d rounds; threshold + (callers - 1) = %d, threshold + 2 x (callers - 1) = %d",
				be.name, most, rounds, threshold+callers-1, threshold+2*(callers-1))
		})
	}
}

// TestLocalViewPropagation measures, over many trips, the time from the
// failing call that trips the circuit on replica A to the first call that
// replica B rejects from its own view, without asking Redis.
//
// The replicas' call timeout is generous (2s, as in
// TestLocalViewFleetTripsOnce): with the default 50ms, a loaded machine
// timed A's admission out (2 runs in 20 under -race), A served the call
// degraded and tripped only its local fallback, and B, rightly, never
// heard of a trip. That is the degraded mode's contract, tested on its own;
// this test is about the trips that reach Redis.
func TestLocalViewPropagation(t *testing.T) {
	const trips = 50
	for _, be := range backends(t) {
		t.Run(be.name, func(t *testing.T) {
			ctx := context.Background()
			prefix := newPrefix(t)
			cfg := breaker.Config{FailureThreshold: 1, Timeout: time.Minute}
			a := newViewReplica(t, be, prefix, "propagation", cfg, redisstore.WithCallTimeout(2*time.Second))
			b := newViewReplica(t, be, prefix, "propagation", cfg, redisstore.WithCallTimeout(2*time.Second))
			a.warm(t)
			b.warm(t)
			ok := func(context.Context) error { return nil }
			var took []time.Duration
			for trip := range trips {
				// B spins on its view until it rejects a call.
				before := b.scripts.n.Load()
				seen := make(chan time.Time, 1)
				go func() {
					for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
						if err := b.breaker.Do(ctx, ok); errors.Is(err, breaker.ErrOpen) {
							seen <- time.Now()
							return
						}
						runtime.Gosched() // a busy caller, but one that lets the subscriber run
					}
					close(seen)
				}()
				start := time.Now()
				require.ErrorIs(t, a.breaker.Do(ctx, func(context.Context) error { return errBoom }), errBoom)
				at, heard := <-seen
				if !heard {
					snap, err := a.breaker.Snapshot(ctx)
					require.NoError(t, err)
					require.Fail(t, "B never rejected a call", "trip %d; A's store errors: %d (a call served degraded trips only A)", trip, snap.StoreErrors)
				}
				took = append(took, at.Sub(start))
				assert.Equal(t, before, b.scripts.n.Load(), "trip %d: B asked Redis", trip)

				// Reset, and wait until B admits again (it hears the reset).
				require.NoError(t, a.breaker.Reset(ctx))
				for deadline := time.Now().Add(10 * time.Second); b.breaker.Do(ctx, ok) != nil; {
					require.False(t, time.Now().After(deadline), "trip %d: B never saw the reset", trip)
				}
			}
			slices.Sort(took)
			p50, p99 := took[len(took)/2], took[(len(took)*99+99)/100-1]
			t.Logf("%s: trip on A to first local rejection on B, %d trips: p50 %v, p99 %v, max %v",
				be.name, trips, p50, p99, took[len(took)-1])
			assert.Less(t, p99, redisstore.DefaultMaxStaleness, "the trips reached B over pub/sub, not through staleness")
		})
	}
}

// TestLocalViewRoundTrips counts, from INFO commandstats on the servers,
// the script calls per Breaker call on each path with local views (views
// fresh, scripts cached). A view older than MaxStaleness (1s) is refreshed
// by the next admission, one script call, so a path may also make one
// script call per second it ran, plus one: on a cluster the measuring
// (INFO on every node, twice a call) takes most of that time.
func TestLocalViewRoundTrips(t *testing.T) {
	for _, d := range deployments(t) {
		t.Run(d.name, func(t *testing.T) {
			ctx := context.Background()
			prefix := newPrefix(t)
			be := backend{name: d.name, newClient: d.client}
			ok := func(context.Context) error { return nil }
			fail := func(context.Context) error { return errBoom }
			healthy := newViewReplica(t, be, prefix, "healthy", breaker.Config{FailureThreshold: 1000})
			windowed := newViewReplica(t, be, prefix, "windowed", breaker.Config{FailureThreshold: 1000, FailureWindow: time.Minute})
			failing := newViewReplica(t, be, prefix, "failing", breaker.Config{FailureThreshold: 1000})
			open := newViewReplica(t, be, prefix, "open", breaker.Config{FailureThreshold: 1, Timeout: time.Hour})
			probing := newViewReplica(t, be, prefix, "probing", breaker.Config{FailureThreshold: 1, Timeout: 20 * time.Millisecond})
			for _, r := range []*viewReplica{healthy, windowed, failing, open, probing} {
				r.warm(t)
				_ = r.breaker.Do(ctx, fail) // every script in the cache; open and probing trip
			}
			require.NoError(t, healthy.breaker.Reset(ctx)) // its failure's reset is not the subject here
			healthy.warm(t)
			const n = 1000
			for _, p := range []struct {
				name   string
				before func() // not measured
				call   func() error
				calls  int
				each   int64 // script calls per call, refreshes aside
			}{
				{"closed success (consecutive)", nil, func() error { return healthy.breaker.Do(ctx, ok) }, n, 0},
				{"closed success (window)", nil, func() error { return windowed.breaker.Do(ctx, ok) }, n, 0},
				{"closed failure", nil, func() error { return failing.breaker.Do(ctx, fail) }, 100, 1},
				{"open rejection", nil, func() error { return open.breaker.Do(ctx, ok) }, n, 0},
				{"half-open probe (fails)", func() { time.Sleep(30 * time.Millisecond) }, func() error { return probing.breaker.Do(ctx, fail) }, 20, 2},
			} {
				var scripts int64
				start := time.Now()
				for range p.calls {
					if p.before != nil {
						p.before()
					}
					before := commandCalls(t, d)
					_ = p.call()
					after := commandCalls(t, d)
					scripts += after["evalsha"] - before["evalsha"] + after["eval"] - before["eval"]
				}
				elapsed := time.Since(start)
				refreshes := int64(elapsed/redisstore.DefaultMaxStaleness) + 1
				t.Logf("%-30s %.3f script calls per call (%d calls in %v)", p.name, float64(scripts)/float64(p.calls), p.calls, elapsed.Round(time.Millisecond))
				assert.LessOrEqual(t, scripts, p.each*int64(p.calls)+refreshes, "%s: %d calls, %d a call and at most %d refreshes in %v",
					p.name, p.calls, p.each, refreshes, elapsed)
			}
		})
	}
}
