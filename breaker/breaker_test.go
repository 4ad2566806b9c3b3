package breaker_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tripline/tripline/breaker"
)

func TestDoReturnsFnResult(t *testing.T) {
	b, _ := newEnv().breaker(t, breaker.Config{})
	ctx := context.Background()

	var gotCtx context.Context
	err := b.Do(ctx, func(c context.Context) error { gotCtx = c; return nil })
	require.NoError(t, err)
	assert.Equal(t, ctx, gotCtx, "fn gets the caller's ctx")

	err = b.Do(ctx, failing)
	assert.Same(t, errBoom, err, "Do returns fn's own error, unwrapped")
	assert.Equal(t, "svc", b.Name())
}

func TestExecuteReturnsFnResult(t *testing.T) {
	b, _ := newEnv().breaker(t, breaker.Config{FailureThreshold: 1})
	ctx := context.Background()

	v, err := breaker.Execute(ctx, b, func(context.Context) (string, error) { return "hello", nil })
	require.NoError(t, err)
	assert.Equal(t, "hello", v)

	v, err = breaker.Execute(ctx, b, func(context.Context) (string, error) { return "partial", errBoom })
	assert.Same(t, errBoom, err)
	assert.Equal(t, "partial", v, "Execute returns fn's value along with its error")

	ran := false
	v, err = breaker.Execute(ctx, b, func(context.Context) (string, error) { ran = true; return "x", nil })
	assert.ErrorIs(t, err, breaker.ErrOpen)
	assert.Equal(t, "", v, "a rejected Execute returns the zero value")
	assert.False(t, ran)
}

func TestAllowDoneCountsOnce(t *testing.T) {
	b, hooks := newEnv().breaker(t, breaker.Config{FailureThreshold: 2})
	ctx := context.Background()

	done, err := b.Allow(ctx)
	require.NoError(t, err)
	require.NotNil(t, done)
	done(errBoom)
	done(errBoom) // ignored: only the first call of done counts
	done(nil)

	s := snapshot(t, b)
	assert.Equal(t, breaker.StateClosed, s.State)
	assert.Equal(t, 1, s.Failures)

	done, err = b.Allow(ctx)
	require.NoError(t, err)
	done(errBoom)
	assert.Equal(t, []string{"svc: closed -> open"}, hooks.list())

	done, err = b.Allow(ctx)
	assert.ErrorIs(t, err, breaker.ErrOpen)
	assert.Nil(t, done, "a rejected Allow returns no done func")
}

func TestAllowDoneConcurrentCallsCountOnce(t *testing.T) {
	b, _ := newEnv().breaker(t, breaker.Config{FailureThreshold: 3})
	done, err := b.Allow(context.Background())
	require.NoError(t, err)
	start := make(chan struct{})
	finished := make(chan struct{})
	for range 8 {
		go func() {
			defer func() { finished <- struct{}{} }()
			<-start
			done(errBoom)
		}()
	}
	close(start)
	for range 8 {
		<-finished
	}
	assert.Equal(t, 1, snapshot(t, b).Failures)
}

func TestConsecutiveFailuresOpenAtThreshold(t *testing.T) {
	e := newEnv()
	b, hooks := e.breaker(t, breaker.Config{FailureThreshold: 3, Timeout: 30 * time.Second})
	ctx := context.Background()
	fn := &counter{err: errBoom}

	// A success resets the count.
	require.ErrorIs(t, b.Do(ctx, fn.fn), errBoom)
	require.ErrorIs(t, b.Do(ctx, fn.fn), errBoom)
	require.NoError(t, b.Do(ctx, ok))
	assert.Equal(t, 0, snapshot(t, b).Failures, "a success resets the consecutive count")

	// Three calls fail and are run; the fourth is rejected.
	for i := range 3 {
		assert.ErrorIs(t, b.Do(ctx, fn.fn), errBoom, "call %d", i+1)
	}
	assert.Equal(t, 5, fn.count())
	err := b.Do(ctx, fn.fn)
	assert.ErrorIs(t, err, breaker.ErrOpen)
	assert.Equal(t, 5, fn.count(), "the fourth call is not run")

	s := snapshot(t, b)
	assert.Equal(t, breaker.StateOpen, s.State)
	assert.Equal(t, uint64(1), s.Generation)
	assert.Equal(t, e.clock.Now(), s.OpenedAt)
	assert.Equal(t, e.clock.Now().Add(30*time.Second), s.RetryAt)
	assert.Equal(t, e.clock.Now(), s.LastFailure)
	assert.Equal(t, []string{"svc: closed -> open"}, hooks.list())
}

func TestWindowFailuresSlideOut(t *testing.T) {
	e := newEnv()
	b, hooks := e.breaker(t, breaker.Config{FailureThreshold: 3, FailureWindow: 10 * time.Second})
	ctx := context.Background()

	require.ErrorIs(t, b.Do(ctx, failing), errBoom) // t0
	e.clock.Advance(time.Second)
	require.NoError(t, b.Do(ctx, ok))
	assert.Equal(t, 1, snapshot(t, b).Failures, "successes erase nothing in window mode")

	e.clock.Advance(3 * time.Second)
	require.ErrorIs(t, b.Do(ctx, failing), errBoom) // t0+4s
	assert.Equal(t, 2, snapshot(t, b).Failures)

	e.clock.Advance(7 * time.Second) // t0+11s: the t0 failure has slid out
	assert.Equal(t, 1, snapshot(t, b).Failures)
	require.ErrorIs(t, b.Do(ctx, failing), errBoom) // t0+11s
	assert.Equal(t, breaker.StateClosed, snapshot(t, b).State, "two failures within the window do not open it")

	e.clock.Advance(time.Second)
	require.ErrorIs(t, b.Do(ctx, failing), errBoom) // t0+12s: three within [t0+2s, t0+12s]
	assert.Equal(t, breaker.StateOpen, snapshot(t, b).State)
	assert.ErrorIs(t, b.Do(ctx, ok), breaker.ErrOpen)
	assert.Equal(t, []string{"svc: closed -> open"}, hooks.list())
}

func TestOpenRejectsWithRetryAfter(t *testing.T) {
	e := newEnv()
	b, hooks := e.breaker(t, breaker.Config{FailureThreshold: 1, Timeout: 30 * time.Second})
	ctx := context.Background()
	require.ErrorIs(t, b.Do(ctx, failing), errBoom)

	fn := &counter{}
	e.clock.Advance(10 * time.Second)
	err := b.Do(ctx, fn.fn)
	var oe *breaker.OpenError
	require.ErrorAs(t, err, &oe)
	assert.Equal(t, breaker.OpenError{Name: "svc", State: breaker.StateOpen, RetryAfter: 20 * time.Second}, *oe)
	assert.ErrorIs(t, err, breaker.ErrOpen)

	e.clock.Advance(20*time.Second - time.Millisecond)
	_, err = breaker.Execute(ctx, b, func(ctx context.Context) (int, error) { return 0, fn.fn(ctx) })
	require.ErrorAs(t, err, &oe)
	assert.Equal(t, time.Millisecond, oe.RetryAfter)

	_, err = b.Allow(ctx)
	require.ErrorAs(t, err, &oe)
	assert.Equal(t, 0, fn.count(), "no rejected call runs fn")

	// Once Timeout has passed, the next call finds the circuit half-open.
	e.clock.Advance(time.Millisecond)
	require.NoError(t, b.Do(ctx, func(ctx context.Context) error {
		assert.Equal(t, breaker.StateHalfOpen, snapshot(t, b).State)
		return fn.fn(ctx)
	}))
	assert.Equal(t, 1, fn.count())
	assert.Equal(t, breaker.StateClosed, snapshot(t, b).State)
	assert.Equal(t, []string{"svc: closed -> open", "svc: open -> half-open", "svc: half-open -> closed"}, hooks.list())
}

// trip opens b's circuit (FailureThreshold 1) and moves the clock past
// Timeout so that the next call is a probe.
func trip(t *testing.T, e *env, b *breaker.Breaker) {
	t.Helper()
	require.ErrorIs(t, b.Do(context.Background(), failing), errBoom)
	require.Equal(t, breaker.StateOpen, snapshot(t, b).State)
	e.clock.Advance(b.Policy().Timeout)
}

func TestHalfOpenProbeLimit(t *testing.T) {
	e := newEnv()
	b, _ := e.breaker(t, breaker.Config{
		FailureThreshold: 1, HalfOpenMaxCalls: 2, SuccessThreshold: 3, ProbeTimeout: 5 * time.Second,
	})
	ctx := context.Background()
	trip(t, e, b)

	done1, err := b.Allow(ctx)
	require.NoError(t, err)
	e.clock.Advance(time.Second)
	done2, err := b.Allow(ctx)
	require.NoError(t, err)
	s := snapshot(t, b)
	assert.Equal(t, breaker.StateHalfOpen, s.State)
	assert.Equal(t, 2, s.Probes)

	// Both slots are taken: other calls are rejected until the oldest permit lapses.
	fn := &counter{}
	err = b.Do(ctx, fn.fn)
	var oe *breaker.OpenError
	require.ErrorAs(t, err, &oe)
	assert.ErrorIs(t, err, breaker.ErrOpen)
	assert.Equal(t, breaker.OpenError{Name: "svc", State: breaker.StateHalfOpen, RetryAfter: 4 * time.Second}, *oe)
	assert.Equal(t, 0, fn.count())

	// A probe that reports frees its slot.
	done1(nil)
	s = snapshot(t, b)
	assert.Equal(t, breaker.StateHalfOpen, s.State)
	assert.Equal(t, 1, s.Probes)
	assert.Equal(t, 1, s.Successes)
	require.NoError(t, b.Do(ctx, fn.fn))
	assert.Equal(t, 1, fn.count())
	done2(nil)
	assert.Equal(t, breaker.StateClosed, snapshot(t, b).State, "the third success closes it")
}

func TestHalfOpenConcurrentProbesNeverExceedLimit(t *testing.T) {
	e := newEnv()
	b, _ := e.breaker(t, breaker.Config{FailureThreshold: 1, HalfOpenMaxCalls: 3})
	trip(t, e, b)

	const callers = 32
	start := make(chan struct{})
	results := make(chan func(error), callers)
	for range callers {
		go func() {
			<-start
			done, err := b.Allow(context.Background())
			if err != nil {
				assert.ErrorIs(t, err, breaker.ErrOpen)
			}
			results <- done
		}()
	}
	close(start)
	var admitted []func(error)
	for range callers {
		if done := <-results; done != nil {
			admitted = append(admitted, done)
		}
	}
	assert.Len(t, admitted, 3)
	assert.Equal(t, 3, snapshot(t, b).Probes)
}

func TestSuccessThresholdClosesWithCountersCleared(t *testing.T) {
	e := newEnv()
	b, hooks := e.breaker(t, breaker.Config{FailureThreshold: 1, SuccessThreshold: 3})
	ctx := context.Background()
	trip(t, e, b)

	for i := 1; i <= 2; i++ {
		require.NoError(t, b.Do(ctx, ok))
		s := snapshot(t, b)
		assert.Equal(t, breaker.StateHalfOpen, s.State)
		assert.Equal(t, i, s.Successes)
	}
	require.NoError(t, b.Do(ctx, ok))
	s := snapshot(t, b)
	assert.Equal(t, breaker.StateClosed, s.State)
	assert.Equal(t, 0, s.Successes)
	assert.Equal(t, 0, s.Failures)
	assert.Equal(t, 0, s.Probes)
	assert.True(t, s.OpenedAt.IsZero())
	assert.True(t, s.RetryAt.IsZero())
	assert.Equal(t, uint64(3), s.Generation)
	assert.Equal(t, []string{"svc: closed -> open", "svc: open -> half-open", "svc: half-open -> closed"}, hooks.list())
}

func TestHalfOpenFailureReopensForFullTimeout(t *testing.T) {
	e := newEnv()
	b, hooks := e.breaker(t, breaker.Config{FailureThreshold: 1, SuccessThreshold: 2, Timeout: 30 * time.Second})
	ctx := context.Background()
	trip(t, e, b)

	require.NoError(t, b.Do(ctx, ok))
	e.clock.Advance(5 * time.Second)
	require.ErrorIs(t, b.Do(ctx, failing), errBoom)

	s := snapshot(t, b)
	assert.Equal(t, breaker.StateOpen, s.State)
	assert.Equal(t, 0, s.Successes, "reopening clears the probe successes")
	assert.Equal(t, e.clock.Now(), s.OpenedAt)
	assert.Equal(t, e.clock.Now().Add(30*time.Second), s.RetryAt)
	var oe *breaker.OpenError
	require.ErrorAs(t, b.Do(ctx, ok), &oe)
	assert.Equal(t, 30*time.Second, oe.RetryAfter, "a failed probe reopens for a full Timeout")
	assert.Equal(t, []string{"svc: closed -> open", "svc: open -> half-open", "svc: half-open -> open"}, hooks.list())
}

func TestProbePermitLapses(t *testing.T) {
	e := newEnv()
	b, hooks := e.breaker(t, breaker.Config{FailureThreshold: 1, ProbeTimeout: 5 * time.Second})
	ctx := context.Background()
	trip(t, e, b)

	stale, err := b.Allow(ctx) // this probe's caller "dies": done is not called in time
	require.NoError(t, err)
	var oe *breaker.OpenError
	require.ErrorAs(t, b.Do(ctx, ok), &oe)
	assert.Equal(t, 5*time.Second, oe.RetryAfter)

	e.clock.Advance(5 * time.Second)
	assert.Equal(t, 0, snapshot(t, b).Probes, "the permit has lapsed")
	fresh, err := b.Allow(ctx)
	require.NoError(t, err, "a lapsed permit frees its slot")

	stale(errBoom) // late: ignored, does not reopen the circuit
	s := snapshot(t, b)
	assert.Equal(t, breaker.StateHalfOpen, s.State)
	assert.Equal(t, 1, s.Probes)

	fresh(nil)
	assert.Equal(t, breaker.StateClosed, snapshot(t, b).State)
	assert.Equal(t, []string{"svc: closed -> open", "svc: open -> half-open", "svc: half-open -> closed"}, hooks.list())
}

func TestDefaultProbeTimeoutLapses(t *testing.T) {
	e := newEnv()
	b, _ := e.breaker(t, breaker.Config{FailureThreshold: 1})
	ctx := context.Background()
	trip(t, e, b)
	_, err := b.Allow(ctx)
	require.NoError(t, err)
	e.clock.Advance(breaker.DefaultProbeTimeout - time.Millisecond)
	require.ErrorIs(t, b.Do(ctx, ok), breaker.ErrOpen)
	e.clock.Advance(time.Millisecond)
	require.NoError(t, b.Do(ctx, ok))
}

func TestStaleGenerationIgnored(t *testing.T) {
	e := newEnv()
	b, hooks := e.breaker(t, breaker.Config{FailureThreshold: 1})
	ctx := context.Background()

	slow, err := b.Allow(ctx) // admitted while closed, generation 0
	require.NoError(t, err)

	// Meanwhile the circuit opens, goes half-open and closes again.
	require.ErrorIs(t, b.Do(ctx, failing), errBoom)
	e.clock.Advance(b.Policy().Timeout)
	require.NoError(t, b.Do(ctx, ok))
	require.Equal(t, uint64(3), snapshot(t, b).Generation)

	slow(errBoom) // threshold 1: it would trip the circuit if it counted
	s := snapshot(t, b)
	assert.Equal(t, breaker.StateClosed, s.State)
	assert.Equal(t, 0, s.Failures)
	assert.Equal(t, uint64(3), s.Generation)
	assert.Len(t, hooks.list(), 3, "the stale outcome causes no transition")
}

func TestStaleGenerationIgnoredForSlowDo(t *testing.T) {
	e := newEnv()
	b, hooks := e.breaker(t, breaker.Config{FailureThreshold: 2})
	other, _ := e.breaker(t, breaker.Config{FailureThreshold: 2})
	ctx := context.Background()

	started, release := make(chan struct{}), make(chan struct{})
	result := make(chan error, 1)
	go func() {
		result <- b.Do(ctx, func(context.Context) error {
			close(started)
			<-release
			return errBoom
		})
	}()
	<-started
	// While the slow call runs, another replica trips the circuit and an
	// operator resets it.
	require.ErrorIs(t, other.Do(ctx, failing), errBoom)
	require.ErrorIs(t, other.Do(ctx, failing), errBoom)
	require.NoError(t, other.Reset(ctx))
	require.ErrorIs(t, other.Do(ctx, failing), errBoom) // generation 2, one failure
	close(release)
	assert.ErrorIs(t, <-result, errBoom, "the caller still gets fn's error")

	s := snapshot(t, b)
	assert.Equal(t, breaker.StateClosed, s.State)
	assert.Equal(t, 1, s.Failures, "the slow call's failure is not counted")
	assert.Equal(t, uint64(2), s.Generation)
	assert.Empty(t, hooks.list())
}

func TestStaleGenerationIgnoredAfterResetInsideFn(t *testing.T) {
	b, _ := newEnv().breaker(t, breaker.Config{FailureThreshold: 1})
	ctx := context.Background()
	err := b.Do(ctx, func(ctx context.Context) error {
		require.NoError(t, b.Reset(ctx)) // a transition while fn runs
		return errBoom
	})
	assert.ErrorIs(t, err, errBoom)
	s := snapshot(t, b)
	assert.Equal(t, breaker.StateClosed, s.State)
	assert.Equal(t, 0, s.Failures)
}

func TestPanicCountsAsFailureAndContinues(t *testing.T) {
	for _, tc := range []struct {
		name string
		call func(b *breaker.Breaker)
	}{
		{"Do", func(b *breaker.Breaker) {
			_ = b.Do(context.Background(), func(context.Context) error { panic("kaboom") })
		}},
		{"Execute", func(b *breaker.Breaker) {
			_, _ = breaker.Execute(context.Background(), b, func(context.Context) (int, error) { panic("kaboom") })
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, hooks := newEnv().breaker(t, breaker.Config{FailureThreshold: 2})
			recovered := func() (r any) {
				defer func() { r = recover() }()
				tc.call(b)
				return nil
			}
			assert.Equal(t, "kaboom", recovered(), "the panic continues to the caller")
			assert.Equal(t, 1, snapshot(t, b).Failures, "the panic counts as a failure")
			assert.Equal(t, "kaboom", recovered())
			assert.Equal(t, breaker.StateOpen, snapshot(t, b).State)
			assert.Equal(t, []string{"svc: closed -> open"}, hooks.list())
		})
	}
}

// TestGoexitCountsAsFailure: runtime.Goexit in the function (t.FailNow
// calls it) counts as a failure, as a panic does, and the Goexit goes on:
// the caller's goroutine ends.
func TestGoexitCountsAsFailure(t *testing.T) {
	for _, tc := range []struct {
		name string
		call func(b *breaker.Breaker)
	}{
		{"Do", func(b *breaker.Breaker) {
			_ = b.Do(context.Background(), func(context.Context) error { runtime.Goexit(); return nil })
		}},
		{"Execute", func(b *breaker.Breaker) {
			_, _ = breaker.Execute(context.Background(), b, func(context.Context) (int, error) { runtime.Goexit(); return 1, nil })
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, hooks := newEnv().breaker(t, breaker.Config{FailureThreshold: 2})
			exits := func() bool {
				ended := make(chan struct{})
				returned := false
				go func() {
					defer close(ended) // deferred calls run on a Goexit too
					tc.call(b)
					returned = true
				}()
				<-ended
				return !returned
			}
			require.True(t, exits())
			assert.Equal(t, 1, snapshot(t, b).Failures, "the Goexit counts as a failure")
			require.True(t, exits())
			assert.Equal(t, breaker.StateOpen, snapshot(t, b).State)
			assert.Equal(t, []string{"svc: closed -> open"}, hooks.list())
		})
	}
}

func TestPanicDuringProbeReopens(t *testing.T) {
	e := newEnv()
	b, _ := e.breaker(t, breaker.Config{FailureThreshold: 1})
	trip(t, e, b)
	assert.PanicsWithError(t, errBoom.Error(), func() {
		_ = b.Do(context.Background(), func(context.Context) error { panic(errBoom) })
	})
	assert.Equal(t, breaker.StateOpen, snapshot(t, b).State)
}

func TestDoneContextNotRunNotCounted(t *testing.T) {
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	expired, cancel2 := context.WithDeadline(context.Background(), time.Unix(0, 0))
	defer cancel2()

	calls := []struct {
		name string
		call func(ctx context.Context, b *breaker.Breaker, fn *counter) error
	}{
		{"Do", func(ctx context.Context, b *breaker.Breaker, fn *counter) error { return b.Do(ctx, fn.fn) }},
		{"Execute", func(ctx context.Context, b *breaker.Breaker, fn *counter) error {
			_, err := breaker.Execute(ctx, b, func(ctx context.Context) (int, error) { return 1, fn.fn(ctx) })
			return err
		}},
		{"Allow", func(ctx context.Context, b *breaker.Breaker, _ *counter) error {
			done, err := b.Allow(ctx)
			assert.Nil(t, done)
			return err
		}},
	}
	for _, c := range calls {
		for _, cx := range []struct {
			name string
			ctx  context.Context
			want error
		}{{"canceled", canceled, context.Canceled}, {"deadline", expired, context.DeadlineExceeded}} {
			for _, open := range []bool{false, true} {
				t.Run(fmt.Sprintf("%s/%s/open=%t", c.name, cx.name, open), func(t *testing.T) {
					b, hooks := newEnv().breaker(t, breaker.Config{FailureThreshold: 1})
					if open {
						require.ErrorIs(t, b.Do(context.Background(), failing), errBoom)
					}
					before := snapshot(t, b)
					fn := &counter{err: errBoom}
					err := c.call(cx.ctx, b, fn)
					assert.Equal(t, cx.want, err, "ctx.Err() itself, even when the circuit is open")
					assert.Equal(t, 0, fn.count(), "fn is not run")
					assert.Equal(t, before, snapshot(t, b), "nothing is counted")
					assert.Len(t, hooks.list(), int(before.Generation), "no transition")
				})
			}
		}
	}
}

func TestContextCanceledWhileFnRunsStillCounts(t *testing.T) {
	b, _ := newEnv().breaker(t, breaker.Config{FailureThreshold: 1})
	ctx, cancel := context.WithCancel(context.Background())
	err := b.Do(ctx, func(context.Context) error {
		cancel() // the caller gives up while fn runs
		return errBoom
	})
	assert.ErrorIs(t, err, errBoom)
	assert.Equal(t, breaker.StateOpen, snapshot(t, b).State, "the outcome is recorded with a live context")
}

func TestIsFailureFalseCountsAsSuccess(t *testing.T) {
	var seen []error
	e := newEnv()
	b, _ := e.breaker(t, breaker.Config{
		FailureThreshold: 2,
		IsFailure: func(err error) bool {
			seen = append(seen, err)
			return !errors.Is(err, errIgnored)
		},
	})
	ctx := context.Background()

	require.ErrorIs(t, b.Do(ctx, failing), errBoom)
	assert.Equal(t, 1, snapshot(t, b).Failures)
	err := b.Do(ctx, func(context.Context) error { return fmt.Errorf("wrapped: %w", errIgnored) })
	assert.ErrorIs(t, err, errIgnored, "the caller still gets the error")
	assert.Equal(t, 0, snapshot(t, b).Failures, "it counted as a success and reset the count")

	// A nil error is a success without asking IsFailure.
	require.NoError(t, b.Do(ctx, ok))
	assert.Len(t, seen, 2)

	// In half-open, an ignored error is a successful probe.
	require.ErrorIs(t, b.Do(ctx, failing), errBoom)
	require.ErrorIs(t, b.Do(ctx, failing), errBoom)
	e.clock.Advance(b.Policy().Timeout)
	require.ErrorIs(t, b.Do(ctx, func(context.Context) error { return errIgnored }), errIgnored)
	assert.Equal(t, breaker.StateClosed, snapshot(t, b).State)
}

func TestIsFailureNotAskedAboutNil(t *testing.T) {
	// A predicate written for errors only ("not a 4xx") would call nil a
	// failure; nil is always a success.
	b, _ := newEnv().breaker(t, breaker.Config{
		FailureThreshold: 1,
		IsFailure:        func(err error) bool { return !errors.Is(err, errIgnored) },
	})
	require.NoError(t, b.Do(context.Background(), ok))
	assert.Equal(t, breaker.StateClosed, snapshot(t, b).State)
}

func TestDefaultIsFailure(t *testing.T) {
	for _, tc := range []struct {
		name    string
		err     error
		failure bool
	}{
		{"nil", nil, false},
		{"error", errBoom, true},
		{"canceled", context.Canceled, false},
		{"wrapped canceled", fmt.Errorf("query: %w", context.Canceled), false},
		{"deadline exceeded", context.DeadlineExceeded, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, _ := newEnv().breaker(t, breaker.Config{FailureThreshold: 2})
			ctx := context.Background()
			require.ErrorIs(t, b.Do(ctx, failing), errBoom)
			err := b.Do(ctx, func(context.Context) error { return tc.err })
			assert.Equal(t, tc.err, err)
			want := breaker.StateClosed
			if tc.failure {
				want = breaker.StateOpen
			}
			assert.Equal(t, want, snapshot(t, b).State)
		})
	}
}

func TestSharedStoreIsOneCircuit(t *testing.T) {
	e := newEnv()
	a, hooksA := e.breaker(t, breaker.Config{FailureThreshold: 3})
	b, hooksB := e.breaker(t, breaker.Config{FailureThreshold: 3})
	ctx := context.Background()

	require.ErrorIs(t, a.Do(ctx, failing), errBoom)
	require.ErrorIs(t, b.Do(ctx, failing), errBoom)
	assert.Equal(t, 2, snapshot(t, a).Failures)
	require.ErrorIs(t, a.Do(ctx, failing), errBoom)
	assert.ErrorIs(t, b.Do(ctx, ok), breaker.ErrOpen, "a trip by one replica holds for the other")
	assert.ErrorIs(t, a.Do(ctx, ok), breaker.ErrOpen)

	e.clock.Advance(a.Policy().Timeout)
	probe, err := b.Allow(ctx)
	require.NoError(t, err)
	assert.ErrorIs(t, a.Do(ctx, ok), breaker.ErrOpen, "one probe across both replicas")
	probe(nil)
	require.NoError(t, a.Do(ctx, ok))

	assert.Equal(t, []string{"svc: closed -> open"}, hooksA.list())
	assert.Equal(t, []string{"svc: open -> half-open", "svc: half-open -> closed"}, hooksB.list())
	assert.Equal(t, snapshot(t, a), snapshot(t, b))
}

func TestBreakersWithoutStoreAreIndependent(t *testing.T) {
	a, err := breaker.New("svc", breaker.Config{FailureThreshold: 1})
	require.NoError(t, err)
	b, err := breaker.New("svc", breaker.Config{FailureThreshold: 1})
	require.NoError(t, err)
	ctx := context.Background()
	require.ErrorIs(t, a.Do(ctx, failing), errBoom)
	assert.ErrorIs(t, a.Do(ctx, ok), breaker.ErrOpen)
	assert.NoError(t, b.Do(ctx, ok), "each Breaker without a Store has a store of its own")
}

func TestDifferentNamesAreDifferentCircuits(t *testing.T) {
	e := newEnv()
	a, err := breaker.New("a", breaker.Config{FailureThreshold: 1, Store: e.store})
	require.NoError(t, err)
	b, err := breaker.New("b", breaker.Config{FailureThreshold: 1, Store: e.store})
	require.NoError(t, err)
	ctx := context.Background()
	require.ErrorIs(t, a.Do(ctx, failing), errBoom)
	assert.ErrorIs(t, a.Do(ctx, ok), breaker.ErrOpen)
	assert.NoError(t, b.Do(ctx, ok))
}

func TestConcurrentFailuresTripOnce(t *testing.T) {
	e := newEnv()
	var hooks []*hookLog
	var bs []*breaker.Breaker
	for range 4 {
		b, h := e.breaker(t, breaker.Config{FailureThreshold: 5})
		bs, hooks = append(bs, b), append(hooks, h)
	}
	fn := &counter{err: errBoom}
	start := make(chan struct{})
	finished := make(chan struct{})
	for i := range 8 {
		go func() {
			defer func() { finished <- struct{}{} }()
			<-start
			for range 50 {
				err := bs[i%len(bs)].Do(context.Background(), fn.fn)
				if !errors.Is(err, errBoom) && !errors.Is(err, breaker.ErrOpen) {
					t.Errorf("unexpected error %v", err)
				}
			}
		}()
	}
	close(start)
	for range 8 {
		<-finished
	}
	var all []string
	for _, h := range hooks {
		all = append(all, h.list()...)
	}
	assert.Equal(t, []string{"svc: closed -> open"}, all, "exactly one transition, reported once")
	assert.GreaterOrEqual(t, fn.count(), 5)
	s := snapshot(t, bs[0])
	assert.Equal(t, breaker.StateOpen, s.State)
	assert.Equal(t, uint64(1), s.Generation)
}
