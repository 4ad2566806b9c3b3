package redisstore_test

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tripline/tripline/breaker"
	redisstore "github.com/tripline/tripline/store/redis"
)

// loseHook makes the next script call whose keys include a reply memo
// (admit, record, apply) lose its reply: with run set, Redis runs it and
// the caller gets a timeout (a stalled server that ran the call late);
// without, the call is held back and the caller gets a timeout (a request
// still queued), to be run later with Replay.
type loseHook struct {
	armed atomic.Bool
	run   bool
	mu    sync.Mutex
	held  redis.Cmder
	next  redis.ProcessHook
}

func (h *loseHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *loseHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if cmd.Name() != "evalsha" || len(cmd.Args()) < 7 || !h.armed.CompareAndSwap(true, false) {
			return next(ctx, cmd)
		}
		if h.run {
			if err := next(ctx, cmd); err != nil {
				return err
			}
		} else {
			h.mu.Lock()
			h.held, h.next = cmd, next
			h.mu.Unlock()
		}
		cmd.SetErr(context.DeadlineExceeded)
		return context.DeadlineExceeded
	}
}

func (h *loseHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// Replay runs the held-back call now, as a stalled server would, and
// returns its reply.
func (h *loseHook) Replay(t *testing.T) string {
	t.Helper()
	h.mu.Lock()
	cmd, next := h.held, h.next
	h.mu.Unlock()
	require.NotNil(t, cmd, "a call was held back")
	c := redis.NewCmd(context.Background(), cmd.Args()...)
	require.NoError(t, next(context.Background(), c))
	v, err := c.Text()
	require.NoError(t, err)
	return v
}

// hooked returns a client on f with hooks added, closed when t ends.
func hooked(t *testing.T, f *fakeRedis, hooks ...redis.Hook) *redis.Client {
	t.Helper()
	c := f.client(t)
	for _, h := range hooks {
		c.AddHook(h)
	}
	return c
}

// settled waits until s has settled every call whose reply was lost.
func settled(t *testing.T, s *redisstore.Store) {
	t.Helper()
	eventually(t, func() bool { return !s.Settling() }, "the lost calls are settled")
}

// tripped returns a probe policy (one permit) and a circuit that store
// other tripped, whose timeout has passed: the next admission is a probe.
func tripped(t *testing.T, f *fakeRedis, other *redisstore.Store) breaker.Policy {
	t.Helper()
	p := policy(1)
	p.HalfOpenMaxCalls = 1
	call(t, other, "svc", p, breaker.OutcomeFailure)
	f.Advance(p.Timeout)
	return p
}

// TestLostAdmissionReleasesLease: an admission that Redis ran but whose
// reply the caller never read (it timed out) leased the only probe permit.
// The store settles it: the lease is released, so another replica probes
// at once instead of waiting ProbeTimeout, and the transition the lost
// admission made (open -> half-open) reaches the circuit's follower once.
func TestLostAdmissionReleasesLease(t *testing.T) {
	f := newFakeRedis(t)
	other := f.store(t, redisstore.WithStrict())
	p := tripped(t, f, other)

	lose := &loseHook{run: true}
	s := f.storeOn(t, hooked(t, f, lose), redisstore.WithStrict())
	got := make(chan breaker.Followed, 4)
	stop := s.Follow("svc", func(t breaker.Followed) bool { got <- t; return true })
	defer stop()

	lose.armed.Store(true)
	_, err := s.Admit(context.Background(), "svc", p)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	settled(t, s)

	a := admitted(t, other, "svc", p)
	assert.True(t, a.Allowed, "the lost admission's lease was released: %+v", a)
	assert.Equal(t, breaker.StateHalfOpen, a.State)
	select {
	case tr := <-got:
		assert.Equal(t, breaker.Followed{Transition: breaker.Transition{From: breaker.StateOpen, To: breaker.StateHalfOpen, Generation: 2}, Cause: "timeout", Made: true}, tr)
	default:
		require.Fail(t, "the lost admission's transition was not reported")
	}
	assert.Empty(t, got, "reported once")
}

// TestLateAdmissionChangesNothing: an admission still queued when its
// caller gave up is settled first: a tombstone takes its reply memo's
// place, so when Redis runs it later it changes nothing: no transition
// that no replica would report, no lease.
func TestLateAdmissionChangesNothing(t *testing.T) {
	f := newFakeRedis(t)
	other := f.store(t, redisstore.WithStrict())
	p := tripped(t, f, other)

	lose := &loseHook{}
	s := f.storeOn(t, hooked(t, f, lose), redisstore.WithStrict())

	lose.armed.Store(true)
	_, err := s.Admit(context.Background(), "svc", p)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	settled(t, s)
	assert.Equal(t, "settled", lose.Replay(t), "the late admission finds the tombstone")

	snap, err := other.Load(context.Background(), "svc")
	require.NoError(t, err)
	assert.Equal(t, breaker.StateOpen, snap.State, "no transition")
	assert.Equal(t, uint64(1), snap.Generation)
	assert.Zero(t, snap.Probes)
	a := admitted(t, other, "svc", p)
	assert.True(t, a.Allowed, "the probe is free: %+v", a)
}

// TestLostProbeRecordReleasesLease: a probe whose outcome never reached
// Redis (the record timed out before it ran) gives its permit back when
// the record is settled, rather than after ProbeTimeout.
func TestLostProbeRecordReleasesLease(t *testing.T) {
	f := newFakeRedis(t)
	other := f.store(t, redisstore.WithStrict())
	p := tripped(t, f, other)

	lose := &loseHook{}
	s := f.storeOn(t, hooked(t, f, lose), redisstore.WithStrict())
	a := admitted(t, s, "svc", p)
	require.True(t, a.Allowed)
	require.NotZero(t, a.Probe)
	assert.False(t, admitted(t, other, "svc", p).Allowed, "the only permit is held")

	lose.armed.Store(true)
	_, err := s.Record(context.Background(), "svc", p, breaker.Outcome{Kind: breaker.OutcomeSuccess, Generation: a.Generation, Probe: a.Probe})
	require.ErrorIs(t, err, context.DeadlineExceeded)
	settled(t, s)
	assert.Equal(t, "settled", lose.Replay(t))
	b := admitted(t, other, "svc", p)
	assert.True(t, b.Allowed, "the permit is back: %+v", b)
}

// TestLostTransitionReachesOnStateChange: a Breaker whose admission's reply
// was lost still reports the transition that admission made, once, through
// OnStateChange.
func TestLostTransitionReachesOnStateChange(t *testing.T) {
	f := newFakeRedis(t)
	other := f.store(t, redisstore.WithStrict())
	p := tripped(t, f, other)

	lose := &loseHook{run: true}
	s := f.storeOn(t, hooked(t, f, lose), redisstore.WithStrict())
	changes := make(chan [2]breaker.State, 4)
	b, err := breaker.New("svc", breaker.Config{
		Store: s, FailureThreshold: p.FailureThreshold, Timeout: p.Timeout,
		HalfOpenMaxCalls: 1, ProbeTimeout: p.ProbeTimeout, SuccessThreshold: 1,
		OnStateChange: func(_ string, from, to breaker.State) { changes <- [2]breaker.State{from, to} },
	})
	require.NoError(t, err)

	lose.armed.Store(true)
	require.NoError(t, b.Do(context.Background(), func(context.Context) error { return nil }), "served degraded")
	settled(t, s)
	select {
	case ch := <-changes:
		assert.Equal(t, [2]breaker.State{breaker.StateOpen, breaker.StateHalfOpen}, ch)
	case <-time.After(5 * time.Second):
		require.Fail(t, "OnStateChange was not called for the lost admission's transition")
	}
	assert.Empty(t, changes, "once")
	runtime.KeepAlive(b) // a Breaker no longer reachable is not told
}

// settleGate holds every settle (a script call on two keys) until open is
// closed.
type settleGate struct{ open chan struct{} }

func (h *settleGate) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *settleGate) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if args := cmd.Args(); (cmd.Name() == "evalsha" || cmd.Name() == "eval") && len(args) > 2 && fmt.Sprint(args[2]) == "2" {
			<-h.open
		}
		return next(ctx, cmd)
	}
}

func (h *settleGate) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// TestLostTransitionReportedOnceInOrder: with local views, the lost
// admission's published transition reaches the replica's view before the
// settle does; it is reported once, as made (OnStateChange), not also as
// seen; and a later transition another replica makes meanwhile is
// reported after it, so the replica's reports end at the true state
// (found by the adversarial review).
func TestLostTransitionReportedOnceInOrder(t *testing.T) {
	f := newFakeRedis(t)
	other := f.store(t, redisstore.WithStrict())
	p := policy(1)
	p.HalfOpenMaxCalls = 2 // the late admission holds one permit until settled
	call(t, other, "svc", p, breaker.OutcomeFailure)
	f.Advance(p.Timeout)

	lose, gate := &loseHook{run: true}, &settleGate{open: make(chan struct{})}
	s := f.storeOn(t, hooked(t, f, lose, gate))
	r := make(reports, 16)
	b, err := breaker.New("svc", breaker.Config{
		Store: s, FailureThreshold: p.FailureThreshold, Timeout: p.Timeout, HalfOpenMaxCalls: 2,
		ProbeTimeout: p.ProbeTimeout, SuccessThreshold: 1, OnStateChange: r.made, OnStateSeen: r.seen,
	})
	require.NoError(t, err)
	admitted(t, s, "warm-up", p) // starts the subscription
	live(t, s)
	lose.armed.Store(true)
	require.NoError(t, b.Do(context.Background(), func(context.Context) error { return nil }), "served degraded")
	eventually(t, func() bool { return s.ViewOf("svc").Gen == 2 }, "the late admission's event reaches the view")

	pa := admitted(t, other, "svc", p) // the other permit: the probe closes the circuit
	require.True(t, pa.Allowed)
	recorded(t, other, "svc", p, pa, breaker.OutcomeSuccess)
	eventually(t, func() bool { return s.ViewOf("svc").Gen == 3 }, "the close reaches the view")
	assert.Empty(t, r, "held while the lost admission is settled")

	close(gate.open)
	settled(t, s)
	assert.Equal(t, "made open -> half-open", r.next(t))
	assert.Equal(t, "seen half-open -> closed", r.next(t))
	assert.Empty(t, r)
	runtime.KeepAlive(b)
}

// TestLostCommandNamesItsCause: an operator's command whose reply was lost
// is reported, once settled, under its own name: a force-close is not a
// reset, though both close the circuit.
func TestLostCommandNamesItsCause(t *testing.T) {
	f := newFakeRedis(t)
	other := f.store(t, redisstore.WithStrict())
	tripped(t, f, other)
	lose := &loseHook{run: true}
	s := f.storeOn(t, hooked(t, f, lose), redisstore.WithStrict())
	got := make(chan breaker.Followed, 4)
	stop := s.Follow("svc", func(t breaker.Followed) bool { got <- t; return true })
	defer stop()

	_, err := other.Apply(context.Background(), "warm-up", breaker.Command{Kind: breaker.CommandReset}) // loads the script
	require.NoError(t, err)
	lose.armed.Store(true)
	_, err = s.Apply(context.Background(), "svc", breaker.Command{Kind: breaker.CommandForceClose})
	require.ErrorIs(t, err, context.DeadlineExceeded)
	settled(t, s)
	select {
	case tr := <-got:
		assert.Equal(t, breaker.Followed{Transition: breaker.Transition{From: breaker.StateOpen, To: breaker.StateClosed, Generation: 2}, Cause: "force-close", Made: true}, tr)
	default:
		require.Fail(t, "the lost command's transition was not reported")
	}
}
