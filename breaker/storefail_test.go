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

// faultyStore is a memory store whose methods fail on demand.
type faultyStore struct {
	breaker.Store // does the work when a method does not fail

	mu                               sync.Mutex
	failAdmit, failRecord, failApply bool
	failLoad                         bool
	admits, records                  int
	recordCtxErr                     error // ctx.Err() of the last Record
	recordOutcomes                   []breaker.Outcome
}

func (s *faultyStore) set(f func(s *faultyStore)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(s)
}

func (s *faultyStore) Admit(ctx context.Context, name string, p breaker.Policy) (breaker.Admission, error) {
	s.mu.Lock()
	s.admits++
	fail := s.failAdmit
	s.mu.Unlock()
	if fail {
		return breaker.Admission{Allowed: true}, errStoreDown // the data must not be used
	}
	return s.Store.Admit(ctx, name, p)
}

func (s *faultyStore) Record(ctx context.Context, name string, p breaker.Policy, o breaker.Outcome) (breaker.Result, error) {
	s.mu.Lock()
	s.records++
	s.recordCtxErr = ctx.Err()
	s.recordOutcomes = append(s.recordOutcomes, o)
	fail := s.failRecord
	s.mu.Unlock()
	if fail {
		return breaker.Result{}, errStoreDown
	}
	return s.Store.Record(ctx, name, p, o)
}

func (s *faultyStore) Apply(ctx context.Context, name string, c breaker.Command) (breaker.Result, error) {
	s.mu.Lock()
	fail := s.failApply
	s.mu.Unlock()
	if fail {
		return breaker.Result{}, errStoreDown
	}
	return s.Store.Apply(ctx, name, c)
}

func (s *faultyStore) Load(ctx context.Context, name string) (breaker.Snapshot, error) {
	s.mu.Lock()
	fail := s.failLoad
	s.mu.Unlock()
	if fail {
		return breaker.Snapshot{}, errStoreDown
	}
	return s.Store.Load(ctx, name)
}

// faultyBreaker returns a Breaker on a faultyStore over the env's memory
// store, and a log of what it logged.
func faultyBreaker(t *testing.T, cfg breaker.Config) (*breaker.Breaker, *faultyStore, *logBuffer, *env) {
	t.Helper()
	e := newEnv()
	fs := &faultyStore{Store: e.store}
	logs := &logBuffer{}
	cfg.Store = fs
	cfg.Logger = logs.logger()
	b, err := breaker.New("svc", cfg)
	require.NoError(t, err)
	return b, fs, logs, e
}

func storeFailedLog(op string, n float64) map[string]any {
	return map[string]any{
		"level": "WARN", "msg": "tripline: store failed", "circuit": "svc",
		"op": op, "store_errors": n, "error": "store down",
	}
}

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
			b, fs, logs, _ := faultyBreaker(t, breaker.Config{FailureThreshold: 1})
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
			assert.Equal(t, []map[string]any{storeFailedLog("admit", 1)}, logs.records(t))

			fs.set(func(s *faultyStore) { s.failAdmit = false })
			s := snapshot(t, b)
			assert.Equal(t, breaker.StateClosed, s.State, "a store failure is not a failure of the call (threshold 1)")
			assert.Equal(t, 0, s.Failures)
			assert.Equal(t, uint64(1), s.StoreErrors)
		})
	}
}

func TestRecordStoreFailure(t *testing.T) {
	b, fs, logs, _ := faultyBreaker(t, breaker.Config{FailureThreshold: 1})
	fs.set(func(s *faultyStore) { s.failRecord = true })
	ctx := context.Background()

	err := b.Do(ctx, failing)
	assert.Same(t, errBoom, err, "the caller gets fn's own error")
	require.NoError(t, b.Do(ctx, ok), "and fn's success")
	v, err := breaker.Execute(ctx, b, func(context.Context) (string, error) { return "v", nil })
	require.NoError(t, err)
	assert.Equal(t, "v", v)
	done, err := b.Allow(ctx)
	require.NoError(t, err)
	done(errBoom)

	assert.Equal(t, []map[string]any{
		storeFailedLog("record", 1), storeFailedLog("record", 2),
		storeFailedLog("record", 3), storeFailedLog("record", 4),
	}, logs.records(t), "each failure logged once")
	s := snapshot(t, b)
	assert.Equal(t, uint64(4), s.StoreErrors)
	assert.Equal(t, breaker.StateClosed, s.State)
	assert.Equal(t, 4, fs.records)
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

func TestLoadAndApplyStoreFailure(t *testing.T) {
	hooks := &hookLog{}
	b, fs, logs, _ := faultyBreaker(t, breaker.Config{OnStateChange: hooks.hook})
	ctx := context.Background()
	fs.set(func(s *faultyStore) { s.failLoad, s.failApply = true, true })

	_, err := b.Snapshot(ctx)
	var se *breaker.StoreError
	require.ErrorAs(t, err, &se)
	assert.Equal(t, "load", se.Op)
	assert.ErrorIs(t, err, errStoreDown)

	for i, apply := range []func() error{
		func() error { return b.Reset(ctx) },
		func() error { return b.ForceOpen(ctx, 0) },
		func() error { return b.ForceClose(ctx, 0) },
	} {
		err := apply()
		require.ErrorAs(t, err, &se, "command %d", i)
		assert.Equal(t, "apply", se.Op)
		assert.ErrorIs(t, err, errStoreDown)
	}
	assert.Empty(t, hooks.list())

	fs.set(func(s *faultyStore) { s.failLoad, s.failApply = false, false })
	s := snapshot(t, b)
	assert.Equal(t, uint64(4), s.StoreErrors)
	assert.Equal(t, uint64(0), s.Generation, "no command was applied")
	assert.Equal(t, []map[string]any{
		storeFailedLog("load", 1), storeFailedLog("apply", 2), storeFailedLog("apply", 3), storeFailedLog("apply", 4),
	}, logs.records(t))
}

func TestStoreErrorsArePerBreaker(t *testing.T) {
	e := newEnv()
	fs := &faultyStore{Store: e.store, failAdmit: true}
	a, err := breaker.New("svc", breaker.Config{Store: fs})
	require.NoError(t, err)
	b, err := breaker.New("svc", breaker.Config{Store: e.store})
	require.NoError(t, err)
	require.Error(t, a.Do(context.Background(), ok))
	assert.Equal(t, uint64(1), snapshot(t, a).StoreErrors)
	assert.Equal(t, uint64(0), snapshot(t, b).StoreErrors)
}
