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
