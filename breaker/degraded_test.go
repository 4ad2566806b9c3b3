package breaker_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tripline/tripline/breaker"
)

const firstBackoff = 50 * time.Millisecond

func transitionLog(from, to string, gen float64, cause string, degraded bool) map[string]any {
	m := map[string]any{
		"level": "INFO", "msg": "tripline: circuit state changed", "circuit": "svc",
		"from": from, "to": to, "generation": gen, "cause": cause,
	}
	if degraded {
		m["degraded"] = true
	}
	return m
}

// sharedSnapshot reads the circuit from the store behind the faultyStore.
func sharedSnapshot(t *testing.T, fs *faultyStore) breaker.Snapshot {
	t.Helper()
	s, err := fs.Store.Load(context.Background(), "svc")
	require.NoError(t, err)
	return s
}

func TestDegradedModes(t *testing.T) {
	for _, tc := range []struct {
		mode     breaker.DegradedMode
		runs     int
		errs     []string // per call: "boom", "open" or "store"
		snapshot breaker.Snapshot
		hooks    []string
	}{
		{
			mode: breaker.FallbackLocal, runs: 1, errs: []string{"boom", "open", "open"},
			snapshot: breaker.Snapshot{
				Name: "svc", State: breaker.StateOpen, Generation: 1, LastFailure: epoch,
				OpenedAt: epoch, RetryAt: epoch.Add(time.Minute),
				StoreErrors: 1, Degraded: true, DegradedCalls: 3,
			},
			hooks: []string{"svc: closed -> open"},
		},
		{
			mode: breaker.FailOpen, runs: 3, errs: []string{"boom", "boom", "boom"},
			snapshot: breaker.Snapshot{Name: "svc", State: breaker.StateClosed, StoreErrors: 1, Degraded: true, DegradedCalls: 3},
		},
		{
			mode: breaker.FailClosed, runs: 0, errs: []string{"store", "store", "store"},
			snapshot: breaker.Snapshot{Name: "svc", State: breaker.StateOpen, StoreErrors: 1, Degraded: true, DegradedCalls: 3},
		},
	} {
		t.Run(tc.mode.String(), func(t *testing.T) {
			hooks := &hookLog{}
			b, fs, logs, _ := faultyBreaker(t, breaker.Config{
				Degraded: tc.mode, FailureThreshold: 1, Timeout: time.Minute, OnStateChange: hooks.hook,
			})
			ctx := context.Background()
			require.False(t, snapshot(t, b).Degraded)
			fs.down(true)

			fn := &counter{err: errBoom}
			for i, want := range tc.errs {
				err := b.Do(ctx, fn.fn)
				switch want {
				case "boom":
					assert.Same(t, errBoom, err, "call %d", i)
				case "open":
					var oe *breaker.OpenError
					require.ErrorAs(t, err, &oe, "call %d", i)
					assert.Equal(t, breaker.OpenError{Name: "svc", State: breaker.StateOpen, RetryAfter: time.Minute}, *oe)
				case "store":
					var se *breaker.StoreError
					require.ErrorAs(t, err, &se, "call %d", i)
					assert.Equal(t, breaker.StoreError{Name: "svc", Op: "admit", Err: errStoreDown}, *se)
					assert.NotErrorIs(t, err, breaker.ErrOpen, "a FailClosed rejection is not an open circuit")
				}
			}
			assert.Equal(t, tc.runs, fn.count())

			s, err := b.Snapshot(ctx)
			require.NoError(t, err, "Snapshot does not fail during an episode")
			assert.Equal(t, tc.snapshot, s)
			assert.Equal(t, tc.hooks, hooks.list())

			admits, records, applies, loads := fs.calls()
			assert.Equal(t, []int{1, 0, 0, 1}, []int{admits, records, applies, loads},
				"only the first call asked the store (and the first Snapshot, before the outage)")
			assert.Equal(t, breaker.Snapshot{Name: "svc"}, sharedSnapshot(t, fs), "the shared circuit saw nothing")

			want := []map[string]any{degradedLog(tc.mode.String(), "admit")}
			if tc.mode == breaker.FallbackLocal {
				want = append(want, transitionLog("closed", "open", 1, "outcome", true))
			}
			assert.Equal(t, want, logs.records(t))
		})
	}
}

// TestFallbackLocalRunsTheStateMachine: the fallback follows the Policy
// through a whole cycle, and its transitions are reported and logged, the
// log saying degraded.
func TestFallbackLocalRunsTheStateMachine(t *testing.T) {
	hooks := &hookLog{}
	b, fs, logs, e := faultyBreaker(t, breaker.Config{FailureThreshold: 2, Timeout: time.Second, OnStateChange: hooks.hook})
	ctx := context.Background()
	fs.down(true)

	require.Same(t, errBoom, b.Do(ctx, failing))
	require.Same(t, errBoom, b.Do(ctx, failing))
	require.ErrorIs(t, b.Do(ctx, ok), breaker.ErrOpen)
	e.clock.Advance(time.Second) // the fallback's timeout; the store is probed too, and still fails
	require.NoError(t, b.Do(ctx, ok))
	require.NoError(t, b.Do(ctx, ok))

	assert.Equal(t, []string{"svc: closed -> open", "svc: open -> half-open", "svc: half-open -> closed"}, hooks.list())
	assert.Equal(t, []map[string]any{
		degradedLog("fallback-local", "admit"),
		transitionLog("closed", "open", 1, "outcome", true),
		transitionLog("open", "half-open", 2, "timeout", true),
		transitionLog("half-open", "closed", 3, "outcome", true),
	}, logs.records(t))
	s := snapshot(t, b)
	assert.True(t, s.Degraded)
	assert.Equal(t, breaker.StateClosed, s.State)
	assert.Equal(t, uint64(3), s.Generation)
	assert.Equal(t, uint64(5), s.DegradedCalls)
	assert.Equal(t, uint64(2), s.StoreErrors, "the first call and one probe")
}

// TestEpisodeLoggedOnce: 32 goroutines call through an outage, a failed
// probe, the recovery and a second outage: each episode's start and end are
// logged exactly once, and after each backoff exactly one call probes.
func TestEpisodeLoggedOnce(t *testing.T) {
	const goroutines, calls = 32, 50
	b, fs, logs, e := faultyBreaker(t, breaker.Config{})
	ctx := context.Background()
	hammer := func() {
		t.Helper()
		var wg sync.WaitGroup
		for range goroutines {
			wg.Go(func() {
				for range calls {
					assert.NoError(t, b.Do(ctx, ok))
				}
			})
		}
		wg.Wait()
	}
	admits := func() int {
		n, _, _, _ := fs.calls()
		return n
	}

	fs.down(true)
	hammer()
	s := snapshot(t, b)
	assert.True(t, s.Degraded)
	assert.Equal(t, uint64(goroutines*calls), s.DegradedCalls)
	assert.Equal(t, uint64(admits()), s.StoreErrors, "every store call failed and was counted")
	assert.LessOrEqual(t, admits(), goroutines, "once the episode started no call asked the store")
	assert.Equal(t, []map[string]any{degradedLog("fallback-local", "admit")}, logs.records(t))

	before := admits()
	e.clock.Advance(firstBackoff)
	hammer()
	assert.Equal(t, before+1, admits(), "one probe after the backoff")

	fs.down(false)
	e.clock.Advance(2 * firstBackoff)
	hammer()
	s = snapshot(t, b)
	assert.False(t, s.Degraded)
	got := logs.records(t)
	require.Len(t, got, 2)
	logged, isNum := got[1]["degraded_calls"].(float64)
	require.True(t, isNum, "degraded_calls in %v", got[1])
	assert.GreaterOrEqual(t, logged, float64(2*goroutines*calls))
	assert.LessOrEqual(t, logged, float64(s.DegradedCalls))
	assert.Equal(t, recoveredLog("fallback-local", 3*firstBackoff, logged), got[1])

	fs.down(true)
	e.clock.Advance(breaker.DefaultStoreBackoffMax) // a new episode, not the last one resumed
	hammer()
	assert.Equal(t, degradedLog("fallback-local", "admit"), logs.records(t)[2:][0])
	assert.Len(t, logs.records(t), 3, "a new episode is logged once")
	assert.True(t, snapshot(t, b).Degraded)
}

func TestProbeBackoff(t *testing.T) {
	for _, tc := range []struct {
		name  string
		max   time.Duration
		waits []time.Duration
	}{
		{"default cap 2s", 0, []time.Duration{
			50 * time.Millisecond, 100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond,
			800 * time.Millisecond, 1600 * time.Millisecond, 2 * time.Second, 2 * time.Second,
		}},
		{"cap 300ms", 300 * time.Millisecond, []time.Duration{
			50 * time.Millisecond, 100 * time.Millisecond, 200 * time.Millisecond, 300 * time.Millisecond, 300 * time.Millisecond,
		}},
		{"cap under the first wait", 30 * time.Millisecond, []time.Duration{
			30 * time.Millisecond, 30 * time.Millisecond, 30 * time.Millisecond,
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, fs, _, e := faultyBreaker(t, breaker.Config{StoreBackoffMax: tc.max})
			ctx := context.Background()
			fs.down(true)
			storeCalls := func() int {
				admits, records, applies, loads := fs.calls()
				return admits + records + applies + loads
			}
			require.NoError(t, b.Do(ctx, ok), "starts the episode")
			require.Equal(t, 1, storeCalls())
			for i, wait := range tc.waits {
				e.clock.Advance(wait - time.Millisecond)
				for range 3 {
					require.NoError(t, b.Do(ctx, ok))
					_ = snapshot(t, b)
				}
				assert.Equal(t, i+1, storeCalls(), "no store call during backoff %d (%s)", i, wait)
				e.clock.Advance(time.Millisecond)
				for range 3 {
					require.NoError(t, b.Do(ctx, ok))
				}
				assert.Equal(t, i+2, storeCalls(), "exactly one probe after backoff %d (%s)", i, wait)
			}
			admits, _, _, _ := fs.calls()
			assert.Equal(t, len(tc.waits)+1, admits, "the probes were the calls' admissions")
			assert.Equal(t, uint64(len(tc.waits)+1), snapshot(t, b).StoreErrors)
		})
	}
}

// TestSnapshotProbes: once the backoff has passed, Snapshot may be the
// probe, and ends the episode if the store answers.
func TestSnapshotProbes(t *testing.T) {
	b, fs, logs, e := faultyBreaker(t, breaker.Config{})
	fs.down(true)
	require.NoError(t, b.Do(context.Background(), ok))
	e.clock.Advance(firstBackoff)
	assert.True(t, snapshot(t, b).Degraded, "the probe failed")
	fs.down(false)
	e.clock.Advance(2 * firstBackoff)
	s := snapshot(t, b)
	assert.False(t, s.Degraded)
	assert.Equal(t, uint64(2), s.StoreErrors)
	_, _, _, loads := fs.calls()
	assert.Equal(t, 2, loads)
	assert.Equal(t, []map[string]any{
		degradedLog("fallback-local", "admit"), recoveredLog("fallback-local", 3*firstBackoff, 1),
	}, logs.records(t))
}

// TestProbeIsOneCallAtATime: while one call probes a slow store, the
// others are served by the fallback without asking the store.
func TestProbeIsOneCallAtATime(t *testing.T) {
	b, fs, _, e := faultyBreaker(t, breaker.Config{})
	ctx := context.Background()
	fs.down(true)
	require.NoError(t, b.Do(ctx, ok))

	entered, release := make(chan struct{}), make(chan struct{})
	fs.set(func(s *faultyStore) { s.onFail = func() { close(entered); <-release } })
	e.clock.Advance(firstBackoff)
	probe := make(chan error)
	go func() { probe <- b.Do(ctx, ok) }()
	<-entered

	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			for range 10 {
				assert.NoError(t, b.Do(ctx, ok))
			}
		})
	}
	wg.Wait()
	admits, _, _, _ := fs.calls()
	assert.Equal(t, 2, admits, "the first call and the probe in flight")
	close(release)
	assert.NoError(t, <-probe, "a failed probe is served degraded")
	assert.Equal(t, uint64(1+32*10+1), snapshot(t, b).DegradedCalls)
}

// TestHandBack: when the store answers again its state wins over the
// fallback's, whatever each holds, and what the fallback counted is gone.
func TestHandBack(t *testing.T) {
	ctx := context.Background()

	t.Run("fallback open, shared closed", func(t *testing.T) {
		hooks := &hookLog{}
		b, fs, logs, e := faultyBreaker(t, breaker.Config{FailureThreshold: 2, OnStateChange: hooks.hook})
		fs.down(true)
		require.Same(t, errBoom, b.Do(ctx, failing))
		require.Same(t, errBoom, b.Do(ctx, failing))
		require.ErrorIs(t, b.Do(ctx, ok), breaker.ErrOpen, "the fallback tripped")

		fs.down(false)
		e.clock.Advance(firstBackoff)
		fn := &counter{}
		require.NoError(t, b.Do(ctx, fn.fn))
		assert.Equal(t, 1, fn.count(), "admitted by the shared circuit, which is closed")

		assert.Equal(t, []string{"svc: closed -> open", "svc: open -> closed"}, hooks.list(),
			"the switch back to the shared state is reported")
		assert.Equal(t, []map[string]any{
			degradedLog("fallback-local", "admit"),
			transitionLog("closed", "open", 1, "outcome", true),
			recoveredLog("fallback-local", firstBackoff, 3),
			transitionLog("open", "closed", 0, "store recovered", false),
		}, logs.records(t))
		s := snapshot(t, b)
		assert.False(t, s.Degraded)
		assert.Equal(t, breaker.StateClosed, s.State)
		assert.Equal(t, 0, s.Failures, "the fallback's failures are not carried over")

		require.Same(t, errBoom, b.Do(ctx, failing))
		assert.Equal(t, 1, sharedSnapshot(t, fs).Failures, "outcomes go to the shared store again")

		fs.down(true)
		e.clock.Advance(breaker.DefaultStoreBackoffMax)
		require.NoError(t, b.Do(ctx, ok), "a new episode (StoreBackoffMax after the last) starts with a new, closed fallback")
		assert.Equal(t, 0, snapshot(t, b).Failures)
	})

	t.Run("fallback closed, shared opened by another replica", func(t *testing.T) {
		hooks := &hookLog{}
		b, fs, _, e := faultyBreaker(t, breaker.Config{FailureThreshold: 1, OnStateChange: hooks.hook})
		other, err := breaker.New("svc", breaker.Config{Store: e.store, FailureThreshold: 1})
		require.NoError(t, err)
		fs.down(true)
		require.NoError(t, b.Do(ctx, ok))
		require.Same(t, errBoom, other.Do(ctx, failing), "trips the shared circuit")
		require.NoError(t, b.Do(ctx, ok), "the fallback does not know")

		fs.down(false)
		e.clock.Advance(firstBackoff)
		fn := &counter{}
		require.ErrorIs(t, b.Do(ctx, fn.fn), breaker.ErrOpen, "the shared state wins")
		assert.Equal(t, 0, fn.count())
		assert.Equal(t, []string{"svc: closed -> open"}, hooks.list())
		assert.False(t, snapshot(t, b).Degraded)
	})
}

// TestOutcomesGoToTheStoreThatAdmitted: a call admitted by the shared store
// reports there, one admitted by the fallback reports to that fallback, and
// one whose episode has ended is dropped.
func TestOutcomesGoToTheStoreThatAdmitted(t *testing.T) {
	hooks := &hookLog{}
	b, fs, _, e := faultyBreaker(t, breaker.Config{FailureThreshold: 2, OnStateChange: hooks.hook})
	ctx := context.Background()
	allow := func() func(error) {
		t.Helper()
		done, err := b.Allow(ctx)
		require.NoError(t, err)
		return done
	}
	records := func() int {
		_, n, _, _ := fs.calls()
		return n
	}

	shared := allow()
	fs.set(func(s *faultyStore) { s.failAdmit = true }) // Record would still work
	first, second, third := allow(), allow(), allow()   // the first starts an episode
	require.True(t, snapshot(t, b).Degraded)

	shared(errBoom)
	assert.Equal(t, 1, records())
	assert.Equal(t, 1, sharedSnapshot(t, fs).Failures, "counted by the shared store")
	assert.Equal(t, 0, snapshot(t, b).Failures, "not by the fallback")

	first(errBoom)
	assert.Equal(t, 1, records(), "not sent to the store")
	assert.Equal(t, 1, snapshot(t, b).Failures, "counted by the fallback")

	fs.set(func(s *faultyStore) { s.failAdmit = false })
	e.clock.Advance(firstBackoff)
	probe := allow() // ends the episode
	require.False(t, snapshot(t, b).Degraded)
	second(errBoom) // would trip the old fallback (its second failure)
	assert.Equal(t, 1, records(), "dropped with its episode's fallback")
	assert.Empty(t, hooks.list(), "the old fallback made no transition")
	assert.Equal(t, 1, sharedSnapshot(t, fs).Failures)

	fs.set(func(s *faultyStore) { s.failAdmit = true })
	e.clock.Advance(breaker.DefaultStoreBackoffMax)
	_ = allow() // a second episode, with a fallback of its own
	require.True(t, snapshot(t, b).Degraded)
	third(errBoom)
	assert.Equal(t, 0, snapshot(t, b).Failures, "not counted by the next episode's fallback")
	assert.Empty(t, hooks.list())
	assert.Equal(t, 1, records())

	probe(nil)
	assert.Equal(t, 2, records(), "admitted by the shared store: sent there, even during an episode")
	assert.Equal(t, 0, sharedSnapshot(t, fs).Failures)
}

// TestFailOpenCountsNothing: calls admitted in FailOpen mode are not
// recorded anywhere, panics included.
func TestFailOpenCountsNothing(t *testing.T) {
	hooks := &hookLog{}
	b, fs, _, e := faultyBreaker(t, breaker.Config{Degraded: breaker.FailOpen, FailureThreshold: 1, OnStateChange: hooks.hook})
	ctx := context.Background()
	fs.down(true)
	for range 5 {
		require.Same(t, errBoom, b.Do(ctx, failing))
	}
	assert.Panics(t, func() { _ = b.Do(ctx, func(context.Context) error { panic("kaboom") }) })
	done, err := b.Allow(ctx)
	require.NoError(t, err)
	done(errBoom)

	fs.down(false)
	e.clock.Advance(firstBackoff)
	require.NoError(t, b.Do(ctx, ok))
	_, records, _, _ := fs.calls()
	assert.Equal(t, 1, records, "only the call after the recovery")
	assert.Empty(t, hooks.list())
	assert.Equal(t, breaker.StateClosed, snapshot(t, b).State)
}

// TestFailClosedEndsWithTheStore: in FailClosed mode the probe's call runs
// if the recovered store admits it.
func TestFailClosedEndsWithTheStore(t *testing.T) {
	b, fs, logs, e := faultyBreaker(t, breaker.Config{Degraded: breaker.FailClosed})
	ctx := context.Background()
	fs.down(true)
	var se *breaker.StoreError
	require.ErrorAs(t, b.Do(ctx, ok), &se)
	fs.set(func(s *faultyStore) { s.err = errBoom }) // the latest store error is the one reported
	e.clock.Advance(firstBackoff)
	require.ErrorAs(t, b.Do(ctx, ok), &se)
	assert.Same(t, errBoom, se.Err, "the probe's own error")
	require.ErrorAs(t, b.Do(ctx, ok), &se)
	assert.Same(t, errBoom, se.Err, "the store's latest error")

	fs.down(false)
	e.clock.Advance(2 * firstBackoff)
	require.NoError(t, b.Do(ctx, ok))
	assert.Equal(t, []map[string]any{
		degradedLog("fail-closed", "admit"), recoveredLog("fail-closed", 3*firstBackoff, 3),
	}, logs.records(t))
}

// TestContextDoneStartsNoEpisode: a store call that fails because the
// caller's ctx is done returns ctx.Err() and is not an outage.
func TestContextDoneStartsNoEpisode(t *testing.T) {
	for _, tc := range []struct {
		op   string
		call func(ctx context.Context, b *breaker.Breaker) error
	}{
		{"admit", func(ctx context.Context, b *breaker.Breaker) error { return b.Do(ctx, ok) }},
		{"load", func(ctx context.Context, b *breaker.Breaker) error { _, err := b.Snapshot(ctx); return err }},
		{"apply", func(ctx context.Context, b *breaker.Breaker) error { return b.Reset(ctx) }},
	} {
		t.Run(tc.op, func(t *testing.T) {
			b, fs, logs, _ := faultyBreaker(t, breaker.Config{})
			ctx, cancel := context.WithCancel(context.Background())
			fs.down(true)
			fs.set(func(s *faultyStore) { s.onFail, s.err = cancel, context.Canceled })
			assert.Equal(t, context.Canceled, tc.call(ctx, b))

			fs.down(false)
			s := snapshot(t, b)
			assert.False(t, s.Degraded)
			assert.Equal(t, uint64(0), s.StoreErrors)
			assert.Equal(t, uint64(0), s.DegradedCalls)
			assert.Empty(t, logs.records(t))
		})
	}

	t.Run("probe", func(t *testing.T) {
		b, fs, _, e := faultyBreaker(t, breaker.Config{})
		fs.down(true)
		require.NoError(t, b.Do(context.Background(), ok))
		e.clock.Advance(firstBackoff)
		ctx, cancel := context.WithCancel(context.Background())
		fs.set(func(s *faultyStore) { s.onFail = cancel })
		assert.Equal(t, context.Canceled, b.Do(ctx, ok))
		fs.set(func(s *faultyStore) { s.onFail = nil })
		require.NoError(t, b.Do(context.Background(), ok))
		admits, _, _, _ := fs.calls()
		assert.Equal(t, 3, admits, "the aborted probe did not start a new backoff: the next call probed")
		assert.Equal(t, uint64(2), snapshot(t, b).StoreErrors)
	})

	t.Run("the store's own deadline is an outage", func(t *testing.T) {
		b, fs, _, _ := faultyBreaker(t, breaker.Config{})
		fs.down(true)
		fs.set(func(s *faultyStore) { s.err = context.DeadlineExceeded })
		require.NoError(t, b.Do(context.Background(), ok), "served by the fallback")
		assert.True(t, snapshot(t, b).Degraded)
	})
}

// TestUnknownCircuitStartsNoEpisode: ErrUnknownCircuit is an answer, not an
// outage: it is returned (and logged) every time, with no episode.
func TestUnknownCircuitStartsNoEpisode(t *testing.T) {
	b, fs, logs, _ := faultyBreaker(t, breaker.Config{})
	ctx := context.Background()
	fs.set(func(s *faultyStore) { s.failAdmit, s.failApply, s.err = true, true, breaker.ErrUnknownCircuit })
	fn := &counter{}
	for range 2 {
		err := b.Do(ctx, fn.fn)
		var se *breaker.StoreError
		require.ErrorAs(t, err, &se)
		assert.Equal(t, "admit", se.Op)
		assert.ErrorIs(t, err, breaker.ErrUnknownCircuit)
	}
	assert.ErrorIs(t, b.Reset(ctx), breaker.ErrUnknownCircuit)
	assert.Equal(t, 0, fn.count())
	admits, _, _, _ := fs.calls()
	assert.Equal(t, 2, admits, "no backoff")
	s := snapshot(t, b)
	assert.False(t, s.Degraded)
	assert.Equal(t, uint64(3), s.StoreErrors)
	unknown := "tripline: unknown circuit"
	assert.Equal(t, []map[string]any{
		storeFailedLog("admit", 1, unknown), storeFailedLog("admit", 2, unknown), storeFailedLog("apply", 3, unknown),
	}, logs.records(t))
}

// TestCommandsDuringAnEpisode: commands go to the store even during an
// episode's backoff, and to the fallback; one that succeeds does not end
// the episode, and reports one transition when the store and the fallback
// made the same one.
func TestCommandsDuringAnEpisode(t *testing.T) {
	hooks := &hookLog{}
	b, fs, _, e := faultyBreaker(t, breaker.Config{OnStateChange: hooks.hook})
	ctx := context.Background()
	fs.set(func(s *faultyStore) { s.failAdmit = true })
	require.NoError(t, b.Do(ctx, ok))
	require.NoError(t, b.ForceOpen(ctx, 0))
	assert.Equal(t, breaker.StateOpen, sharedSnapshot(t, fs).State)
	assert.True(t, snapshot(t, b).Degraded)
	require.ErrorIs(t, b.Do(ctx, ok), breaker.ErrOpen, "the fallback is forced open too")
	assert.Equal(t, []string{"svc: closed -> open"}, hooks.list(), "one command, one transition")

	fs.set(func(s *faultyStore) { s.failAdmit = false })
	e.clock.Advance(firstBackoff)
	require.ErrorIs(t, b.Do(ctx, ok), breaker.ErrOpen, "the forced-open shared circuit after the hand-back")
	assert.False(t, snapshot(t, b).Degraded)
	assert.Equal(t, []string{"svc: closed -> open"}, hooks.list(), "the same state on both sides at the hand-back")
}

// TestHealthyHotPathDoesNotAllocate: the check for an episode costs the
// closed-state success path nothing.
func TestHealthyHotPathDoesNotAllocate(t *testing.T) {
	b, _ := newEnv().breaker(t, breaker.Config{})
	ctx := context.Background()
	allocs := testing.AllocsPerRun(100, func() { _ = b.Do(ctx, ok) })
	assert.Equal(t, 0.0, allocs)
}

func TestDegradedModeText(t *testing.T) {
	for _, m := range []breaker.DegradedMode{breaker.FallbackLocal, breaker.FailOpen, breaker.FailClosed} {
		text, err := m.MarshalText()
		require.NoError(t, err)
		var got breaker.DegradedMode
		require.NoError(t, got.UnmarshalText(text))
		assert.Equal(t, m, got)
	}
	assert.Equal(t, "fallback-local", breaker.DegradedMode(0).String(), "the zero value is the default")
	assert.Equal(t, "DegradedMode(9)", breaker.DegradedMode(9).String())
	_, err := breaker.DegradedMode(9).MarshalText()
	assert.Error(t, err)
	var m breaker.DegradedMode
	assert.ErrorContains(t, m.UnmarshalText([]byte("fail-sometimes")), `unknown degraded mode "fail-sometimes"`)
	_, err = breaker.ParseDegradedMode("")
	assert.Error(t, err)
}

// TestEpisodeResumesWhenWritesFail: a store that answers admissions but
// refuses every write (Redis at maxmemory with noeviction) ends each
// episode at its probe and starts the next at once. The next episode
// resumes the last one's fallback and backoff, so a dependency that fails
// all along gets FailureThreshold calls and then one per probe, with the
// probes ever further apart; once the store records again, it is used.
func TestEpisodeResumesWhenWritesFail(t *testing.T) {
	hooks := &hookLog{}
	b, fs, logs, e := faultyBreaker(t, breaker.Config{FailureThreshold: 3, Timeout: time.Minute, OnStateChange: hooks.hook})
	ctx := context.Background()
	fs.set(func(s *faultyStore) { s.failRecord = true })
	dep := &counter{err: errBoom}

	for range 3 {
		require.Same(t, errBoom, b.Do(ctx, dep.fn))
	}
	require.ErrorIs(t, b.Do(ctx, dep.fn), breaker.ErrOpen, "the fallback tripped: the first failure, unrecorded, counted too")
	assert.Equal(t, 3, dep.count())
	assert.Equal(t, []string{"svc: closed -> open"}, hooks.list())

	// Each probe is admitted by the shared (closed) circuit, ends the
	// episode, runs, fails to record, and the next episode resumes the
	// open fallback; the backoff doubles across them.
	for i, wait := range []time.Duration{50 * time.Millisecond, 100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond} {
		e.clock.Advance(wait - time.Millisecond)
		require.ErrorIs(t, b.Do(ctx, dep.fn), breaker.ErrOpen, "probe %d: not before %s", i, wait)
		e.clock.Advance(time.Millisecond)
		require.Same(t, errBoom, b.Do(ctx, dep.fn), "probe %d", i)
		require.ErrorIs(t, b.Do(ctx, dep.fn), breaker.ErrOpen, "after probe %d: the resumed fallback is open", i)
		assert.Equal(t, 3+i+1, dep.count())
		assert.True(t, snapshot(t, b).Degraded)
	}
	assert.Equal(t, []string{
		"svc: closed -> open",
		"svc: open -> closed", "svc: closed -> open", // hand-back to the shared state, resumed fallback
		"svc: open -> closed", "svc: closed -> open",
		"svc: open -> closed", "svc: closed -> open",
		"svc: open -> closed", "svc: closed -> open",
	}, hooks.list(), "every switch is reported")
	resumed := 0
	for _, r := range logs.records(t) {
		if _, ok := r["resumes_after"]; ok {
			resumed++
		}
	}
	assert.Equal(t, 4, resumed, "each episode after the first says it resumed")

	// Writes work again: the next probe hands back for good.
	fs.set(func(s *faultyStore) { s.failRecord = false })
	e.clock.Advance(800 * time.Millisecond)
	require.NoError(t, b.Do(ctx, ok))
	s := snapshot(t, b)
	assert.False(t, s.Degraded)
	assert.Equal(t, breaker.StateClosed, s.State)
	_, records, _, _ := fs.calls()
	assert.Equal(t, 1+4+1, records, "the first call, the probes, and the last call went to the store")

	// Long after, a new outage starts with a new, closed fallback.
	e.clock.Advance(breaker.DefaultStoreBackoffMax)
	fs.set(func(s *faultyStore) { s.failRecord = true })
	require.Same(t, errBoom, b.Do(ctx, dep.fn))
	s = snapshot(t, b)
	assert.True(t, s.Degraded)
	assert.Equal(t, breaker.StateClosed, s.State)
	assert.Equal(t, 1, s.Failures)
}

// TestNoResumeAfterRecordedOutcomes: once the store has recorded outcomes
// again after a hand-back, a store blip within StoreBackoffMax starts a new
// episode with a new, closed fallback; the old tripped one stays set aside.
func TestNoResumeAfterRecordedOutcomes(t *testing.T) {
	b, fs, _, e := faultyBreaker(t, breaker.Config{FailureThreshold: 3, Timeout: time.Minute})
	ctx := context.Background()
	fs.down(true)
	for range 3 {
		_ = b.Do(ctx, (&counter{err: errBoom}).fn)
	}
	require.ErrorIs(t, b.Do(ctx, ok), breaker.ErrOpen, "fallback tripped")
	fs.down(false)
	e.clock.Advance(50 * time.Millisecond)
	require.NoError(t, b.Do(ctx, ok), "probe hands back")
	for range 20 {
		require.NoError(t, b.Do(ctx, ok), "healthy via shared store")
	}
	e.clock.Advance(500 * time.Millisecond)
	fs.set(func(s *faultyStore) { s.failAdmit = true }) // one blip
	_ = b.Do(ctx, ok)
	fs.down(false)
	e.clock.Advance(10 * time.Millisecond)
	err := b.Do(ctx, ok)
	assert.NoError(t, err, "dependency healthy, 21 successes recorded since: not the old open fallback")
	s := snapshot(t, b)
	assert.True(t, s.Degraded)
	assert.Equal(t, breaker.StateClosed, s.State)
}

// TestResumedEpisodeTakesEarlierOutcomes: a probe the fallback admitted in
// one episode reports to it in the episode that resumed it, so its permit
// does not stay held until ProbeTimeout.
func TestResumedEpisodeTakesEarlierOutcomes(t *testing.T) {
	b, fs, _, e := faultyBreaker(t, breaker.Config{FailureThreshold: 1, Timeout: time.Second, ProbeTimeout: 30 * time.Second})
	ctx := context.Background()
	fs.down(true)
	_ = b.Do(ctx, (&counter{err: errBoom}).fn) // fallback opens
	e.clock.Advance(2 * time.Second)           // store backoff passed too, but store still down
	// The store's probe fails (down) and this call is served by the fallback, now half-open: a probe.
	done, err := b.Allow(ctx)
	require.NoError(t, err)
	fs.down(false)
	e.clock.Advance(2100 * time.Millisecond)
	require.NoError(t, b.Do(ctx, ok), "store probe hands back")
	fs.down(true)
	_ = b.Do(ctx, ok) // resumed episode (within StoreBackoffMax)
	done(nil)         // the fallback's probe succeeds, in the resumed episode
	e.clock.Advance(10 * time.Millisecond)
	err = b.Do(ctx, ok)
	assert.NoError(t, err, "the probe succeeded and closed the fallback")
}

// TestNoResumeAfterOutcomesDuringHandBack: outcomes the store records while
// the hand-back is still reporting its switch (OnStateChange runs on the
// probing call) also prevent the next episode from resuming the old
// fallback.
func TestNoResumeAfterOutcomesDuringHandBack(t *testing.T) {
	ctx := context.Background()
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	hook := func(_ string, from, to breaker.State) {
		if from == breaker.StateOpen && to == breaker.StateClosed {
			once.Do(func() { close(entered); <-release })
		}
	}
	b, fs, _, e := faultyBreaker(t, breaker.Config{FailureThreshold: 3, Timeout: time.Minute, OnStateChange: hook})
	fs.down(true)
	for range 3 {
		require.Same(t, errBoom, b.Do(ctx, failing))
	}
	require.ErrorIs(t, b.Do(ctx, ok), breaker.ErrOpen, "the fallback tripped")

	fs.down(false)
	e.clock.Advance(firstBackoff)
	type admitted struct {
		done func(error)
		err  error
	}
	probe := make(chan admitted)
	go func() { done, err := b.Allow(ctx); probe <- admitted{done, err} }() // hands back; its hook blocks
	<-entered
	for range 20 {
		require.NoError(t, b.Do(ctx, ok), "decided and recorded by the shared store")
	}
	close(release)
	p := <-probe
	require.NoError(t, p.err)
	defer p.done(nil) // the probe's own outcome comes last

	fs.set(func(s *faultyStore) { s.failAdmit = true }) // one blip
	_ = b.Do(ctx, ok)
	fs.down(false)
	e.clock.Advance(10 * time.Millisecond)
	require.NoError(t, b.Do(ctx, ok), "a new, closed fallback: not the old open one")
	s := snapshot(t, b)
	assert.True(t, s.Degraded)
	assert.Equal(t, breaker.StateClosed, s.State)
}
