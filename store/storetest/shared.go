package storetest

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tripline/tripline/breaker"
)

var loadCases = []testCase{
	{"UnknownCircuitStaysUnknown", func(s *suite) {
		for range 3 {
			assert.Equal(s.t, breaker.Snapshot{Name: s.name}, s.load())
		}
		_, err := s.h.Store.Apply(s.ctx, s.name, breaker.Command{Kind: breaker.CommandReset, IfExists: true})
		assert.True(s.t, errors.Is(err, breaker.ErrUnknownCircuit), "Load wrote state: %v", err)
	}},
	{"DueCircuitStaysOpen", func(s *suite) {
		p := consecutive()
		gen, _ := s.trip(p)
		s.advance(timeout + margin)
		first := s.load()
		assert.Equal(s.t, breaker.StateOpen, first.State, "Load does not move an open circuit to half-open")
		assert.Equal(s.t, first, s.load())
		assert.Equal(s.t, first, s.loadOn(s.replica(), s.name))
		// The move is left to the next Admit, which reports it.
		a := s.admit(p)
		assert.Equal(s.t, breaker.Transition{From: breaker.StateOpen, To: breaker.StateHalfOpen, Generation: gen + 1}, a.Transition)
	}},
	{"WindowUsesLastPolicy", func(s *suite) {
		p := windowed()
		s.failNoTrip(p)
		s.failNoTrip(p)
		s.advance(window / 2)
		assert.Equal(s.t, 2, s.load().Failures, "failures within the window")
		s.advance(window/2 + margin)
		assert.Zero(s.t, s.load().Failures, "failures past the window")
		assert.Equal(s.t, breaker.StateClosed, s.load().State)
	}},
}

var replicaCases = []testCase{
	{"ShareOneCircuit", func(s *suite) {
		p := consecutive()
		a, b := s.h.Store, s.replica()
		s.callOn(a, s.name, p, breaker.OutcomeFailure)
		s.callOn(b, s.name, p, breaker.OutcomeFailure)
		assert.Equal(s.t, 2, s.loadOn(a, s.name).Failures)
		assert.Equal(s.t, 2, s.loadOn(b, s.name).Failures)
		r := s.callOn(a, s.name, p, breaker.OutcomeFailure)
		require.Equal(s.t, breaker.Transition{From: breaker.StateClosed, To: breaker.StateOpen, Generation: 1}, r.Transition)
		s.assertRejected(s.admitOn(b, s.name, p), breaker.StateOpen, 1)

		s.advance(timeout + margin)
		probe := s.admitOn(b, s.name, p)
		require.True(s.t, probe.Allowed)
		assert.Equal(s.t, breaker.Transition{From: breaker.StateOpen, To: breaker.StateHalfOpen, Generation: 2}, probe.Transition)
		s.assertRejected(s.admitOn(a, s.name, p), breaker.StateHalfOpen, 2)
		assert.Equal(s.t, 1, s.loadOn(a, s.name).Probes)
		r = s.recordOn(b, s.name, p, probe, breaker.OutcomeSuccess)
		assert.Equal(s.t, breaker.Transition{From: breaker.StateHalfOpen, To: breaker.StateClosed, Generation: 3}, r.Transition)
		assert.Equal(s.t, breaker.Admission{Allowed: true, State: breaker.StateClosed, Generation: 3}, s.admitOn(a, s.name, p))

		s.applyOn(a, s.name, breaker.Command{Kind: breaker.CommandForceOpen, Actor: actor, Reason: reason})
		s.assertRejected(s.admitOn(b, s.name, p), breaker.StateOpen, 4)
		s.assertOverride(breaker.OverrideForceOpen, false, s.loadOn(b, s.name))
		r = s.applyOn(b, s.name, breaker.Command{Kind: breaker.CommandReset})
		assert.Equal(s.t, breaker.Transition{From: breaker.StateOpen, To: breaker.StateClosed, Generation: 5}, r.Transition)
		assert.True(s.t, s.admitOn(a, s.name, p).Allowed)
		assert.Nil(s.t, s.loadOn(a, s.name).Override)
	}},
	{"OtherPolicyIsReported", func(s *suite) {
		// Two replicas with other thresholds: each hears, on the first call
		// that reaches the circuit, that the other wrote it last. Failures
		// always reach it (a local view answers only admissions and
		// closed-state successes).
		p := consecutive()
		q := p
		q.FailureThreshold = 10
		a, b := s.h.Store, s.replica()
		fail := func(st breaker.Store, pol breaker.Policy, gen uint64, want bool, what string) {
			s.t.Helper()
			r := s.recordOn(st, s.name, pol, breaker.Admission{Generation: gen}, breaker.OutcomeFailure)
			require.False(s.t, r.Ignored, "%s: %+v", what, r)
			assert.Equal(s.t, want, r.PolicyDiffers, what)
		}
		fail(a, p, 0, false, "the first write: no policy kept yet")
		fail(b, q, 0, true, "written last under p")
		fail(b, q, 0, false, "written last under q")
		fail(a, p, 0, true, "written last under q, and trips under p")
		r := s.applyOn(b, s.name, breaker.Command{Kind: breaker.CommandReset})
		assert.False(s.t, r.PolicyDiffers, "Apply has no policy")
		fail(b, q, r.Generation, true, "Apply keeps the policy written last (p)")
	}},
}

// racers is how many goroutines race on one circuit.
const racers = 32

// replicas returns n stores on the same backing state, Store first.
func (s *suite) replicas(n int) []breaker.Store {
	s.t.Helper()
	out := []breaker.Store{s.h.Store}
	for len(out) < n {
		out = append(out, s.replica())
	}
	return out
}

// race runs fn(i, store) on racers goroutines at once, spread over four
// replicas, and returns the first error any of them returned.
func (s *suite) race(fn func(i int, st breaker.Store) error) {
	s.t.Helper()
	stores := s.replicas(4)
	var (
		wg    sync.WaitGroup
		start = make(chan struct{})
		errs  = make([]error, racers)
	)
	for i := range racers {
		wg.Go(func() {
			<-start
			errs[i] = fn(i, stores[i%len(stores)])
		})
	}
	close(start)
	wg.Wait()
	require.NoError(s.t, errors.Join(errs...), "store calls during the race")
}

var concurrencyCases = []testCase{
	{"OneTripReported", func(s *suite) {
		p := consecutive()
		var results [racers][]breaker.Result
		s.race(func(i int, st breaker.Store) error {
			for range 3 {
				a, err := st.Admit(s.ctx, s.name, p)
				if err != nil || !a.Allowed {
					return err
				}
				o := breaker.Outcome{Kind: breaker.OutcomeFailure, Generation: a.Generation, Probe: a.Probe}
				r, err := st.Record(s.ctx, s.name, p, o)
				if err != nil {
					return err
				}
				results[i] = append(results[i], r)
			}
			return nil
		})
		var transitions []breaker.Transition
		for _, rs := range results {
			for _, r := range rs {
				if r.Transition != (breaker.Transition{}) {
					transitions = append(transitions, r.Transition)
				}
			}
		}
		want := []breaker.Transition{{From: breaker.StateClosed, To: breaker.StateOpen, Generation: 1}}
		assert.Equal(s.t, want, transitions, "racing failures trip the circuit once")
		snap := s.load()
		assert.Equal(s.t, breaker.StateOpen, snap.State)
		assert.Equal(s.t, uint64(1), snap.Generation)
	}},
	{"HalfOpenRaceReportsOnce", func(s *suite) {
		p := consecutive()
		p.HalfOpenMaxCalls = 3
		gen, _ := s.trip(p)
		s.advance(timeout + margin)
		var admissions [racers]breaker.Admission
		s.race(func(i int, st breaker.Store) error {
			var err error
			admissions[i], err = st.Admit(s.ctx, s.name, p)
			return err
		})
		var (
			transitions []breaker.Transition
			probes      = make(map[uint64]bool)
			admitted    []breaker.Admission
		)
		for _, a := range admissions {
			if a.Transition != (breaker.Transition{}) {
				transitions = append(transitions, a.Transition)
			}
			assert.Equal(s.t, breaker.StateHalfOpen, a.State)
			assert.Equal(s.t, gen+1, a.Generation)
			if a.Allowed {
				assert.NotZero(s.t, a.Probe)
				assert.False(s.t, probes[a.Probe], "probe permit %d granted twice", a.Probe)
				probes[a.Probe] = true
				admitted = append(admitted, a)
			}
		}
		want := []breaker.Transition{{From: breaker.StateOpen, To: breaker.StateHalfOpen, Generation: gen + 1}}
		assert.Equal(s.t, want, transitions, "racing admissions move the circuit to half-open once")
		require.Len(s.t, admitted, p.HalfOpenMaxCalls, "probe permits granted to racing admissions")
		assert.Equal(s.t, p.HalfOpenMaxCalls, s.load().Probes)

		// The probes report at once: one closes the circuit, the others are
		// then stale.
		var results [racers]breaker.Result
		s.race(func(i int, st breaker.Store) error {
			if i >= len(admitted) {
				return nil
			}
			a := admitted[i]
			var err error
			o := breaker.Outcome{Kind: breaker.OutcomeSuccess, Generation: a.Generation, Probe: a.Probe}
			results[i], err = st.Record(s.ctx, s.name, p, o)
			return err
		})
		transitions = transitions[:0]
		ignored := 0
		for _, r := range results[:len(admitted)] {
			if r.Transition != (breaker.Transition{}) {
				transitions = append(transitions, r.Transition)
			}
			if r.Ignored {
				ignored++
			}
		}
		want = []breaker.Transition{{From: breaker.StateHalfOpen, To: breaker.StateClosed, Generation: gen + 2}}
		assert.Equal(s.t, want, transitions, "racing probe successes close the circuit once")
		assert.Equal(s.t, len(admitted)-1, ignored, "outcomes that arrive after the circuit closed are stale")
		s.assertCleared(gen + 2)
	}},
	{"ProbeLimitHoldsUnderRace", func(s *suite) {
		// Many callers keep asking for probes and reporting successes that
		// never reach the SuccessThreshold: at no moment may more than
		// HalfOpenMaxCalls of them hold a permit.
		p := consecutive()
		p.HalfOpenMaxCalls = 2
		p.SuccessThreshold = 1_000
		p.ProbeTimeout = time.Minute // no permit lapses during the race
		gen, _ := s.trip(p)
		s.probe(p, gen) // holds one permit until it lapses; the race shares the other
		var held, most, granted atomic.Int64
		held.Add(1)
		s.race(func(i int, st breaker.Store) error {
			for range 20 {
				a, err := st.Admit(s.ctx, s.name, p)
				if err != nil {
					return err
				}
				if !a.Allowed {
					continue
				}
				granted.Add(1)
				n := held.Add(1)
				for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
				}
				// Hold the permit for a while, so that a store granting too
				// many is caught with more than one holder at a time.
				for range 50 {
					runtime.Gosched()
				}
				if snap, err := st.Load(s.ctx, s.name); err != nil {
					return err
				} else if snap.Probes > p.HalfOpenMaxCalls {
					return fmt.Errorf("Load reports %d probe permits held, more than %d", snap.Probes, p.HalfOpenMaxCalls)
				}
				held.Add(-1) // before Record frees the permit, so held never runs behind the store
				o := breaker.Outcome{Kind: breaker.OutcomeSuccess, Generation: a.Generation, Probe: a.Probe}
				if _, err := st.Record(s.ctx, s.name, p, o); err != nil {
					return err
				}
			}
			return nil
		})
		assert.LessOrEqual(s.t, most.Load(), int64(p.HalfOpenMaxCalls), "probe permits held at once")
		assert.Positive(s.t, granted.Load(), "no racing caller got a probe permit")
		snap := s.load()
		assert.Equal(s.t, breaker.StateHalfOpen, snap.State)
		assert.Equal(s.t, gen+1, snap.Generation)
		assert.Equal(s.t, 1, snap.Probes, "only the first probe still holds its permit")
		assert.Equal(s.t, int(granted.Load()), snap.Successes, "every racing probe's success counted")
	}},
}
