package breaker_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tripline/tripline/breaker"
)

var errStoreDown = errors.New("store down")

// faultyStore is a memory store whose methods fail on demand, and that
// counts every call made to it.
type faultyStore struct {
	breaker.Store // does the work when a method does not fail

	mu                               sync.Mutex
	failAdmit, failRecord, failApply bool
	failLoad                         bool
	err                              error  // what a failing method returns; default errStoreDown
	onFail                           func() // runs before a method fails, if set, outside the lock
	admits, records, applies, loads  int    // calls, failed or not
	recordCtxErr                     error  // ctx.Err() of the last Record
	recordOutcomes                   []breaker.Outcome
}

func (s *faultyStore) set(f func(s *faultyStore)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(s)
}

// down sets whether every method fails.
func (s *faultyStore) down(fail bool) {
	s.set(func(s *faultyStore) { s.failAdmit, s.failRecord, s.failApply, s.failLoad = fail, fail, fail, fail })
}

// calls returns the number of calls of each method so far.
func (s *faultyStore) calls() (admits, records, applies, loads int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.admits, s.records, s.applies, s.loads
}

// begin counts one call (in n) and returns the error it must fail with, or
// nil; onFail runs first, outside the lock, so it may block.
func (s *faultyStore) begin(n *int, fail *bool) error {
	s.mu.Lock()
	*n++
	failing, hook, err := *fail, s.onFail, s.err
	s.mu.Unlock()
	if !failing {
		return nil
	}
	if hook != nil {
		hook()
	}
	if err == nil {
		err = errStoreDown
	}
	return err
}

func (s *faultyStore) Admit(ctx context.Context, name string, p breaker.Policy) (breaker.Admission, error) {
	if err := s.begin(&s.admits, &s.failAdmit); err != nil {
		return breaker.Admission{Allowed: true}, err // the data must not be used
	}
	return s.Store.Admit(ctx, name, p)
}

func (s *faultyStore) Record(ctx context.Context, name string, p breaker.Policy, o breaker.Outcome) (breaker.Result, error) {
	s.mu.Lock()
	s.recordCtxErr = ctx.Err()
	s.recordOutcomes = append(s.recordOutcomes, o)
	s.mu.Unlock()
	if err := s.begin(&s.records, &s.failRecord); err != nil {
		return breaker.Result{}, err
	}
	return s.Store.Record(ctx, name, p, o)
}

func (s *faultyStore) Apply(ctx context.Context, name string, c breaker.Command) (breaker.Result, error) {
	if err := s.begin(&s.applies, &s.failApply); err != nil {
		return breaker.Result{}, err
	}
	return s.Store.Apply(ctx, name, c)
}

func (s *faultyStore) Load(ctx context.Context, name string) (breaker.Snapshot, error) {
	if err := s.begin(&s.loads, &s.failLoad); err != nil {
		return breaker.Snapshot{Name: "garbage", State: breaker.StateOpen}, err // the data must not be used
	}
	return s.Store.Load(ctx, name)
}

// faultyBreaker returns a Breaker on a faultyStore over the env's memory
// store, and a log of what it logged. The env's clock is the clock of the
// store, of the Breaker's store backoff and of its local fallback.
func faultyBreaker(t *testing.T, cfg breaker.Config) (*breaker.Breaker, *faultyStore, *logBuffer, *env) {
	t.Helper()
	e := newEnv()
	fs := &faultyStore{Store: e.store}
	logs := &logBuffer{}
	cfg.Store = fs
	cfg.Logger = logs.logger()
	b, err := breaker.NewWithClock("svc", cfg, e.clock.Now)
	require.NoError(t, err)
	return b, fs, logs, e
}

func storeFailedLog(op string, n float64, err string) map[string]any {
	return map[string]any{
		"level": "WARN", "msg": "tripline: store failed", "circuit": "svc",
		"op": op, "store_errors": n, "error": err,
	}
}

func degradedLog(mode, op string) map[string]any {
	return map[string]any{
		"level": "WARN", "msg": "tripline: store unavailable, degraded", "circuit": "svc",
		"mode": mode, "op": op, "error": "store down",
	}
}

func recoveredLog(mode string, d time.Duration, calls float64) map[string]any {
	return map[string]any{
		"level": "INFO", "msg": "tripline: store recovered", "circuit": "svc",
		"mode": mode, "duration": float64(d), "degraded_calls": calls,
	}
}

// TestAdmitStoreFailure: in FailClosed mode a store that cannot admit a
// call rejects it with a *StoreError (not ErrOpen) without running it.
func TestAdmitStoreFailure(t *testing.T) {
	for _, tc := range []struct {
		name string
		call func(b *breaker.Breaker, fn *counter) error
	}{
		{"Do", func(b *breaker.Breaker, fn *counter) error { return b.Do(context.Background(), fn.fn) }},
		{"Execute", func(b *breaker.Breaker, fn *counter) error {
			v, err := breaker.Execute(context.Background(), b, func(ctx context.Context) (int, error) { return 1, fn.fn(ctx) })
			assert.Equal(t, 0, v)
			return err
		}},
		{"Allow", func(b *breaker.Breaker, _ *counter) error {
			done, err := b.Allow(context.Background())
			assert.Nil(t, done)
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, fs, logs, _ := faultyBreaker(t, breaker.Config{FailureThreshold: 1, Degraded: breaker.FailClosed})
			fs.set(func(s *faultyStore) { s.failAdmit = true })
			fn := &counter{}

			err := tc.call(b, fn)
			var se *breaker.StoreError
			require.ErrorAs(t, err, &se)
			assert.Equal(t, breaker.StoreError{Name: "svc", Op: "admit", Err: errStoreDown}, *se)
			assert.ErrorIs(t, err, errStoreDown)
			assert.NotErrorIs(t, err, breaker.ErrOpen)
			assert.Equal(t, 0, fn.count(), "fn is not run")
			assert.Equal(t, 0, fs.records, "nothing is recorded")
			assert.Equal(t, []map[string]any{degradedLog("fail-closed", "admit")}, logs.records(t))

			s := snapshot(t, b)
			assert.Equal(t, uint64(1), s.StoreErrors)
			shared, err := fs.Store.Load(context.Background(), "svc")
			require.NoError(t, err)
			assert.Equal(t, breaker.StateClosed, shared.State, "a store failure is not a failure of the call (threshold 1)")
			assert.Equal(t, 0, shared.Failures)
		})
	}
}

// TestRecordStoreFailure: when the store cannot record an outcome the
// caller still gets the function's own result, the store's failure is not
// a failure of the call, and the outcome is counted by the fallback.
func TestRecordStoreFailure(t *testing.T) {
	b, fs, logs, _ := faultyBreaker(t, breaker.Config{FailureThreshold: 2})
	ctx := context.Background()
	done, err := b.Allow(ctx) // admitted by the shared store before the outage
	require.NoError(t, err)
	fs.set(func(s *faultyStore) { s.failRecord = true })

	assert.Same(t, errBoom, b.Do(ctx, failing), "the caller gets fn's own error")
	require.NoError(t, b.Do(ctx, ok), "and fn's success")
	v, err := breaker.Execute(ctx, b, func(context.Context) (string, error) { return "v", nil })
	require.NoError(t, err)
	assert.Equal(t, "v", v)
	done(errBoom) // admitted by the shared store: goes there, fails again

	assert.Equal(t, []map[string]any{degradedLog("fallback-local", "record")}, logs.records(t), "the episode is logged once")
	s := snapshot(t, b)
	assert.Equal(t, uint64(2), s.StoreErrors, "the first Record and the late one")
	assert.True(t, s.Degraded)
	assert.Equal(t, breaker.StateClosed, s.State, "the store's failures are not counted by the fallback")
	assert.Equal(t, 1, s.Failures, "the late failure the store could not record is (the first one was reset by a success)")
	assert.Equal(t, 2, fs.records, "calls the fallback admitted are recorded by it, not by the store")
}

func TestRecordStoreFailureAfterPanic(t *testing.T) {
	b, fs, _, _ := faultyBreaker(t, breaker.Config{})
	fs.set(func(s *faultyStore) { s.failRecord = true })
	assert.PanicsWithValue(t, "kaboom", func() {
		_ = b.Do(context.Background(), func(context.Context) error { panic("kaboom") })
	}, "the panic continues even when recording it fails")
	assert.Equal(t, uint64(1), snapshot(t, b).StoreErrors)
	assert.Equal(t, breaker.OutcomeFailure, fs.recordOutcomes[0].Kind)
}

func TestRecordGetsALiveContext(t *testing.T) {
	b, fs, _, _ := faultyBreaker(t, breaker.Config{})
	ctx, cancel := context.WithCancel(context.Background())
	require.ErrorIs(t, b.Do(ctx, func(context.Context) error { cancel(); return errBoom }), errBoom)
	assert.NoError(t, fs.recordCtxErr, "the outcome is recorded even though the caller gave up")
}

func TestOutcomeSentToStore(t *testing.T) {
	b, fs, _, e := faultyBreaker(t, breaker.Config{FailureThreshold: 1, HalfOpenMaxCalls: 2})
	ctx := context.Background()
	require.ErrorIs(t, b.Do(ctx, failing), errBoom)
	e.clock.Advance(b.Policy().Timeout)
	require.NoError(t, b.Do(ctx, ok))

	require.Len(t, fs.recordOutcomes, 2)
	first, probe := fs.recordOutcomes[0], fs.recordOutcomes[1]
	assert.Equal(t, breaker.OutcomeFailure, first.Kind)
	assert.Equal(t, uint64(0), first.Generation)
	assert.Equal(t, uint64(0), first.Probe)
	assert.Equal(t, breaker.OutcomeSuccess, probe.Kind)
	assert.Equal(t, uint64(2), probe.Generation, "the probe belongs to the half-open generation")
	assert.NotZero(t, probe.Probe, "the probe carries its permit")
	assert.GreaterOrEqual(t, probe.Duration, time.Duration(0))
}

// TestLoadAndApplyStoreFailure: Snapshot does not fail on a store outage
// (it starts an episode and answers degraded); commands do, with a
// *StoreError, and are applied to the fallback all the same.
func TestLoadAndApplyStoreFailure(t *testing.T) {
	hooks := &hookLog{}
	b, fs, logs, _ := faultyBreaker(t, breaker.Config{OnStateChange: hooks.hook})
	ctx := context.Background()
	fs.set(func(s *faultyStore) { s.failLoad, s.failApply = true, true })

	s, err := b.Snapshot(ctx)
	require.NoError(t, err)
	assert.Equal(t, breaker.Snapshot{Name: "svc", State: breaker.StateClosed, StoreErrors: 1, Degraded: true}, s,
		"the fallback's view: it has seen nothing")

	for i, apply := range []func() error{
		func() error { return b.Reset(ctx) },
		func() error { return b.ForceOpen(ctx, 0) },
		func() error { return b.ForceClose(ctx, 0) },
	} {
		err := apply()
		var se *breaker.StoreError
		require.ErrorAs(t, err, &se, "command %d", i)
		assert.Equal(t, "apply", se.Op)
		assert.ErrorIs(t, err, errStoreDown)
		assert.NotErrorIs(t, err, breaker.ErrOpen)
	}
	assert.Equal(t, []string{"svc: closed -> open", "svc: open -> closed"}, hooks.list(),
		"the fallback's changes: ForceOpen, then ForceClose")
	require.NoError(t, b.Do(ctx, ok), "forced closed in the fallback")

	_, _, applies, loads := fs.calls()
	assert.Equal(t, 3, applies, "commands go to the store even during an episode")
	assert.Equal(t, 1, loads, "Snapshot does not ask the store again before the backoff")
	s = snapshot(t, b)
	assert.Equal(t, uint64(4), s.StoreErrors)
	assert.Equal(t, uint64(3), s.Generation, "the fallback's: one per command")
	assert.Equal(t, breaker.OverrideForceClose, s.Override.Mode)
	assert.Equal(t, uint64(0), sharedSnapshot(t, fs).Generation, "the store applied nothing")

	notStored := func(cmd string) map[string]any {
		return map[string]any{
			"level": "WARN", "msg": "tripline: store failed a command", "circuit": "svc",
			"command": cmd, "applied_locally": true, "error": "store down",
		}
	}
	assert.Equal(t, []map[string]any{
		degradedLog("fallback-local", "load"),
		notStored("reset"),
		transitionLog("closed", "open", 2, "force-open", true),
		notStored("force-open"),
		transitionLog("open", "closed", 3, "force-close", true),
		notStored("force-close"),
	}, logs.records(t))
}

func TestStoreErrorsArePerBreaker(t *testing.T) {
	e := newEnv()
	fs := &faultyStore{Store: e.store, failAdmit: true}
	a, err := breaker.NewWithClock("svc", breaker.Config{Store: fs}, e.clock.Now) // no probe before the clock moves
	require.NoError(t, err)
	b, err := breaker.New("svc", breaker.Config{Store: e.store})
	require.NoError(t, err)
	require.NoError(t, a.Do(context.Background(), ok), "served by a's fallback")
	assert.Equal(t, uint64(1), snapshot(t, a).StoreErrors)
	assert.Equal(t, uint64(0), snapshot(t, b).StoreErrors)
	assert.True(t, snapshot(t, a).Degraded)
	assert.False(t, snapshot(t, b).Degraded)
}
