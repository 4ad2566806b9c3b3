// Package storetest is the conformance suite for breaker.Store
// implementations, in the manner of testing/slogtest: every store (memory,
// Redis, Redis Cluster) runs the same checks.
//
// A store's test calls Run with a function that builds a fresh Harness:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) storetest.Harness {
//			clock := newFakeClock()
//			st := memory.New(memory.WithClock(clock.Now))
//			return storetest.Harness{Store: st, Advance: clock.Advance}
//		})
//	}
//
// The suite checks every rule of the breaker.Store contract and every line
// of the package breaker documentation that a store carries out: the closed,
// open and half-open states in both counting modes, probe permits and their
// lapse, generations, operators' overrides, argument checks, replicas
// sharing one circuit, and races between many callers. Each subtest gets its
// own Harness.
//
// Durations are short (Timeout 300ms, ProbeTimeout 600ms, FailureWindow
// 500ms) so that a store on real time (Harness.RealTime) runs the whole suite
// in about ten seconds. Checks that something has not happened yet are made
// at most half-way to its deadline, and checks that it has are made past the
// deadline plus a margin, so they hold on a slow, loaded machine.
package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tripline/tripline/breaker"
)

// Harness is one store under test.
type Harness struct {
	// Store is the store the suite drives.
	Store breaker.Store
	// NewReplica returns another Store on the same backing state, as another
	// replica of a service would have (for Redis: a new client and Store on
	// the same server). It may return Store itself for in-process stores.
	// If nil, the suite uses Store as every replica.
	NewReplica func(t *testing.T) breaker.Store
	// Advance moves the store's clock forward by d. Fake clocks move at
	// once; a store on real time (real Redis) sleeps, so the suite keeps
	// its durations short. Required.
	Advance func(d time.Duration)
	// RealTime is true when Advance sleeps: the suite then uses wider
	// margins around deadlines.
	RealTime bool
}

// Run runs the conformance suite. newHarness is called once per subtest and
// must return a store holding no circuits (or a fresh prefix).
func Run(t *testing.T, newHarness func(t *testing.T) Harness) {
	t.Helper()
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			for _, c := range g.cases {
				t.Run(c.name, func(t *testing.T) {
					c.run(newSuite(t, newHarness(t)))
				})
			}
		})
	}
}

type testCase struct {
	name string
	run  func(s *suite)
}

type group struct {
	name  string
	cases []testCase
}

// groups is the whole suite, in the order it runs.
var groups = []group{
	{"Missing", missingCases},
	{"Consecutive", consecutiveCases},
	{"Window", windowCases},
	{"Open", openCases},
	{"HalfOpen", halfOpenCases},
	{"Generations", generationCases},
	{"Overrides", overrideCases},
	{"Arguments", argumentCases},
	{"Load", loadCases},
	{"Replicas", replicaCases},
	{"Concurrency", concurrencyCases},
}

const (
	timeout      = 300 * time.Millisecond // Policy.Timeout
	probeTimeout = 600 * time.Millisecond // Policy.ProbeTimeout
	window       = 500 * time.Millisecond // Policy.FailureWindow in window mode
	threshold    = 3                      // Policy.FailureThreshold

	// margin is how far past a deadline the suite moves the clock before it
	// checks that the deadline has passed.
	margin = 50 * time.Millisecond
	// tolerance covers stores that keep time in whole milliseconds.
	tolerance = 5 * time.Millisecond
)

// consecutive is the policy most cases use: threshold 3, consecutive mode,
// one probe that closes the circuit.
func consecutive() breaker.Policy {
	return breaker.Policy{
		FailureThreshold: threshold,
		Timeout:          timeout,
		SuccessThreshold: 1,
		HalfOpenMaxCalls: 1,
		ProbeTimeout:     probeTimeout,
	}
}

// windowed is consecutive in window mode.
func windowed() breaker.Policy {
	p := consecutive()
	p.FailureWindow = window
	return p
}

// suite drives one Harness; every method fails the test on a store error.
type suite struct {
	t        *testing.T
	h        Harness
	ctx      context.Context
	name     string        // the circuit most cases use
	advanced time.Duration // how far Advance has moved the clock
}

func newSuite(t *testing.T, h Harness) *suite {
	t.Helper()
	require.NotNil(t, h.Store, "Harness.Store")
	require.NotNil(t, h.Advance, "Harness.Advance")
	return &suite{t: t, h: h, ctx: t.Context(), name: "storetest:" + t.Name()}
}

// replica returns another Store on the same backing state.
func (s *suite) replica() breaker.Store {
	s.t.Helper()
	if s.h.NewReplica == nil {
		return s.h.Store
	}
	st := s.h.NewReplica(s.t)
	require.NotNil(s.t, st, "Harness.NewReplica returned nil")
	return st
}

// advance moves the store's clock forward by d.
func (s *suite) advance(d time.Duration) {
	s.h.Advance(d)
	s.advanced += d
}

// stopwatch bounds how much store time has passed since it was started.
type stopwatch struct {
	s        *suite
	start    time.Time
	advanced time.Duration
}

// mark starts a stopwatch. Start it before the store call that begins the
// interval, so that most is an upper bound.
func (s *suite) mark() stopwatch {
	return stopwatch{s: s, start: time.Now(), advanced: s.advanced}
}

// least is the least store time that has passed since the mark.
func (w stopwatch) least() time.Duration { return w.s.advanced - w.advanced }

// most is the most store time that has passed since the mark.
func (w stopwatch) most() time.Duration {
	if w.s.h.RealTime {
		return time.Since(w.start)
	}
	return w.least()
}

// assertRemaining checks that got is what is left of full since the mark w:
// positive, and within the bounds the stopwatch allows.
func (s *suite) assertRemaining(full, got time.Duration, w stopwatch, what string) {
	s.t.Helper()
	lo := full - w.most() - tolerance
	hi := full - w.least() + tolerance
	assert.Positive(s.t, got, "%s", what)
	if got < lo || got > hi {
		assert.Failf(s.t, what, "got %s, want between %s and %s", got, lo, hi)
	}
}

func (s *suite) admitOn(st breaker.Store, name string, p breaker.Policy) breaker.Admission {
	s.t.Helper()
	a, err := st.Admit(s.ctx, name, p)
	require.NoError(s.t, err, "Admit")
	return a
}

func (s *suite) admit(p breaker.Policy) breaker.Admission {
	s.t.Helper()
	return s.admitOn(s.h.Store, s.name, p)
}

func (s *suite) recordOn(st breaker.Store, name string, p breaker.Policy, a breaker.Admission, kind breaker.OutcomeKind) breaker.Result {
	s.t.Helper()
	r, err := st.Record(s.ctx, name, p, breaker.Outcome{Kind: kind, Generation: a.Generation, Probe: a.Probe})
	require.NoError(s.t, err, "Record")
	return r
}

func (s *suite) record(p breaker.Policy, a breaker.Admission, kind breaker.OutcomeKind) breaker.Result {
	s.t.Helper()
	return s.recordOn(s.h.Store, s.name, p, a, kind)
}

// callOn admits one call, requires that it is allowed, and records kind.
func (s *suite) callOn(st breaker.Store, name string, p breaker.Policy, kind breaker.OutcomeKind) breaker.Result {
	s.t.Helper()
	a := s.admitOn(st, name, p)
	require.True(s.t, a.Allowed, "Admit rejected a call it should admit: %+v", a)
	r := s.recordOn(st, name, p, a, kind)
	require.False(s.t, r.Ignored, "Record ignored the outcome of a call admitted just before: %+v", r)
	return r
}

func (s *suite) succeed(p breaker.Policy) breaker.Result {
	s.t.Helper()
	return s.callOn(s.h.Store, s.name, p, breaker.OutcomeSuccess)
}

func (s *suite) fail(p breaker.Policy) breaker.Result {
	s.t.Helper()
	return s.callOn(s.h.Store, s.name, p, breaker.OutcomeFailure)
}

// failNoTrip records a failure that must not change the state.
func (s *suite) failNoTrip(p breaker.Policy) {
	s.t.Helper()
	r := s.fail(p)
	assert.Equal(s.t, breaker.Transition{}, r.Transition, "a failure below the threshold made a transition")
	assert.Equal(s.t, breaker.StateClosed, r.State)
}

func (s *suite) applyOn(st breaker.Store, name string, c breaker.Command) breaker.Result {
	s.t.Helper()
	r, err := st.Apply(s.ctx, name, c)
	require.NoError(s.t, err, "Apply %s", c.Kind)
	return r
}

func (s *suite) apply(c breaker.Command) breaker.Result {
	s.t.Helper()
	return s.applyOn(s.h.Store, s.name, c)
}

func (s *suite) loadOn(st breaker.Store, name string) breaker.Snapshot {
	s.t.Helper()
	snap, err := st.Load(s.ctx, name)
	require.NoError(s.t, err, "Load")
	return snap
}

func (s *suite) load() breaker.Snapshot {
	s.t.Helper()
	return s.loadOn(s.h.Store, s.name)
}

// trip opens the closed circuit name with threshold failures in p's mode,
// checking that exactly the last one trips it. It returns the new generation
// and a stopwatch started just before the tripping failure.
func (s *suite) tripOn(st breaker.Store, name string, p breaker.Policy) (uint64, stopwatch) {
	s.t.Helper()
	gen := s.loadOn(st, name).Generation
	for range p.FailureThreshold - 1 {
		r := s.callOn(st, name, p, breaker.OutcomeFailure)
		require.Equal(s.t, breaker.Transition{}, r.Transition, "a failure below the threshold made a transition")
	}
	w := s.mark()
	r := s.callOn(st, name, p, breaker.OutcomeFailure)
	want := breaker.Transition{From: breaker.StateClosed, To: breaker.StateOpen, Generation: gen + 1}
	require.Equal(s.t, want, r.Transition, "the threshold-th failure must open the circuit")
	return gen + 1, w
}

func (s *suite) trip(p breaker.Policy) (uint64, stopwatch) {
	s.t.Helper()
	return s.tripOn(s.h.Store, s.name, p)
}

// probe waits out the open timeout of a circuit that opened in generation
// gen, admits the first probe and checks the move to half-open.
func (s *suite) probe(p breaker.Policy, gen uint64) breaker.Admission {
	s.t.Helper()
	s.advance(p.Timeout + margin)
	a := s.admit(p)
	require.True(s.t, a.Allowed, "no probe admitted after the open timeout: %+v", a)
	want := breaker.Transition{From: breaker.StateOpen, To: breaker.StateHalfOpen, Generation: gen + 1}
	require.Equal(s.t, want, a.Transition, "the first call after the timeout must move the circuit to half-open")
	require.Equal(s.t, breaker.StateHalfOpen, a.State)
	require.Equal(s.t, gen+1, a.Generation)
	require.NotZero(s.t, a.Probe, "a half-open admission must hold a probe permit")
	return a
}

// assertCleared checks that the circuit is closed in generation gen with
// every counter cleared and no override.
func (s *suite) assertCleared(gen uint64) {
	s.t.Helper()
	assert.Equal(s.t, breaker.Snapshot{Name: s.name, State: breaker.StateClosed, Generation: gen}, s.load(),
		"a closed circuit's counters must be cleared")
}

// assertRejected checks that a call is rejected in state st, generation gen.
func (s *suite) assertRejected(a breaker.Admission, st breaker.State, gen uint64) {
	s.t.Helper()
	assert.False(s.t, a.Allowed, "a call was admitted that must be rejected: %+v", a)
	assert.Equal(s.t, st, a.State, "state of the rejection")
	assert.Equal(s.t, gen, a.Generation, "generation of the rejection")
	assert.Zero(s.t, a.Probe, "a rejected call holds no probe permit")
	assert.Equal(s.t, breaker.Transition{}, a.Transition, "a rejection makes no transition")
}
