package storetest

import (
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tripline/tripline/breaker"
)

var generationCases = []testCase{
	{"StaleOutcomesIgnored", func(s *suite) {
		p := consecutive()
		// slow is admitted in generation 0 and reports late, again and again.
		slow := s.admit(p)
		require.True(s.t, slow.Allowed)
		gen, _ := s.trip(p)
		stale := func(kind breaker.OutcomeKind, want breaker.Result) {
			s.t.Helper()
			before := s.load()
			r := s.record(p, slow, kind)
			assert.Equal(s.t, want, r, "a %d outcome from generation %d", kind, slow.Generation)
			assert.Equal(s.t, before, s.load(), "an ignored outcome changes nothing")
		}
		stale(breaker.OutcomeFailure, breaker.Result{Ignored: true, State: breaker.StateOpen, Generation: gen})
		stale(breaker.OutcomeSuccess, breaker.Result{Ignored: true, State: breaker.StateOpen, Generation: gen})
		a := s.probe(p, gen)
		stale(breaker.OutcomeFailure, breaker.Result{Ignored: true, State: breaker.StateHalfOpen, Generation: gen + 1})
		stale(breaker.OutcomeSuccess, breaker.Result{Ignored: true, State: breaker.StateHalfOpen, Generation: gen + 1})
		r := s.record(p, a, breaker.OutcomeSuccess)
		require.Equal(s.t, breaker.StateClosed, r.State)
		// Closed again, in generation gen+2: a failure from generation 0
		// must not count, even one that would trip a threshold of one.
		one := p
		one.FailureThreshold = 1
		// (one is not the circuit's policy: the store says so, once.)
		r = s.record(one, slow, breaker.OutcomeFailure)
		assert.Equal(s.t, breaker.Result{Ignored: true, State: breaker.StateClosed, Generation: gen + 2, PolicyDiffers: true}, r)
		s.assertCleared(gen + 2)
		// Nor does a generation the circuit has not reached.
		future := breaker.Admission{Allowed: true, State: breaker.StateClosed, Generation: gen + 100}
		r = s.record(one, future, breaker.OutcomeFailure)
		assert.Equal(s.t, breaker.Result{Ignored: true, State: breaker.StateClosed, Generation: gen + 2}, r)
		s.assertCleared(gen + 2)
	}},
	{"EveryTransitionAddsOne", func(s *suite) {
		p := consecutive()
		var gen uint64
		step := func(got breaker.Transition, from, to breaker.State) {
			s.t.Helper()
			gen++
			assert.Equal(s.t, breaker.Transition{From: from, To: to, Generation: gen}, got)
			assert.Equal(s.t, gen, s.load().Generation)
			assert.Equal(s.t, to, s.load().State)
		}
		closed, open, halfOpen := breaker.StateClosed, breaker.StateOpen, breaker.StateHalfOpen

		for range threshold - 1 {
			s.failNoTrip(p)
		}
		step(s.fail(p).Transition, closed, open)
		a := s.probe(p, gen)
		step(a.Transition, open, halfOpen)
		step(s.record(p, a, breaker.OutcomeFailure).Transition, halfOpen, open)
		a = s.probe(p, gen)
		step(a.Transition, open, halfOpen)
		step(s.record(p, a, breaker.OutcomeSuccess).Transition, halfOpen, closed)
		step(s.apply(breaker.Command{Kind: breaker.CommandReset}).Transition, closed, closed)
		step(s.apply(breaker.Command{Kind: breaker.CommandForceOpen}).Transition, closed, open)
		step(s.apply(breaker.Command{Kind: breaker.CommandForceOpen}).Transition, open, open)
		step(s.apply(breaker.Command{Kind: breaker.CommandForceClose}).Transition, open, closed)
		step(s.apply(breaker.Command{Kind: breaker.CommandForceClose}).Transition, closed, closed)
		step(s.apply(breaker.Command{Kind: breaker.CommandReset}).Transition, closed, closed)
		// Calls that make no transition keep the generation.
		s.failNoTrip(p)
		s.succeed(p)
		assert.Equal(s.t, gen, s.load().Generation)
	}},
}
