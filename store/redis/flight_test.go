package redisstore_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tripline/tripline/breaker"
	"github.com/tripline/tripline/scripts/lua"
	redisstore "github.com/tripline/tripline/store/redis"
)

// admitGate, once armed, holds the admit scripts a client sends until it
// is released, and counts them: sent, and the most in flight at once. With
// fail set, the first admit fails with it instead (once released).
type admitGate struct {
	sha   string
	armed atomic.Bool
	open  chan struct{}
	once  sync.Once
	fail  error

	mu             sync.Mutex
	sent, inFlight int
	peak           int
	failed         bool
}

func newAdmitGate() *admitGate {
	return &admitGate{sha: redis.NewScript(lua.Admit).Hash(), open: make(chan struct{})}
}

func (g *admitGate) isAdmit(cmd redis.Cmder) bool {
	args := cmd.Args()
	return len(args) > 1 && ((cmd.Name() == "evalsha" && args[1] == g.sha) || (cmd.Name() == "eval" && args[1] == lua.Admit))
}

func (g *admitGate) DialHook(next redis.DialHook) redis.DialHook { return next }

func (g *admitGate) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if !g.armed.Load() || !g.isAdmit(cmd) {
			return next(ctx, cmd)
		}
		g.mu.Lock()
		g.sent++
		g.inFlight++
		g.peak = max(g.peak, g.inFlight)
		g.mu.Unlock()
		defer func() {
			g.mu.Lock()
			g.inFlight--
			g.mu.Unlock()
		}()
		select {
		case <-g.open:
		case <-ctx.Done():
			cmd.SetErr(ctx.Err())
			return ctx.Err()
		}
		g.mu.Lock()
		fail := g.fail != nil && !g.failed
		g.failed = g.failed || fail
		g.mu.Unlock()
		if fail {
			cmd.SetErr(g.fail)
			return g.fail
		}
		return next(ctx, cmd)
	}
}

func (g *admitGate) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// release lets every admit through, from now on.
func (g *admitGate) release() { g.once.Do(func() { close(g.open) }) }

// counts returns the admits sent and the most in flight at once.
func (g *admitGate) counts() (sent, peak int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.sent, g.peak
}

// herdRig is two replicas of a circuit on one fake Redis: a, and b, whose
// admit scripts go through a gate.
type herdRig struct {
	f    *fakeRedis
	a, b *redisstore.Store
	gate *admitGate
	p    breaker.Policy
}

const herdName = "svc"

// newHerdRig makes the replicas, b strict or on local views; b holds a
// fresh view of the circuit (local views), and its scripts are loaded.
func newHerdRig(t *testing.T, p breaker.Policy, strict bool) *herdRig {
	t.Helper()
	f := newFakeRedis(t)
	g := newAdmitGate()
	t.Cleanup(g.release) // a test that failed half way leaves no admission held
	c := f.client(t)
	c.AddHook(g)
	var opts []redisstore.Option
	if strict {
		opts = append(opts, redisstore.WithStrict())
	}
	r := &herdRig{f: f, a: f.store(t), b: f.storeOn(t, c, opts...), gate: g, p: p}
	if strict {
		admitted(t, r.b, herdName, p)
	} else {
		warm(t, r.b, herdName, p)
	}
	g.armed.Store(true)
	return r
}

// trip trips the circuit on a, and waits until b hears of it.
func (r *herdRig) trip(t *testing.T) {
	t.Helper()
	for range r.p.FailureThreshold {
		call(t, r.a, herdName, r.p, breaker.OutcomeFailure)
	}
	eventually(t, func() bool { return r.b.ViewOf(herdName).State == breaker.StateOpen }, "b hears of the trip")
}

// admitResult is one admission's answer.
type admitResult struct {
	a   breaker.Admission
	err error
}

// herd sends n admissions of the circuit on b at once, with the gate
// closed: the first, then, once it is held at the gate, the other n-1;
// once they wait for it (or, with wait false, once all n are held at the
// gate), it opens the gate and returns every answer.
func (r *herdRig) herd(t *testing.T, n int, wait bool) []admitResult {
	t.Helper()
	out := make([]admitResult, n)
	var wg sync.WaitGroup
	admit := func(i int) {
		wg.Go(func() {
			a, err := r.b.Admit(context.Background(), herdName, r.p)
			out[i] = admitResult{a, err}
		})
	}
	admit(0)
	eventually(t, func() bool { sent, _ := r.gate.counts(); return sent == 1 }, "the first admission is sent")
	for i := 1; i < n; i++ {
		admit(i)
	}
	if wait {
		eventually(t, func() bool { return r.b.FlightWaiters(herdName) == n-1 }, "the others wait for it")
	} else {
		eventually(t, func() bool { sent, _ := r.gate.counts(); return sent == n }, "every admission is sent")
	}
	r.gate.release()
	wg.Wait()
	return out
}

// TestAdmitSingleFlight (issue 17, item 3): while an admission of a
// circuit is in flight on a store, the store's other admissions of it wait
// for its reply and decide from it: a closed circuit admits them all; a
// rejection (open, or half-open with every slot held) rejects them all,
// with the time left; a circuit due for a probe gets one admission at a
// time, so each probe lease comes from Redis and the limit holds.
func TestAdmitSingleFlight(t *testing.T) {
	const n = 8
	p1 := policy(1)
	p1.HalfOpenMaxCalls = 1
	for _, tc := range []struct {
		name  string
		p     breaker.Policy
		setup func(t *testing.T, r *herdRig)
		// want: how many are admitted; the rest are rejected in state
		// with retryAfter; sent: admit scripts of b (0: not fixed).
		admitted    int
		state       breaker.State
		retryAfter  time.Duration
		sent        int
		transitions int // reported, to one caller each
	}{
		{
			name:     "closed, view stale",
			p:        policy(1),
			setup:    func(t *testing.T, r *herdRig) { r.f.AdvanceLocal(redisstore.DefaultMaxStaleness) },
			admitted: n,
			sent:     1,
		},
		{
			name: "open, view stale",
			p:    policy(1),
			setup: func(t *testing.T, r *herdRig) {
				r.trip(t)
				r.f.AdvanceLocal(redisstore.DefaultMaxStaleness) // Redis time stands still
			},
			state:      breaker.StateOpen,
			retryAfter: time.Second, // the policy's Timeout: no Redis time has passed
			sent:       1,
		},
		{
			name: "half-open, every slot held elsewhere",
			p:    p1,
			setup: func(t *testing.T, r *herdRig) {
				r.trip(t)
				r.f.Advance(r.p.Timeout)
				require.True(t, admitted(t, r.a, herdName, r.p).Allowed, "a leases the only probe")
				eventually(t, func() bool { return r.b.ViewOf(herdName).State == breaker.StateHalfOpen }, "b hears of it")
			},
			state:      breaker.StateHalfOpen,
			retryAfter: 10 * time.Second, // the policy's ProbeTimeout: a's lease lapses then
			sent:       1,
		},
		{
			name: "due for a probe",
			p:    policy(1), // 2 probes at once
			setup: func(t *testing.T, r *herdRig) {
				r.trip(t)
				r.f.Advance(r.p.Timeout)
			},
			admitted:    2,
			state:       breaker.StateHalfOpen,
			retryAfter:  10 * time.Second,
			transitions: 1, // open -> half-open, to the first
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newHerdRig(t, tc.p, false)
			tc.setup(t, r)
			got := r.herd(t, n, true)

			var (
				allowed, transitions int
				probes               = map[uint64]bool{}
			)
			for i, res := range got {
				require.NoError(t, res.err, "admission %d", i)
				if res.a.Transition.Generation != 0 {
					transitions++
				}
				if res.a.Allowed {
					allowed++
					if res.a.State == breaker.StateHalfOpen {
						assert.NotZero(t, res.a.Probe, "admission %d: a probe without a lease", i)
						assert.False(t, probes[res.a.Probe], "admission %d: probe %d granted twice", i, res.a.Probe)
						probes[res.a.Probe] = true
					}
					continue
				}
				assert.Equal(t, tc.state, res.a.State, "admission %d", i)
				assert.Equal(t, tc.retryAfter, res.a.RetryAfter, "admission %d", i)
			}
			assert.Equal(t, tc.admitted, allowed)
			assert.Equal(t, tc.transitions, transitions, "transitions reported")
			sent, peak := r.gate.counts()
			assert.Equal(t, 1, peak, "admissions in flight at once")
			if tc.sent != 0 {
				assert.Equal(t, tc.sent, sent, "admit scripts sent")
			}
			t.Logf("%d admissions: %d admitted, %d admit scripts sent", n, allowed, sent)
		})
	}
}

// TestAdmitFlightEnds covers how a flight ends for the callers that wait
// for it: the leader's ctx ends (they take the next flight), Redis fails
// (they share the error), a waiter's ctx ends (it returns at once, and the
// flight goes on).
func TestAdmitFlightEnds(t *testing.T) {
	const n = 6
	p := policy(1)
	stale := func(t *testing.T) *herdRig {
		t.Helper()
		r := newHerdRig(t, p, false)
		r.f.AdvanceLocal(redisstore.DefaultMaxStaleness)
		return r
	}
	start := func(ctx context.Context, r *herdRig, wg *sync.WaitGroup, out *admitResult) {
		wg.Go(func() {
			a, err := r.b.Admit(ctx, herdName, p)
			*out = admitResult{a, err}
		})
	}
	sentIs := func(t *testing.T, r *herdRig, want int, what string) {
		t.Helper()
		eventually(t, func() bool { sent, _ := r.gate.counts(); return sent == want }, what)
	}

	t.Run("the leader's ctx ends", func(t *testing.T) {
		r := stale(t)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		var wg sync.WaitGroup
		got := make([]admitResult, n)
		start(ctx, r, &wg, &got[0])
		sentIs(t, r, 1, "the leader's admission is sent")
		for i := 1; i < n; i++ {
			start(context.Background(), r, &wg, &got[i])
		}
		eventually(t, func() bool { return r.b.FlightWaiters(herdName) == n-1 }, "the others wait")
		cancel()
		sentIs(t, r, 2, "a waiter leads the next flight")
		r.gate.release()
		wg.Wait()
		assert.ErrorIs(t, got[0].err, context.Canceled)
		for i := 1; i < n; i++ {
			require.NoError(t, got[i].err, "admission %d", i)
			assert.True(t, got[i].a.Allowed, "admission %d", i)
		}
		sent, peak := r.gate.counts()
		assert.Equal(t, 2, sent)
		// The canceled request may still be on its way (the store stopped
		// waiting for it; it is settled later) when the next leader sends.
		assert.LessOrEqual(t, peak, 2)
	})

	t.Run("Redis fails", func(t *testing.T) {
		r := stale(t)
		boom := errors.New("boom")
		r.gate.fail = boom
		got := r.herd(t, n, true)
		for i, res := range got {
			assert.ErrorIs(t, res.err, boom, "admission %d: the leader's error is every waiter's", i)
		}
		sent, _ := r.gate.counts()
		assert.Equal(t, 1, sent)
	})

	t.Run("a waiter's ctx ends", func(t *testing.T) {
		r := stale(t)
		var wg sync.WaitGroup
		var lead, waiter admitResult
		start(context.Background(), r, &wg, &lead)
		sentIs(t, r, 1, "the leader's admission is sent")
		// The waiter is a Breaker's call: it returns ctx.Err(), and no
		// store failure is counted (no degraded episode starts).
		br, err := breaker.New(herdName, breaker.Config{Store: r.b, FailureThreshold: p.FailureThreshold})
		require.NoError(t, err)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		ran := false
		go func() {
			defer close(done)
			waiter.err = br.Do(ctx, func(context.Context) error { ran = true; return nil })
		}()
		eventually(t, func() bool { return r.b.FlightWaiters(herdName) == 1 }, "the waiter waits")
		cancel()
		<-done // returns while the flight is still held at the gate
		assert.ErrorIs(t, waiter.err, context.Canceled)
		assert.False(t, ran)
		assert.Zero(t, r.b.FlightWaiters(herdName))
		r.gate.release()
		wg.Wait()
		require.NoError(t, lead.err)
		assert.True(t, lead.a.Allowed)
		sent, _ := r.gate.counts()
		assert.Equal(t, 1, sent)
		snap, err := br.Snapshot(context.Background())
		require.NoError(t, err)
		assert.Zero(t, snap.StoreErrors)
		assert.Zero(t, snap.DegradedCalls)
	})
}

// TestAdmitStrictNoFlight: a strict store shares no admission: each is its
// own script call, so every call sees what Redis holds when it asks.
func TestAdmitStrictNoFlight(t *testing.T) {
	const n = 6
	r := newHerdRig(t, policy(1), true)
	got := r.herd(t, n, false)
	for i, res := range got {
		require.NoError(t, res.err, "admission %d", i)
		assert.True(t, res.a.Allowed, "admission %d", i)
	}
	sent, peak := r.gate.counts()
	assert.Equal(t, n, sent)
	assert.Equal(t, n, peak)
}
