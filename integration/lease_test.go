//go:build integration

package integration

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tripline/tripline/breaker"
	"github.com/tripline/tripline/internal/redisserver"
	redisstore "github.com/tripline/tripline/store/redis"
)

// stall freezes srv for d with DEBUG SLEEP, sent on a client of its own,
// and returns once the server has stopped answering, and a channel closed
// when it answers again.
func stall(t *testing.T, addr string, d time.Duration) <-chan struct{} {
	t.Helper()
	sleeper := redis.NewClient(&redis.Options{Addr: addr, ReadTimeout: 10 * time.Second})
	prober := redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true, MaxRetries: -1})
	t.Cleanup(func() { _ = sleeper.Close(); _ = prober.Close() })
	require.NoError(t, prober.Ping(context.Background()).Err())
	woke := make(chan struct{})
	go func() {
		defer close(woke)
		assert.NoError(t, sleeper.Do(context.Background(), "DEBUG", "SLEEP", fmt.Sprintf("%.3f", d.Seconds())).Err())
	}()
	for deadline := time.Now().Add(5 * time.Second); ; {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Millisecond)
		err := prober.Ping(ctx).Err()
		cancel()
		if err != nil {
			return woke // the server is asleep
		}
		require.True(t, time.Now().Before(deadline), "DEBUG SLEEP did not stall the server")
	}
}

// TestStalledAdmissionLeaksNoLease is issue 17's leaked probe lease: the
// circuit is due for a probe, Redis stalls 150ms, replica A's admission
// times out at 50ms (A serves the call degraded) and Redis runs it anyway
// when it wakes. The lease it took is released when A settles the call, so
// replica B probes within a round trip or two of the stall's end (also
// after a stall much longer than the call timeout), not ProbeTimeout (8s)
// later; and the move to half-open is
// reported once: by A if its late admission made it, or by B if A's settle
// came first and the late admission changed nothing.
func TestStalledAdmissionLeaksNoLease(t *testing.T) {
	srv := redisserver.StartSingle(t)
	prefix := newPrefix(t)
	const probeTimeout = 8 * time.Second
	cfg := breaker.Config{FailureThreshold: 1, Timeout: 100 * time.Millisecond, HalfOpenMaxCalls: 1,
		SuccessThreshold: 1, ProbeTimeout: probeTimeout}
	for _, tc := range []struct {
		ctxTimeouts bool
		stall       time.Duration
	}{{true, 150 * time.Millisecond}, {false, 150 * time.Millisecond}, {true, 1200 * time.Millisecond}} {
		ctxTimeouts := tc.ctxTimeouts
		t.Run(fmt.Sprintf("ContextTimeoutEnabled=%v,stall=%v", ctxTimeouts, tc.stall), func(t *testing.T) {
			name := fmt.Sprintf("svc-%v-%v", ctxTimeouts, tc.stall)
			newStore := func() *redisstore.Store {
				c := redis.NewClient(&redis.Options{Addr: srv.Addr(), ContextTimeoutEnabled: ctxTimeouts, MaxRetries: -1})
				s := redisstore.New(c, redisstore.WithPrefix(prefix), redisstore.WithStrict())
				t.Cleanup(func() { assert.NoError(t, s.Close()); _ = c.Close() })
				return s
			}
			changes := make(chan string, 8)
			report := func(who string) func(string, breaker.State, breaker.State) {
				return func(_ string, from, to breaker.State) { changes <- who + ": " + from.String() + " -> " + to.String() }
			}
			ca := cfg
			ca.Store = newStore()
			ca.OnStateChange = report("A")
			a, err := breaker.New(name, ca)
			require.NoError(t, err)
			cb := cfg
			cb.Store = newStore()
			cb.OnStateChange = report("B")
			b, err := breaker.New(name, cb)
			require.NoError(t, err)
			ctx := context.Background()

			// A's connection is up (a new one would spend the stall in its
			// handshake, and never send the admission).
			require.NoError(t, a.Do(ctx, func(context.Context) error { return nil }))
			require.Error(t, b.Do(ctx, func(context.Context) error { return assert.AnError }), "B trips the circuit")
			snap, err := b.Snapshot(ctx)
			require.NoError(t, err)
			require.Equal(t, breaker.StateOpen, snap.State)
			waitRedisTime(t, srv.Addr(), snap.RetryAt)

			woke := stall(t, srv.Addr(), tc.stall)
			ran := false
			require.NoError(t, a.Do(ctx, func(context.Context) error { ran = true; return nil }))
			require.True(t, ran, "A's admission timed out: the call is served degraded")
			<-woke

			start := time.Now()
			for {
				err := b.Do(ctx, func(context.Context) error { return nil })
				if err == nil {
					break
				}
				require.ErrorIs(t, err, breaker.ErrOpen)
				// A settle waits for Redis behind the call it settles, so the
				// lease goes as soon as the server wakes; the bound leaves
				// room for a loaded machine, far below ProbeTimeout.
				require.Less(t, time.Since(start), time.Second,
					"B is still rejected: the lost admission's lease is held (ProbeTimeout is %v)", probeTimeout)
				time.Sleep(5 * time.Millisecond) // Redis TIME decides: poll
			}
			t.Logf("B probed %v after the stall ended", time.Since(start))

			require.Equal(t, "B: closed -> open", <-changes)
			var reports []string
			for deadline := time.Now().Add(5 * time.Second); len(reports) < 2; {
				select {
				case r := <-changes:
					reports = append(reports, r)
				case <-time.After(time.Until(deadline)):
					require.Fail(t, "missing reports", "%q", reports)
				}
			}
			assert.Contains(t, [][]string{
				{"A: open -> half-open", "B: half-open -> closed"},
				{"B: open -> half-open", "B: half-open -> closed"},
			}, reports, "the move to half-open is reported once")
			assert.Empty(t, changes, "nothing more")
			runtime.KeepAlive(a) // a Breaker no longer reachable is not told
		})
	}
}

// waitRedisTime waits until the server's clock reaches at.
func waitRedisTime(t *testing.T, addr string, at time.Time) {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	for deadline := time.Now().Add(5 * time.Second); ; {
		now, err := c.Time(context.Background()).Result()
		require.NoError(t, err)
		if !now.Before(at) {
			return
		}
		require.True(t, time.Now().Before(deadline), "Redis time did not reach %v", at)
		time.Sleep(time.Millisecond)
	}
}
