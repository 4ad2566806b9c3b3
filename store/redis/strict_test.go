package redisstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tripline/tripline/breaker"
	redisstore "github.com/tripline/tripline/store/redis"
)

// TestStrictSuccessNothingToReset: a strict store does not send a
// closed-state success whose admission found no failure counted; it sends
// one that has failures to reset; in window mode it sends none. Another
// replica's failure that lands while the call runs is kept (the success
// took effect at its admission), and the next admission learns of it.
func TestStrictSuccessNothingToReset(t *testing.T) {
	ctx := context.Background()
	p := breaker.Policy{FailureThreshold: 3, Timeout: time.Minute, SuccessThreshold: 1, HalfOpenMaxCalls: 1, ProbeTimeout: time.Second}

	t.Run("consecutive", func(t *testing.T) {
		f := newFakeRedis(t)
		a, h := f.countedStore(t, redisstore.WithStrict())
		b := f.store(t, redisstore.WithStrict())

		adm := admitted(t, a, "svc", p) // no failure counted
		h.take()
		call(t, b, "svc", p, breaker.OutcomeFailure) // lands while a's call runs
		r := recorded(t, a, "svc", p, adm, breaker.OutcomeSuccess)
		assert.Equal(t, breaker.Result{State: breaker.StateClosed}, r)
		trips, cmds := h.take()
		assert.Zero(t, trips, "nothing to reset at admission: not sent: %v", cmds)
		snap, err := a.Load(ctx, "svc")
		require.NoError(t, err)
		assert.Equal(t, 1, snap.Failures, "b's failure is kept")

		h.take()
		call(t, a, "svc", p, breaker.OutcomeSuccess) // its admission sees the failure
		trips, _ = h.take()
		assert.Equal(t, 2, trips, "admit, and the success that resets")
		snap, err = a.Load(ctx, "svc")
		require.NoError(t, err)
		assert.Zero(t, snap.Failures, "reset")

		h.take()
		call(t, a, "svc", p, breaker.OutcomeSuccess)
		trips, _ = h.take()
		assert.Equal(t, 1, trips, "nothing to reset again: admit only")
	})

	t.Run("own failure", func(t *testing.T) {
		f := newFakeRedis(t)
		a, h := f.countedStore(t, redisstore.WithStrict())
		adm := admitted(t, a, "svc", p)
		call(t, a, "svc", p, breaker.OutcomeFailure) // its reply counts one failure
		h.take()
		recorded(t, a, "svc", p, adm, breaker.OutcomeSuccess)
		trips, _ := h.take()
		assert.Equal(t, 1, trips, "a reply after the admission counted a failure: the success is sent")
		snap, err := a.Load(ctx, "svc")
		require.NoError(t, err)
		assert.Zero(t, snap.Failures)
	})

	t.Run("after a trip elsewhere", func(t *testing.T) {
		f := newFakeRedis(t)
		a, h := f.countedStore(t, redisstore.WithStrict())
		b := f.store(t, redisstore.WithStrict())
		adm := admitted(t, a, "svc", p)
		for range p.FailureThreshold {
			call(t, b, "svc", p, breaker.OutcomeFailure)
		}
		h.take()
		recorded(t, a, "svc", p, adm, breaker.OutcomeSuccess) // Redis would ignore it
		trips, _ := h.take()
		assert.Zero(t, trips)
		got := admitted(t, a, "svc", p)
		assert.False(t, got.Allowed, "the trip holds: %+v", got)
		assert.Equal(t, breaker.StateOpen, got.State)
	})

	t.Run("window", func(t *testing.T) {
		f := newFakeRedis(t)
		a, h := f.countedStore(t, redisstore.WithStrict())
		w := p
		w.FailureWindow = time.Minute
		call(t, a, "svc", w, breaker.OutcomeFailure)
		h.take()
		for range 10 {
			call(t, a, "svc", w, breaker.OutcomeSuccess)
		}
		trips, _ := h.take()
		assert.Equal(t, 10, trips, "admissions only: successes erase nothing in a window")
		snap, err := a.Load(ctx, "svc")
		require.NoError(t, err)
		assert.Equal(t, 1, snap.Failures)
	})
}

// gateKey carries, in a call's context, the channel whose closing lets
// the call's reply go back to the store.
type gateKey struct{}

// gateHook: while armed (one token per call), a script call runs in Redis,
// reports on ran that it did, then holds its reply until the channel in its
// context is closed.
type gateHook struct {
	armed chan struct{}
	ran   chan struct{}
}

func (h *gateHook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *gateHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}
func (h *gateHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		select {
		case <-h.armed:
		default:
			return next(ctx, cmd)
		}
		err := next(ctx, cmd)
		h.ran <- struct{}{}
		<-ctx.Value(gateKey{}).(chan struct{})
		return err
	}
}

// TestStrictSuccessAfterLateReply: a strict store orders its view by when
// requests were sent, so the reply to an earlier admission that arrives
// late does not hide what a later admission saw (a failure counted by
// another replica in between), and that call's success resets it.
func TestStrictSuccessAfterLateReply(t *testing.T) {
	ctx := context.Background()
	p := breaker.Policy{FailureThreshold: 3, Timeout: time.Minute, SuccessThreshold: 1, HalfOpenMaxCalls: 1, ProbeTimeout: time.Second}
	f := newFakeRedis(t)
	h := &gateHook{armed: make(chan struct{}, 2), ran: make(chan struct{})}
	ca := f.client(t)
	ca.AddHook(h)
	a := f.storeOn(t, ca, redisstore.WithStrict())
	b := f.store(t, redisstore.WithStrict())
	admitted(t, a, "svc", p) // a has a view

	// Call X on a: admitted while no failure is counted; its reply is slow.
	h.armed <- struct{}{}
	xDone := make(chan struct{})
	relX, relY := make(chan struct{}), make(chan struct{})
	go func() { defer close(xDone); _, _ = a.Admit(context.WithValue(ctx, gateKey{}, relX), "svc", p) }()
	<-h.ran
	// Another replica counts a failure.
	call(t, b, "svc", p, breaker.OutcomeFailure)
	// Call Y on a: its admission runs after the failure (reply: 1 failure).
	h.armed <- struct{}{}
	type res struct {
		a   breaker.Admission
		err error
	}
	yc := make(chan res, 1)
	go func() { ad, err := a.Admit(context.WithValue(ctx, gateKey{}, relY), "svc", p); yc <- res{ad, err} }()
	<-h.ran
	close(relX) // X's reply (sent before Y's admission) is learned first
	<-xDone
	close(relY)
	y := <-yc
	require.NoError(t, y.err)
	// Y's dependency succeeds.
	_, err := a.Record(ctx, "svc", p, breaker.Outcome{Kind: breaker.OutcomeSuccess, Generation: y.a.Generation})
	require.NoError(t, err)
	snap, err := a.Load(ctx, "svc")
	require.NoError(t, err)
	assert.Zero(t, snap.Failures, "Y's admission saw the failure; its success must reset it")
}
