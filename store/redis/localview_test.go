package redisstore_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/tripline/tripline/breaker"
	redisstore "github.com/tripline/tripline/store/redis"
)

// eventually polls cond until it holds, or fails the test after 5s. It is
// for what the store does on its own goroutines (pub/sub delivery, the
// background flush); a test's own clock moves are never waited for.
func eventually(t testing.TB, cond func() bool, what string) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			require.FailNow(t, "not within 5s: "+what)
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// live waits until s's subscription is live.
func live(t testing.TB, s *redisstore.Store) {
	t.Helper()
	eventually(t, func() bool { return s.Epoch()%2 == 1 }, "the subscription is live")
}

// warm makes s hold a fresh view of name: its subscription is live, and an
// admission since then has refreshed the view from Redis.
func warm(t testing.TB, s *redisstore.Store, name string, p breaker.Policy) {
	t.Helper()
	ctx := context.Background()
	_, err := s.Admit(ctx, name, p) // the first call starts the subscription
	require.NoError(t, err)
	live(t, s)
	_, err = s.Admit(ctx, name, p)
	require.NoError(t, err)
	require.True(t, s.ViewOf(name).Fresh, "a view refreshed while the subscription is live is fresh")
	// Load the record script into the server's cache (a success on a
	// circuit of its own changes nothing), so counts see no NOSCRIPT.
	_, err = s.Record(ctx, "warm-up "+name, p, breaker.Outcome{Kind: breaker.OutcomeSuccess})
	require.NoError(t, err)
}

// countedStore is a store on its own client, whose round trips to Redis
// (script calls, pipelines; not the subscription) are counted.
func (f *fakeRedis) countedStore(t *testing.T, opts ...redisstore.Option) (*redisstore.Store, *countHook) {
	t.Helper()
	c := f.client(t)
	h := newCountHook()
	c.AddHook(h)
	return f.storeOn(t, c, opts...), h
}

func admitted(t *testing.T, s breaker.Store, name string, p breaker.Policy) breaker.Admission {
	t.Helper()
	a, err := s.Admit(context.Background(), name, p)
	require.NoError(t, err)
	return a
}

func recorded(t *testing.T, s breaker.Store, name string, p breaker.Policy, a breaker.Admission, kind breaker.OutcomeKind) breaker.Result {
	t.Helper()
	r, err := s.Record(context.Background(), name, p, breaker.Outcome{Kind: kind, Generation: a.Generation, Probe: a.Probe})
	require.NoError(t, err)
	return r
}

// call admits one call on s, requires it to run, and records kind.
func call(t *testing.T, s breaker.Store, name string, p breaker.Policy, kind breaker.OutcomeKind) breaker.Result {
	t.Helper()
	a := admitted(t, s, name, p)
	require.True(t, a.Allowed, "admission: %+v", a)
	return recorded(t, s, name, p, a, kind)
}

// TestLocalViewSeesTripElsewhere: a trip made on replica A reaches replica
// B over pub/sub, and B rejects calls without asking Redis.
func TestLocalViewSeesTripElsewhere(t *testing.T) {
	f := newFakeRedis(t)
	a := f.store(t)
	b, hb := f.countedStore(t)
	p := policy(3)
	warm(t, b, "svc", p)
	hb.take()

	for range 3 {
		call(t, a, "svc", p, breaker.OutcomeFailure)
	}
	eventually(t, func() bool { return b.ViewOf("svc").State == breaker.StateOpen }, "B hears of the trip")
	rej := admitted(t, b, "svc", p)
	assert.False(t, rej.Allowed)
	assert.Equal(t, breaker.StateOpen, rej.State)
	assert.Equal(t, uint64(1), rej.Generation)
	assert.Equal(t, p.Timeout, rej.RetryAfter, "the local clock has not moved since B heard of the trip")
	trips, cmds := hb.take()
	assert.Zero(t, trips, "B asked Redis: %v", cmds)
}

// TestLocalViewCommands counts the Redis round trips per call on each path
// of a Breaker on a store with local views (warm script cache, fresh view).
func TestLocalViewCommands(t *testing.T) {
	ctx := context.Background()
	ok := func(context.Context) error { return nil }
	boom := errors.New("boom")
	fail := func(context.Context) error { return boom }
	newBreaker := func(t *testing.T, s breaker.Store, name string, cfg breaker.Config) *breaker.Breaker {
		t.Helper()
		cfg.Store = s
		b, err := breaker.New(name, cfg)
		require.NoError(t, err)
		return b
	}
	const n = 10_000

	t.Run("closed success", func(t *testing.T) {
		for _, mode := range []struct {
			name   string
			window time.Duration
		}{{"consecutive", 0}, {"window", time.Minute}} {
			t.Run(mode.name, func(t *testing.T) {
				f := newFakeRedis(t)
				s, h := f.countedStore(t)
				b := newBreaker(t, s, "svc", breaker.Config{FailureThreshold: 5, FailureWindow: mode.window})
				require.NoError(t, b.Do(ctx, ok))
				live(t, s)
				require.NoError(t, b.Do(ctx, ok)) // refreshes the view in the live epoch
				h.take()
				for range n {
					require.NoError(t, b.Do(ctx, ok))
				}
				trips, cmds := h.take()
				t.Logf("%d closed successes: %d round trips %v (%.4f per call)", n, trips, cmds, float64(trips)/n)
				assert.LessOrEqual(t, float64(trips)/n, 0.01, "%v", cmds)
				assert.Zero(t, trips, "no round trip while the view is fresh: %v", cmds)
			})
		}
	})

	t.Run("failure", func(t *testing.T) {
		f := newFakeRedis(t)
		s, h := f.countedStore(t)
		b := newBreaker(t, s, "svc", breaker.Config{FailureThreshold: 1000})
		warm(t, s, "svc", b.Policy())
		h.take()
		const failures = 200
		for range failures {
			require.ErrorIs(t, b.Do(ctx, fail), boom)
		}
		trips, cmds := h.take()
		t.Logf("%d failures: %d round trips %v", failures, trips, cmds)
		assert.Equal(t, failures, trips, "one round trip per failed call: %v", cmds)
		assert.Equal(t, failures, cmds["evalsha"], "each one script call: %v", cmds)
	})

	t.Run("open rejection and half-open probe", func(t *testing.T) {
		f := newFakeRedis(t)
		s, h := f.countedStore(t)
		b := newBreaker(t, s, "svc", breaker.Config{FailureThreshold: 1, Timeout: time.Second})
		warm(t, s, "svc", b.Policy())
		h.take()
		require.ErrorIs(t, b.Do(ctx, fail), boom)
		trips, _ := h.take()
		assert.Equal(t, 1, trips, "the tripping failure")
		for range n {
			require.ErrorIs(t, b.Do(ctx, ok), breaker.ErrOpen)
		}
		trips, cmds := h.take()
		t.Logf("%d open rejections: %d round trips %v", n, trips, cmds)
		assert.Zero(t, trips, "open rejections are local: %v", cmds)

		f.Advance(time.Second)
		a := admitted(t, s, "svc", b.Policy())
		require.True(t, a.Allowed, "the probe: %+v", a)
		require.Equal(t, breaker.StateHalfOpen, a.State)
		trips, cmds = h.take()
		assert.Equal(t, 1, trips, "a half-open admission leases its probe in Redis: %v", cmds)
		rej := admitted(t, s, "svc", b.Policy())
		assert.False(t, rej.Allowed, "HalfOpenMaxCalls 1: %+v", rej)
		trips, _ = h.take()
		assert.Equal(t, 1, trips, "a half-open rejection asks Redis too (a slot may be free)")
		r := recorded(t, s, "svc", b.Policy(), a, breaker.OutcomeSuccess)
		assert.Equal(t, breaker.StateClosed, r.State)
		trips, _ = h.take()
		assert.Equal(t, 1, trips, "the probe's outcome")
		assert.True(t, admitted(t, s, "svc", b.Policy()).Allowed)
		trips, _ = h.take()
		assert.Zero(t, trips, "closed again: the probe's reply refreshed the view")
	})

	t.Run("strict", func(t *testing.T) {
		f := newFakeRedis(t)
		s, h := f.countedStore(t, redisstore.WithStrict())
		b := newBreaker(t, s, "svc", breaker.Config{FailureThreshold: 5})
		require.NoError(t, b.Do(ctx, ok))
		h.take()
		const calls = 100
		for range calls {
			require.NoError(t, b.Do(ctx, ok))
		}
		trips, cmds := h.take()
		assert.Equal(t, calls, trips, "strict: every admission asks Redis; a success with nothing to reset is not sent: %v", cmds)
		assert.Zero(t, s.Epoch(), "strict: no subscription")
	})
}

// TestCoalescedResets: in consecutive mode, many successes after a failure
// send one reset (per flush interval), in the background.
func TestCoalescedResets(t *testing.T) {
	f := newFakeRedis(t)
	// No staleness refresh may count as a write here: a starved CI machine
	// can take longer than the default 1s between the failure and the end.
	s, h := f.countedStore(t, redisstore.WithMaxStaleness(time.Hour))
	p := policy(3)
	warm(t, s, "svc", p)
	call(t, s, "svc", p, breaker.OutcomeFailure)
	h.take()
	hash := s.Keys("svc")[0]
	require.Equal(t, "1", f.HGet(hash, "f"))

	start := time.Now()
	const n = 10_000
	for range n {
		call(t, s, "svc", p, breaker.OutcomeSuccess)
	}
	elapsed := time.Since(start)
	eventually(t, func() bool { return f.HGet(hash, "f") == "0" && !s.ViewOf("svc").Failures }, "the reset lands")
	trips, cmds := h.take()
	t.Logf("%d successes in %v after a failure: %d round trips %v", n, elapsed, trips, cmds)
	// One write per flush interval (50ms) at most, plus one.
	assert.LessOrEqual(t, trips, int(elapsed/redisstore.DefaultFlushInterval)+2, "%v", cmds)
	assert.LessOrEqual(t, trips, 5, "a handful of writes: %v", cmds)
	assert.Positive(t, trips, "the reset is sent")

	// Nothing is pending now: more successes send nothing.
	for range n {
		call(t, s, "svc", p, breaker.OutcomeSuccess)
	}
	trips, cmds = h.take()
	assert.Zero(t, trips, "%v", cmds)
}

// TestResetFirst: a failure sent while this replica holds a reset back
// carries it ("reset first"), so consecutive counting is exact for one
// replica: fail, succeed, fail, fail with threshold 3 does not trip.
func TestResetFirst(t *testing.T) {
	for _, tc := range []struct {
		name  string
		flush time.Duration
	}{
		{"reset carried by the failure", time.Hour}, // the flush never comes first
		{"reset flushed first", time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeRedis(t)
			s, h := f.countedStore(t, redisstore.WithFlushInterval(tc.flush))
			hash := s.Keys("svc")[0]
			p := policy(3)
			warm(t, s, "svc", p)
			h.take()

			call(t, s, "svc", p, breaker.OutcomeFailure)
			call(t, s, "svc", p, breaker.OutcomeSuccess)
			if tc.flush == time.Millisecond {
				eventually(t, func() bool { return f.HGet(hash, "f") == "0" }, "the reset lands")
			} else {
				assert.Equal(t, "1", f.HGet(hash, "f"), "the reset is held back")
			}
			for range 2 {
				r := call(t, s, "svc", p, breaker.OutcomeFailure)
				assert.Equal(t, breaker.StateClosed, r.State, "fail, succeed, fail, fail: no trip")
			}
			assert.Equal(t, "2", f.HGet(hash, "f"))
			trips, cmds := h.take()
			if tc.flush == time.Hour {
				assert.Equal(t, 3, trips, "three failures, each one call; no separate reset: %v", cmds)
			}
			r := call(t, s, "svc", p, breaker.OutcomeFailure)
			assert.Equal(t, breaker.Transition{From: breaker.StateClosed, To: breaker.StateOpen, Generation: 1}, r.Transition,
				"the third failure in a row trips")
		})
	}
}

// TestResetSentByLoad: Load sends a held-back reset first, so it reads this
// replica's outcomes.
func TestResetSentByLoad(t *testing.T) {
	f := newFakeRedis(t)
	s := f.store(t, redisstore.WithFlushInterval(time.Hour))
	p := policy(3)
	warm(t, s, "svc", p)
	call(t, s, "svc", p, breaker.OutcomeFailure)
	call(t, s, "svc", p, breaker.OutcomeSuccess)
	assert.Equal(t, "1", f.HGet(s.Keys("svc")[0], "f"), "held back")
	snap, err := s.Load(context.Background(), "svc")
	require.NoError(t, err)
	assert.Zero(t, snap.Failures)
}

// TestStalenessBound: with the subscription's messages lost, a replica
// still sees a trip made elsewhere once its view is older than
// WithMaxStaleness: that admission asks Redis.
func TestStalenessBound(t *testing.T) {
	f := newFakeRedis(t)
	a := f.store(t)
	b, hb := f.countedStore(t, redisstore.WithMaxStaleness(200*time.Millisecond))
	p := policy(2)
	warm(t, b, "svc", p)
	b.DropEvents(true)
	for range 2 {
		call(t, a, "svc", p, breaker.OutcomeFailure)
	}
	// The trip's message is lost. The watcher below proves it was
	// published, and that B's subscription delivered (and dropped) it.
	hb.take()
	f.AdvanceLocal(199 * time.Millisecond)
	assert.True(t, admitted(t, b, "svc", p).Allowed, "a view younger than the bound still decides")
	trips, _ := hb.take()
	assert.Zero(t, trips)

	f.AdvanceLocal(time.Millisecond)
	rej := admitted(t, b, "svc", p)
	assert.False(t, rej.Allowed, "a view as old as the bound asks Redis: %+v", rej)
	assert.Equal(t, breaker.StateOpen, rej.State)
	trips, _ = hb.take()
	assert.Equal(t, 1, trips)
	assert.False(t, admitted(t, b, "svc", p).Allowed)
	trips, _ = hb.take()
	assert.Zero(t, trips, "the reply refreshed the view")
}

// connKiller dials through to miniredis and can cut every connection it
// made, as a network fault or a CLIENT KILL would.
type connKiller struct {
	mu    sync.Mutex
	conns []net.Conn
}

func (k *connKiller) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	k.mu.Lock()
	k.conns = append(k.conns, c)
	k.mu.Unlock()
	return c, nil
}

func (k *connKiller) killAll() {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, c := range k.conns {
		_ = c.Close()
	}
	k.conns = nil
}

// TestReconnectResync: a transition published while a replica's
// subscription is down is lost; when the subscription comes back (go-redis
// resubscribes on its own), every view of the replica is stale, so its
// next admission asks Redis and sees the trip, long before the staleness
// bound.
func TestReconnectResync(t *testing.T) {
	f := newFakeRedis(t)
	a := f.store(t)
	k := &connKiller{}
	c := redis.NewClient(&redis.Options{Addr: f.Addr(), Dialer: k.dial})
	t.Cleanup(func() { _ = c.Close() })
	h := newCountHook()
	c.AddHook(h)
	b := f.storeOn(t, c)
	p := policy(2)
	warm(t, b, "svc", p)
	before := b.Epoch()

	b.DropEvents(true) // whatever arrives before the cut is lost too
	for range 2 {
		call(t, a, "svc", p, breaker.OutcomeFailure)
	}
	k.killAll()
	eventually(t, func() bool { e := b.Epoch(); return e%2 == 1 && e > before }, "B resubscribes")
	b.DropEvents(false)
	assert.False(t, b.ViewOf("svc").Fresh, "every view is stale after a reconnect")
	h.take()
	rej := admitted(t, b, "svc", p)
	assert.False(t, rej.Allowed, "the first admission after the reconnect asks Redis: %+v", rej)
	_, cmds := h.take()
	assert.Equal(t, 1, cmds["evalsha"]+cmds["eval"], "one script call (and the new connection's handshake): %v", cmds)
}

// TestOutageWithLocalView: when Redis goes away, the subscription notices
// at once and every view goes stale, so calls ask Redis and fail (and a
// Breaker goes degraded) instead of deciding on an old view.
func TestOutageWithLocalView(t *testing.T) {
	f := newFakeRedis(t)
	c := redis.NewClient(&redis.Options{Addr: f.Addr(), MaxRetries: -1, DialTimeout: 100 * time.Millisecond})
	t.Cleanup(func() { _ = c.Close() })
	s := f.storeOn(t, c)
	p := policy(2)
	warm(t, s, "svc", p)
	f.Close()
	eventually(t, func() bool {
		_, err := s.Admit(context.Background(), "svc", p)
		return err != nil
	}, "admissions fail once the subscription is lost")
	assert.False(t, s.ViewOf("svc").Fresh)
}

// TestCallTimeout: against a server that accepts connections and never
// answers, every call of the store fails after the call timeout (50ms by
// default) instead of hanging, and a Breaker serves the call degraded.
// It holds whatever the client's options: go-redis lets a ctx deadline
// bound the network only with ContextTimeoutEnabled, and the store bounds
// the round trips of a client made without it itself.
func TestCallTimeout(t *testing.T) {
	for _, ctxTimeouts := range []bool{true, false} {
		t.Run(fmt.Sprintf("ContextTimeoutEnabled=%v", ctxTimeouts), func(t *testing.T) {
			checkCallTimeout(t, ctxTimeouts)
		})
	}
}

func checkCallTimeout(t *testing.T, ctxTimeouts bool) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var (
		mu    sync.Mutex
		conns []net.Conn
	)
	accepted := make(chan struct{})
	go func() {
		defer close(accepted)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c) // held open, never read, never answered
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		<-accepted
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	client := redis.NewClient(&redis.Options{Addr: ln.Addr().String(), ContextTimeoutEnabled: ctxTimeouts})
	t.Cleanup(func() { _ = client.Close() })
	s := redisstore.New(client)
	t.Cleanup(func() { assert.NoError(t, s.Close()) })
	ctx := context.Background()
	p := policy(2)

	const most = 500 * time.Millisecond // 50ms, with room for a loaded machine
	for _, c := range []struct {
		op  string
		run func() error
	}{
		{"admit", func() error { _, err := s.Admit(ctx, "svc", p); return err }},
		{"record", func() error {
			_, err := s.Record(ctx, "svc", p, breaker.Outcome{Kind: breaker.OutcomeFailure})
			return err
		}},
		{"apply", func() error { _, err := s.Apply(ctx, "svc", breaker.Command{Kind: breaker.CommandReset}); return err }},
		{"load", func() error { _, err := s.Load(ctx, "svc"); return err }},
		{"list", func() error { _, err := s.List(ctx); return err }},
		{"watch", func() error { _, err := s.Watch(ctx); return err }},
	} {
		start := time.Now()
		err := c.run()
		took := time.Since(start)
		require.Error(t, err, c.op)
		assert.ErrorIs(t, err, context.DeadlineExceeded, c.op)
		assert.Less(t, took, most, "%s took %v", c.op, took)
		assert.GreaterOrEqual(t, took, redisstore.DefaultCallTimeout, "%s took %v", c.op, took)
		if c.op != "watch" {
			assert.ErrorContains(t, err, "call timeout (50ms)", c.op)
		}
		t.Logf("%-6s failed after %v: %v", c.op, took, err)
	}

	b, err := breaker.New("svc", breaker.Config{Store: s, FailureThreshold: 2})
	require.NoError(t, err)
	ran := false
	start := time.Now()
	require.NoError(t, b.Do(ctx, func(context.Context) error { ran = true; return nil }))
	assert.True(t, ran, "FallbackLocal runs the call")
	assert.Less(t, time.Since(start), most)
	snap, err := b.Snapshot(ctx)
	require.NoError(t, err)
	assert.True(t, snap.Degraded)
}

// TestClose: Close sends the resets held back, stops the subscription and
// leaves no goroutine; the store then answers as a strict one.
func TestClose(t *testing.T) {
	f := newFakeRedis(t)
	c := f.client(t)
	h := newCountHook()
	c.AddHook(h)
	others := []goleak.Option{
		goleak.IgnoreCurrent(),
		// miniredis serving the client's connections, made as it uses them.
		goleak.IgnoreAnyFunction("github.com/alicebob/miniredis/v2/server.(*Server).servePeer"),
		goleak.IgnoreAnyFunction("github.com/alicebob/miniredis/v2/server.(*Server).servePeer.func2"),
	}
	s := redisstore.New(c, redisstore.WithLocalClock(f.Local), redisstore.WithCallTimeout(testCallTimeout),
		redisstore.WithFlushInterval(time.Hour))
	p := policy(3)
	warm(t, s, "svc", p)
	call(t, s, "svc", p, breaker.OutcomeFailure)
	call(t, s, "svc", p, breaker.OutcomeSuccess)
	hash := s.Keys("svc")[0]
	require.Equal(t, "1", f.HGet(hash, "f"), "the reset is held back")

	require.NoError(t, s.Close())
	assert.Equal(t, "0", f.HGet(hash, "f"), "Close sends the held-back reset")
	goleak.VerifyNone(t, others...)
	require.NoError(t, s.Close(), "a second Close does nothing")

	h.take()
	a := admitted(t, s, "svc", p)
	require.True(t, a.Allowed)
	r := recorded(t, s, "svc", p, a, breaker.OutcomeSuccess)
	assert.Equal(t, breaker.StateClosed, r.State)
	trips, _ := h.take()
	assert.Equal(t, 2, trips, "a closed store asks Redis on every call")
	goleak.VerifyNone(t, others...)
}

// TestResetQueuedTwice: a failure takes the queued reset with it, and a
// success queues another before the flush, so the circuit is queued twice;
// the flush must take it once (it locked it twice and hung: found by the
// fault suite).
func TestResetQueuedTwice(t *testing.T) {
	f := newFakeRedis(t)
	s := redisstore.New(f.client(t), redisstore.WithLocalClock(f.Local), redisstore.WithCallTimeout(testCallTimeout),
		redisstore.WithFlushInterval(time.Hour))
	p := policy(5)
	warm(t, s, "svc", p)
	call(t, s, "svc", p, breaker.OutcomeFailure)
	call(t, s, "svc", p, breaker.OutcomeSuccess) // queued
	call(t, s, "svc", p, breaker.OutcomeFailure) // takes the reset with it
	call(t, s, "svc", p, breaker.OutcomeSuccess) // queued again
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	select {
	case err := <-closed:
		require.NoError(t, err)
	case <-time.After(5 * time.Second):
		require.FailNow(t, "Close (its flush) hung")
	}
	assert.Equal(t, "0", f.HGet(s.Keys("svc")[0], "f"), "the second reset was sent")
}

// TestFleetTripsOnceLocal: with every call failing, replicas x goroutines
// callers on local views run at most threshold + 2 x (callers - 1) calls
// fleet-wide, and the circuit trips exactly once.
func TestFleetTripsOnceLocal(t *testing.T) {
	const replicas, perReplica, threshold = 4, 8, 5
	f := newFakeRedis(t)
	var (
		ran     atomic.Int64
		changes atomic.Int64
		start   = make(chan struct{})
		wg      sync.WaitGroup
	)
	boom := errors.New("boom")
	for range replicas {
		s := f.store(t)
		b, err := breaker.New("fleet", breaker.Config{
			Store:            s,
			FailureThreshold: threshold,
			Timeout:          time.Hour,
			OnStateChange:    func(string, breaker.State, breaker.State) { changes.Add(1) },
		})
		require.NoError(t, err)
		warm(t, s, "fleet", b.Policy())
		for range perReplica {
			wg.Go(func() {
				<-start
				for range 50 {
					err := b.Do(context.Background(), func(context.Context) error { ran.Add(1); return boom })
					if errors.Is(err, breaker.ErrOpen) {
						return
					}
				}
			})
		}
	}
	close(start)
	wg.Wait()
	callers := int64(replicas * perReplica)
	t.Logf("%d callers, threshold %d: %d calls ran (bound %d), %d state changes", callers, threshold, ran.Load(),
		threshold+2*(callers-1), changes.Load())
	assert.Equal(t, int64(1), changes.Load(), "the circuit trips exactly once")
	assert.LessOrEqual(t, ran.Load(), threshold+2*(callers-1))
	assert.GreaterOrEqual(t, ran.Load(), int64(threshold))
}

// TestHotPathAllocs: a closed-state admission and success answered from a
// fresh view allocate nothing, in both counting modes.
func TestHotPathAllocs(t *testing.T) {
	f := newFakeRedis(t)
	s := f.store(t)
	ctx := context.Background()
	for _, window := range []time.Duration{0, time.Minute} {
		p := policy(3)
		p.FailureWindow = window
		warm(t, s, "svc", p)
		allocs := testing.AllocsPerRun(1000, func() {
			a, err := s.Admit(ctx, "svc", p)
			if err != nil || !a.Allowed {
				panic("not admitted")
			}
			if _, err := s.Record(ctx, "svc", p, breaker.Outcome{Kind: breaker.OutcomeSuccess, Generation: a.Generation}); err != nil {
				panic(err)
			}
		})
		assert.Zero(t, allocs, "window %v", window)
	}
}

// BenchmarkLocalViewClosedSuccess is a closed-state admission and success
// answered from a fresh view, from many goroutines. The store reads the real
// local clock (the fake one takes a lock); once a second (the staleness
// bound) one admission refreshes the view from Redis.
func BenchmarkLocalViewClosedSuccess(b *testing.B) {
	f := newFakeRedis(b)
	s := redisstore.New(f.client(b), redisstore.WithCallTimeout(testCallTimeout))
	b.Cleanup(func() { _ = s.Close() })
	ctx := context.Background()
	p := policy(3)
	warm(b, s, "svc", p)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			a, err := s.Admit(ctx, "svc", p)
			if err != nil || !a.Allowed {
				b.Error("not admitted")
				return
			}
			if _, err := s.Record(ctx, "svc", p, breaker.Outcome{Kind: breaker.OutcomeSuccess, Generation: a.Generation}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
