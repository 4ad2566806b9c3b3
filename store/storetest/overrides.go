package storetest

import (
	"errors"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tripline/tripline/breaker"
)

const (
	actor  = "alice@example.com"
	reason = "INC-42: upstream maintenance"
)

// assertOverride checks the override Load shows.
func (s *suite) assertOverride(mode breaker.OverrideMode, ttl bool, snap breaker.Snapshot) *breaker.Override {
	s.t.Helper()
	ov := snap.Override
	require.NotNil(s.t, ov, "Load shows no override while one holds")
	assert.Equal(s.t, mode, ov.Mode)
	assert.Equal(s.t, actor, ov.Actor)
	assert.Equal(s.t, reason, ov.Reason)
	assert.False(s.t, ov.At.IsZero(), "Override.At")
	if !ttl {
		assert.True(s.t, ov.Until.IsZero(), "Override.Until without a TTL: %s", ov.Until)
	}
	return ov
}

var overrideCases = []testCase{
	{"ResetClosesAndClears", func(s *suite) {
		p := consecutive()
		gen, _ := s.trip(p)
		r := s.apply(breaker.Command{Kind: breaker.CommandReset, Actor: actor, Reason: reason})
		assert.Equal(s.t, breaker.Result{
			State:      breaker.StateClosed,
			Generation: gen + 1,
			Transition: breaker.Transition{From: breaker.StateOpen, To: breaker.StateClosed, Generation: gen + 1},
		}, r)
		s.assertCleared(gen + 1)
		assert.Equal(s.t, breaker.Admission{Allowed: true, State: breaker.StateClosed, Generation: gen + 1}, s.admit(p))
		s.failNoTrip(p)
		s.failNoTrip(p)
	}},
	{"ResetRemovesOverride", func(s *suite) {
		p := consecutive()
		s.apply(breaker.Command{Kind: breaker.CommandForceOpen, Actor: actor, Reason: reason})
		r := s.apply(breaker.Command{Kind: breaker.CommandReset})
		assert.Equal(s.t, breaker.Transition{From: breaker.StateOpen, To: breaker.StateClosed, Generation: 2}, r.Transition)
		s.assertCleared(2)
		assert.True(s.t, s.admit(p).Allowed)
	}},
	{"ForceOpenWithoutTTL", func(s *suite) {
		p := consecutive()
		s.failNoTrip(p)
		s.failNoTrip(p)
		r := s.apply(breaker.Command{Kind: breaker.CommandForceOpen, Actor: actor, Reason: reason})
		assert.Equal(s.t, breaker.Result{
			State:      breaker.StateOpen,
			Generation: 1,
			Transition: breaker.Transition{From: breaker.StateClosed, To: breaker.StateOpen, Generation: 1},
		}, r)
		a := s.admit(p)
		s.assertRejected(a, breaker.StateOpen, 1)
		assert.Zero(s.t, a.RetryAfter, "RetryAfter while forced open without expiry")
		snap := s.load()
		ov := s.assertOverride(breaker.OverrideForceOpen, false, snap)
		assert.Equal(s.t, breaker.StateOpen, snap.State)
		assert.Zero(s.t, snap.Failures)
		assert.Equal(s.t, ov.At, snap.OpenedAt, "OpenedAt of a forced-open circuit")
		assert.True(s.t, snap.RetryAt.IsZero(), "RetryAt while forced open without expiry")
		// Without a TTL it holds past any timeout.
		s.advance(timeout + margin)
		s.assertRejected(s.admit(p), breaker.StateOpen, 1)
		s.assertRejected(s.admitOn(s.replica(), s.name, p), breaker.StateOpen, 1)
		assert.Equal(s.t, snap, s.load())
	}},
	{"ForceOpenWithTTL", func(s *suite) {
		p := consecutive()
		ttl := timeout
		w := s.mark()
		r := s.apply(breaker.Command{Kind: breaker.CommandForceOpen, TTL: ttl, Actor: actor, Reason: reason})
		assert.Equal(s.t, breaker.Transition{From: breaker.StateClosed, To: breaker.StateOpen, Generation: 1}, r.Transition)
		a := s.admit(p)
		s.assertRejected(a, breaker.StateOpen, 1)
		s.assertRemaining(ttl, a.RetryAfter, w, "RetryAfter while forced open with a TTL")
		snap := s.load()
		ov := s.assertOverride(breaker.OverrideForceOpen, true, snap)
		assert.Equal(s.t, ttl, ov.Until.Sub(ov.At), "Override.Until - Override.At")
		assert.Equal(s.t, ov.Until, snap.RetryAt, "a forced-open circuit is retried when its override ends")
		assert.Equal(s.t, ov.At, snap.OpenedAt)
		s.advance(ttl + margin)
		snap = s.load()
		assert.Nil(s.t, snap.Override, "an override past its TTL")
		assert.Equal(s.t, breaker.StateOpen, snap.State, "Load changes nothing, even past the TTL")
		assert.Equal(s.t, uint64(1), snap.Generation)
		b := s.probe(p, 1)
		assert.Equal(s.t, breaker.StateHalfOpen, b.State)
		r = s.record(p, b, breaker.OutcomeSuccess)
		assert.Equal(s.t, breaker.Transition{From: breaker.StateHalfOpen, To: breaker.StateClosed, Generation: 3}, r.Transition)
		s.assertCleared(3)
	}},
	{"ForceOpenTTLOverridesTimeout", func(s *suite) {
		// When the override ends before the open timeout would have, the
		// circuit's timeout is over all the same: the next call is a probe.
		p := consecutive()
		gen, _ := s.trip(p)
		ttl := timeout / 6
		s.apply(breaker.Command{Kind: breaker.CommandForceOpen, TTL: ttl, Actor: actor, Reason: reason})
		s.advance(ttl + margin)
		a := s.admit(p)
		require.True(s.t, a.Allowed, "the call after a forced-open TTL: %+v", a)
		assert.Equal(s.t, breaker.Transition{From: breaker.StateOpen, To: breaker.StateHalfOpen, Generation: gen + 2}, a.Transition)
	}},
	{"ForceCloseWithTTL", func(s *suite) {
		p := consecutive()
		gen, _ := s.trip(p)
		ttl := timeout
		r := s.apply(breaker.Command{Kind: breaker.CommandForceClose, TTL: ttl, Actor: actor, Reason: reason})
		assert.Equal(s.t, breaker.Result{
			State:      breaker.StateClosed,
			Generation: gen + 1,
			Transition: breaker.Transition{From: breaker.StateOpen, To: breaker.StateClosed, Generation: gen + 1},
		}, r)
		snap := s.load()
		ov := s.assertOverride(breaker.OverrideForceClose, true, snap)
		assert.Equal(s.t, ttl, ov.Until.Sub(ov.At), "Override.Until - Override.At")
		assert.Equal(s.t, breaker.StateClosed, snap.State)
		assert.Zero(s.t, snap.Failures)
		// Failures are counted but trip nothing while the override holds.
		for range 2 * threshold {
			s.failNoTrip(p)
		}
		assert.Equal(s.t, 2*threshold, s.load().Failures)
		assert.True(s.t, s.admitOn(s.replica(), s.name, p).Allowed)
		s.advance(ttl + margin)
		snap = s.load()
		assert.Nil(s.t, snap.Override, "an override past its TTL")
		assert.Equal(s.t, 2*threshold, snap.Failures)
		// The count has reached the threshold: the next failure trips.
		r = s.fail(p)
		assert.Equal(s.t, breaker.Transition{From: breaker.StateClosed, To: breaker.StateOpen, Generation: gen + 2}, r.Transition)
	}},
	{"ForceCloseUntilReset", func(s *suite) {
		p := consecutive()
		r := s.apply(breaker.Command{Kind: breaker.CommandForceClose, Actor: actor, Reason: reason})
		assert.Equal(s.t, breaker.Transition{From: breaker.StateClosed, To: breaker.StateClosed, Generation: 1}, r.Transition)
		for range 2 * threshold {
			s.failNoTrip(p)
		}
		s.advance(timeout + margin)
		snap := s.load()
		s.assertOverride(breaker.OverrideForceClose, false, snap)
		assert.Equal(s.t, 2*threshold, snap.Failures)
		s.failNoTrip(p)
		r = s.apply(breaker.Command{Kind: breaker.CommandReset})
		assert.Equal(s.t, breaker.Transition{From: breaker.StateClosed, To: breaker.StateClosed, Generation: 2}, r.Transition)
		s.assertCleared(2)
		s.failNoTrip(p)
		s.failNoTrip(p)
		r = s.fail(p)
		assert.Equal(s.t, breaker.Transition{From: breaker.StateClosed, To: breaker.StateOpen, Generation: 3}, r.Transition)
	}},
	{"IfExists", func(s *suite) {
		for _, kind := range []breaker.CommandKind{breaker.CommandReset, breaker.CommandForceOpen, breaker.CommandForceClose} {
			_, err := s.h.Store.Apply(s.ctx, s.name, breaker.Command{Kind: kind, IfExists: true, Actor: actor})
			assert.True(s.t, errors.Is(err, breaker.ErrUnknownCircuit), "%s IfExists on an unknown circuit: got %v", kind, err)
		}
		assert.Equal(s.t, breaker.Snapshot{Name: s.name}, s.load(), "a refused command writes nothing")
		s.failNoTrip(consecutive())
		r, err := s.h.Store.Apply(s.ctx, s.name, breaker.Command{Kind: breaker.CommandForceOpen, IfExists: true, Actor: actor, Reason: reason})
		require.NoError(s.t, err, "IfExists on a circuit with state")
		assert.Equal(s.t, breaker.Transition{From: breaker.StateClosed, To: breaker.StateOpen, Generation: 1}, r.Transition)
		s.assertOverride(breaker.OverrideForceOpen, false, s.load())
	}},
}
