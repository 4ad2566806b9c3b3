package storetest

import (
	"errors"
	"strings"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tripline/tripline/breaker"
)

var missingCases = []testCase{
	{"LoadReadsClosedGenerationZero", func(s *suite) {
		assert.Equal(s.t, breaker.Snapshot{Name: s.name}, s.load())
	}},
	{"AdmitAdmitsInGenerationZero", func(s *suite) {
		a := s.admit(consecutive())
		assert.Equal(s.t, breaker.Admission{Allowed: true, State: breaker.StateClosed}, a)
		assert.Equal(s.t, breaker.Snapshot{Name: s.name}, s.load())
	}},
	{"SuccessChangesNothing", func(s *suite) {
		r := s.succeed(consecutive())
		assert.Equal(s.t, breaker.Result{State: breaker.StateClosed}, r)
		assert.Equal(s.t, breaker.Snapshot{Name: s.name}, s.load())
	}},
	{"FailureIsCounted", func(s *suite) {
		r := s.fail(consecutive())
		assert.Equal(s.t, breaker.Result{State: breaker.StateClosed}, r)
		snap := s.load()
		assert.Equal(s.t, breaker.StateClosed, snap.State)
		assert.Equal(s.t, 1, snap.Failures)
		assert.False(s.t, snap.LastFailure.IsZero(), "LastFailure of a circuit with a failure")
		assert.Zero(s.t, snap.Generation)
	}},
	{"NamesAreDistinct", func(s *suite) {
		// Names that a careless key encoding would confuse.
		names := []string{
			"svc", "svc:a", "svc:a:b", "{svc}", "{svc}:a", "svc}", "{svc", "}{", "svc a", "svc\x00a",
			"héllo ☃", strings.Repeat("n", breaker.MaxNameLen), "*", "[a-z]?", "%s\\",
		}
		p := consecutive()
		s.tripOn(s.h.Store, "svc:a", p)
		for _, n := range names {
			want := breaker.Snapshot{Name: n}
			if n == "svc:a" {
				continue
			}
			assert.Equal(s.t, want, s.loadOn(s.h.Store, n), "circuit %q", n)
			assert.True(s.t, s.admitOn(s.h.Store, n, p).Allowed, "circuit %q", n)
		}
		for _, n := range names {
			if n == "svc:a" {
				continue
			}
			r := s.callOn(s.h.Store, n, p, breaker.OutcomeFailure)
			assert.Equal(s.t, breaker.StateClosed, r.State, "circuit %q", n)
			assert.Equal(s.t, 1, s.loadOn(s.h.Store, n).Failures, "circuit %q", n)
		}
		snap := s.loadOn(s.h.Store, "svc:a")
		assert.Equal(s.t, breaker.StateOpen, snap.State)
		assert.Equal(s.t, uint64(1), snap.Generation)
		_, err := s.h.Store.Apply(s.ctx, "svc:b", breaker.Command{Kind: breaker.CommandReset, IfExists: true})
		assert.True(s.t, errors.Is(err, breaker.ErrUnknownCircuit), "Apply IfExists on an unknown circuit: %v", err)
	}},
}

var consecutiveCases = []testCase{
	{"ThresholdFailuresTrip", func(s *suite) {
		p := consecutive()
		for i := 1; i < threshold; i++ {
			s.failNoTrip(p)
			assert.Equal(s.t, i, s.load().Failures)
		}
		w := s.mark()
		r := s.fail(p)
		assert.Equal(s.t, breaker.Result{
			State:      breaker.StateOpen,
			Generation: 1,
			Transition: breaker.Transition{From: breaker.StateClosed, To: breaker.StateOpen, Generation: 1},
		}, r)
		a := s.admit(p)
		s.assertRejected(a, breaker.StateOpen, 1)
		s.assertRemaining(timeout, a.RetryAfter, w, "RetryAfter just after the trip")

		snap := s.load()
		assert.Equal(s.t, breaker.StateOpen, snap.State)
		assert.Equal(s.t, uint64(1), snap.Generation)
		assert.Zero(s.t, snap.Failures, "Failures of a circuit that has just opened")
		assert.Zero(s.t, snap.Successes)
		assert.Zero(s.t, snap.Probes)
		assert.Nil(s.t, snap.Override)
		assert.False(s.t, snap.OpenedAt.IsZero(), "OpenedAt of an open circuit")
		assert.Equal(s.t, snap.OpenedAt, snap.LastFailure, "the tripping failure is the last failure")
		assert.Equal(s.t, timeout, snap.RetryAt.Sub(snap.OpenedAt), "RetryAt - OpenedAt")
	}},
	{"SuccessResetsCount", func(s *suite) {
		p := consecutive()
		s.failNoTrip(p)
		s.failNoTrip(p)
		r := s.succeed(p)
		assert.Equal(s.t, breaker.Result{State: breaker.StateClosed}, r)
		assert.Zero(s.t, s.load().Failures, "Failures after a success")
		s.failNoTrip(p)
		s.failNoTrip(p)
		assert.Equal(s.t, 2, s.load().Failures)
		r = s.fail(p)
		assert.Equal(s.t, breaker.Transition{From: breaker.StateClosed, To: breaker.StateOpen, Generation: 1}, r.Transition)
	}},
	{"ThresholdOfOne", func(s *suite) {
		p := consecutive()
		p.FailureThreshold = 1
		s.trip(p)
		s.assertRejected(s.admit(p), breaker.StateOpen, 1)
	}},
}

var windowCases = []testCase{
	{"ThresholdFailuresWithinWindowTrip", func(s *suite) {
		p := windowed()
		s.failNoTrip(p)
		s.advance(window / 5)
		s.failNoTrip(p)
		s.advance(window / 5)
		assert.Equal(s.t, 2, s.load().Failures)
		r := s.fail(p)
		assert.Equal(s.t, breaker.Transition{From: breaker.StateClosed, To: breaker.StateOpen, Generation: 1}, r.Transition)
		s.assertRejected(s.admit(p), breaker.StateOpen, 1)
	}},
	{"SuccessesEraseNothing", func(s *suite) {
		p := windowed()
		s.failNoTrip(p)
		s.succeed(p)
		s.failNoTrip(p)
		s.succeed(p)
		assert.Equal(s.t, 2, s.load().Failures, "Failures after failure, success, failure, success")
		r := s.fail(p)
		assert.Equal(s.t, breaker.Transition{From: breaker.StateClosed, To: breaker.StateOpen, Generation: 1}, r.Transition)
	}},
	{"OlderFailuresSlideOut", func(s *suite) {
		p := windowed()
		s.failNoTrip(p)
		s.failNoTrip(p)
		s.advance(window + margin)
		assert.Zero(s.t, s.load().Failures, "Failures once the window has passed")
		s.failNoTrip(p)
		assert.Equal(s.t, 1, s.load().Failures)
		s.failNoTrip(p)
		r := s.fail(p)
		assert.Equal(s.t, breaker.Transition{From: breaker.StateClosed, To: breaker.StateOpen, Generation: 1}, r.Transition)
	}},
	{"MemoryBoundedByThreshold", func(s *suite) {
		// Forced closed, failures are counted without tripping; a window
		// keeps at most FailureThreshold of them. Once the override ends,
		// the next failure trips.
		p := windowed()
		ttl := 2 * window / 5
		s.apply(breaker.Command{Kind: breaker.CommandForceClose, TTL: ttl})
		for range 3 * threshold {
			s.failNoTrip(p)
		}
		assert.Equal(s.t, threshold, s.load().Failures, "a window holds at most FailureThreshold failures")
		s.advance(ttl + margin)
		snap := s.load()
		assert.Nil(s.t, snap.Override, "the override's TTL has passed")
		assert.Equal(s.t, threshold, snap.Failures)
		r := s.fail(p)
		assert.Equal(s.t, breaker.Transition{From: breaker.StateClosed, To: breaker.StateOpen, Generation: 2}, r.Transition)
	}},
}

var openCases = []testCase{
	{"RejectsWithRetryAfter", func(s *suite) {
		p := consecutive()
		gen, w := s.trip(p)
		s.advance(timeout / 3)
		a := s.admit(p)
		s.assertRejected(a, breaker.StateOpen, gen)
		s.assertRemaining(timeout, a.RetryAfter, w, "RetryAfter a third of the way into the timeout")
		// The rejection from another replica says the same.
		b := s.admitOn(s.replica(), s.name, p)
		s.assertRejected(b, breaker.StateOpen, gen)
		s.assertRemaining(timeout, b.RetryAfter, w, "RetryAfter on a replica")
	}},
	{"HalfOpenAfterTimeout", func(s *suite) {
		p := consecutive()
		gen, _ := s.trip(p)
		opened := s.load().OpenedAt
		s.probe(p, gen)
		snap := s.load()
		assert.Equal(s.t, breaker.StateHalfOpen, snap.State)
		assert.Equal(s.t, gen+1, snap.Generation)
		assert.Equal(s.t, 1, snap.Probes)
		assert.Zero(s.t, snap.Failures)
		assert.Zero(s.t, snap.Successes)
		assert.Equal(s.t, opened, snap.OpenedAt, "OpenedAt while half-open is when the circuit last opened")
		assert.True(s.t, snap.RetryAt.IsZero(), "RetryAt is zero unless open")
		assert.Equal(s.t, snap.OpenedAt, snap.LastFailure)
	}},
}

var halfOpenCases = []testCase{
	{"ProbeLimit", func(s *suite) {
		p := consecutive()
		p.HalfOpenMaxCalls = 2
		p.SuccessThreshold = 2
		gen, _ := s.trip(p)
		w := s.mark()
		first := s.probe(p, gen)
		second := s.admit(p)
		require.True(s.t, second.Allowed, "the second of two probe permits: %+v", second)
		assert.Equal(s.t, breaker.StateHalfOpen, second.State)
		assert.Equal(s.t, gen+1, second.Generation)
		assert.Equal(s.t, breaker.Transition{}, second.Transition, "only the first probe moves the circuit")
		assert.NotZero(s.t, second.Probe)
		assert.NotEqual(s.t, first.Probe, second.Probe, "probe permits are unique")
		for range 3 {
			a := s.admit(p)
			s.assertRejected(a, breaker.StateHalfOpen, gen+1)
			s.assertRemaining(probeTimeout+p.Timeout+margin, a.RetryAfter, w, "RetryAfter while every probe slot is taken")
			assert.LessOrEqual(s.t, a.RetryAfter, probeTimeout)
		}
		assert.Equal(s.t, 2, s.load().Probes)
		// A probe that reports frees its slot.
		r := s.record(p, first, breaker.OutcomeSuccess)
		assert.Equal(s.t, breaker.Result{State: breaker.StateHalfOpen, Generation: gen + 1}, r)
		third := s.admit(p)
		assert.True(s.t, third.Allowed, "a reported probe frees its slot: %+v", third)
		assert.NotEqual(s.t, second.Probe, third.Probe)
		assert.NotEqual(s.t, first.Probe, third.Probe)
	}},
	{"SuccessThresholdCloses", func(s *suite) {
		p := consecutive()
		p.SuccessThreshold = 2
		gen, _ := s.trip(p)
		a := s.probe(p, gen)
		r := s.record(p, a, breaker.OutcomeSuccess)
		assert.Equal(s.t, breaker.Result{State: breaker.StateHalfOpen, Generation: gen + 1}, r)
		snap := s.load()
		assert.Equal(s.t, 1, snap.Successes)
		assert.Zero(s.t, snap.Probes)
		b := s.admit(p)
		require.True(s.t, b.Allowed, "the next probe: %+v", b)
		assert.Equal(s.t, breaker.Transition{}, b.Transition)
		r = s.record(p, b, breaker.OutcomeSuccess)
		assert.Equal(s.t, breaker.Result{
			State:      breaker.StateClosed,
			Generation: gen + 2,
			Transition: breaker.Transition{From: breaker.StateHalfOpen, To: breaker.StateClosed, Generation: gen + 2},
		}, r)
		s.assertCleared(gen + 2)
		// The failures from before count no more.
		assert.Equal(s.t, breaker.Admission{Allowed: true, State: breaker.StateClosed, Generation: gen + 2}, s.admit(p))
		s.failNoTrip(p)
		s.failNoTrip(p)
		r = s.fail(p)
		assert.Equal(s.t, breaker.Transition{From: breaker.StateClosed, To: breaker.StateOpen, Generation: gen + 3}, r.Transition)
	}},
	{"AnyProbeFailureReopensForFullTimeout", func(s *suite) {
		p := consecutive()
		p.SuccessThreshold = 2
		p.HalfOpenMaxCalls = 2
		gen, _ := s.trip(p)
		opened := s.load().OpenedAt
		a := s.probe(p, gen)
		b := s.admit(p)
		require.True(s.t, b.Allowed)
		r := s.record(p, a, breaker.OutcomeSuccess)
		require.Equal(s.t, breaker.StateHalfOpen, r.State)
		s.advance(timeout / 3)
		w := s.mark()
		r = s.record(p, b, breaker.OutcomeFailure)
		assert.Equal(s.t, breaker.Result{
			State:      breaker.StateOpen,
			Generation: gen + 2,
			Transition: breaker.Transition{From: breaker.StateHalfOpen, To: breaker.StateOpen, Generation: gen + 2},
		}, r)
		rej := s.admit(p)
		s.assertRejected(rej, breaker.StateOpen, gen+2)
		s.assertRemaining(timeout, rej.RetryAfter, w, "RetryAfter after a failed probe")
		snap := s.load()
		assert.Equal(s.t, breaker.StateOpen, snap.State)
		assert.Zero(s.t, snap.Successes, "Successes after reopening")
		assert.Zero(s.t, snap.Probes)
		assert.True(s.t, snap.OpenedAt.After(opened), "OpenedAt is the reopening")
		assert.Equal(s.t, snap.OpenedAt, snap.LastFailure)
		assert.Equal(s.t, timeout, snap.RetryAt.Sub(snap.OpenedAt), "a failed probe reopens for a full Timeout")
		s.advance(timeout / 2)
		s.assertRejected(s.admit(p), breaker.StateOpen, gen+2)
		s.advance(timeout/2 + margin)
		c := s.admit(p)
		assert.True(s.t, c.Allowed)
		assert.Equal(s.t, breaker.Transition{From: breaker.StateOpen, To: breaker.StateHalfOpen, Generation: gen + 3}, c.Transition)
	}},
	{"ProbePermitLapses", func(s *suite) {
		// Two circuits lapse at once. On x the late outcome comes first, on
		// y the next admission: each must see the lapse on its own.
		p := consecutive()
		x, y := s.name, s.name+"/y"
		st := s.h.Store
		gen, _ := s.tripOn(st, x, p)
		s.tripOn(st, y, p)
		w := s.mark()
		a := s.probe(p, gen)
		ay := s.admitOn(st, y, p)
		require.True(s.t, ay.Allowed, "the probe on y: %+v", ay)
		rej := s.admit(p)
		s.assertRejected(rej, breaker.StateHalfOpen, gen+1)
		s.assertRemaining(probeTimeout+p.Timeout+margin, rej.RetryAfter, w, "RetryAfter while the probe slot is taken")
		assert.LessOrEqual(s.t, rej.RetryAfter, probeTimeout)
		s.advance(probeTimeout + margin)
		for _, n := range []string{x, y} {
			snap := s.loadOn(st, n)
			assert.Equal(s.t, breaker.StateHalfOpen, snap.State, "circuit %q", n)
			assert.Zero(s.t, snap.Probes, "a lapsed permit is not held (circuit %q)", n)
		}
		ignored := breaker.Result{Ignored: true, State: breaker.StateHalfOpen, Generation: gen + 1}

		// x: the late outcome of the lapsed probe is ignored, even a failure.
		assert.Equal(s.t, ignored, s.record(p, a, breaker.OutcomeFailure), "the late failure of a lapsed probe")
		b := s.admit(p)
		require.True(s.t, b.Allowed, "the probe after a lapse: %+v", b)
		assert.Equal(s.t, breaker.Transition{}, b.Transition, "a lapsed permit makes no transition")
		assert.NotEqual(s.t, a.Probe, b.Probe)
		r := s.record(p, b, breaker.OutcomeSuccess)
		assert.Equal(s.t, breaker.Transition{From: breaker.StateHalfOpen, To: breaker.StateClosed, Generation: gen + 2}, r.Transition)

		// y: the lapse alone frees the slot.
		by := s.admitOn(st, y, p)
		require.True(s.t, by.Allowed, "a lapsed permit frees its slot: %+v", by)
		assert.Equal(s.t, breaker.Transition{}, by.Transition, "a lapsed permit makes no transition")
		assert.Equal(s.t, gen+1, by.Generation)
		assert.NotEqual(s.t, ay.Probe, by.Probe)
		assert.Equal(s.t, ignored, s.recordOn(st, y, p, ay, breaker.OutcomeFailure), "the late failure of a lapsed probe")
		assert.Equal(s.t, 1, s.loadOn(st, y).Probes)
	}},
	{"UnheldPermitIgnored", func(s *suite) {
		p := consecutive()
		p.SuccessThreshold = 2
		gen, _ := s.trip(p)
		a := s.probe(p, gen)
		for _, probe := range []uint64{0, a.Probe + 1<<40, ^uint64(0)} {
			o := breaker.Outcome{Kind: breaker.OutcomeFailure, Generation: gen + 1, Probe: probe}
			r, err := s.h.Store.Record(s.ctx, s.name, p, o)
			require.NoError(s.t, err)
			assert.Equal(s.t, breaker.Result{Ignored: true, State: breaker.StateHalfOpen, Generation: gen + 1}, r, "probe %d", probe)
		}
		r := s.record(p, a, breaker.OutcomeSuccess)
		assert.Equal(s.t, breaker.Result{State: breaker.StateHalfOpen, Generation: gen + 1}, r)
		// A permit counts once: its second outcome finds it released.
		r = s.record(p, a, breaker.OutcomeSuccess)
		assert.Equal(s.t, breaker.Result{Ignored: true, State: breaker.StateHalfOpen, Generation: gen + 1}, r)
		snap := s.load()
		assert.Equal(s.t, 1, snap.Successes)
		assert.Zero(s.t, snap.Probes)
	}},
}
