package storetest

import (
	"errors"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tripline/tripline/breaker"
)

// fixture is a set of circuits in every state, to check that a rejected call
// writes nothing to any of them.
type fixture struct {
	s       *suite
	fresh   string   // no state at all
	names   []string // circuits with state
	before  map[string]breaker.Snapshot
	tickets map[string]breaker.Admission // an admission held on each circuit with state
}

func (s *suite) newFixture() *fixture {
	s.t.Helper()
	p := consecutive()
	f := &fixture{
		s:       s,
		fresh:   s.name + "/fresh",
		before:  make(map[string]breaker.Snapshot),
		tickets: make(map[string]breaker.Admission),
	}
	counting, due, probing := s.name+"/counting", s.name+"/due", s.name+"/probing"
	f.names = []string{counting, due, probing}
	// counting: closed with two failures and a call in flight.
	s.callOn(s.h.Store, counting, p, breaker.OutcomeFailure)
	s.callOn(s.h.Store, counting, p, breaker.OutcomeFailure)
	f.tickets[counting] = s.admitOn(s.h.Store, counting, p)
	// due and probing: open, with the timeout over.
	dueGen, _ := s.tripOn(s.h.Store, due, p)
	s.tripOn(s.h.Store, probing, p)
	s.advance(timeout + margin)
	f.tickets[due] = breaker.Admission{Allowed: true, Generation: dueGen}
	// probing: half-open with its one probe permit held, long enough for
	// every check to run on a slow machine.
	f.tickets[probing] = s.admitOn(s.h.Store, probing, longProbe())
	require.True(s.t, f.tickets[probing].Allowed)
	require.Equal(s.t, breaker.StateHalfOpen, f.tickets[probing].State)
	for _, n := range f.names {
		f.before[n] = s.loadOn(s.h.Store, n)
	}
	require.Equal(s.t, breaker.StateOpen, f.before[due].State)
	return f
}

// unchanged checks that no circuit of the fixture has changed.
func (f *fixture) unchanged(what string) {
	s := f.s
	s.t.Helper()
	for _, n := range f.names {
		assert.Equal(s.t, f.before[n], s.loadOn(s.h.Store, n), "%s changed circuit %q", what, n)
	}
	_, err := s.h.Store.Apply(s.ctx, f.fresh, breaker.Command{Kind: breaker.CommandReset, IfExists: true})
	assert.True(s.t, errors.Is(err, breaker.ErrUnknownCircuit), "%s wrote state for a circuit that had none: %v", what, err)
}

// finish checks that the fixture's circuits still work: the held probe
// closes its circuit, the open one admits a probe, the counting one trips.
func (f *fixture) finish() {
	s := f.s
	s.t.Helper()
	p := consecutive()
	counting, due, probing := f.names[0], f.names[1], f.names[2]
	r := s.recordOn(s.h.Store, probing, longProbe(), f.tickets[probing], breaker.OutcomeSuccess)
	assert.Equal(s.t, breaker.StateClosed, r.State, "the held probe's outcome after the rejected calls")
	a := s.admitOn(s.h.Store, due, p)
	assert.Equal(s.t, breaker.StateHalfOpen, a.State)
	assert.True(s.t, a.Allowed)
	r = s.recordOn(s.h.Store, counting, p, f.tickets[counting], breaker.OutcomeFailure)
	assert.Equal(s.t, breaker.StateOpen, r.State, "the third failure after the rejected calls")
}

// longProbe is consecutive with probe permits that outlast any test.
func longProbe() breaker.Policy {
	p := consecutive()
	p.ProbeTimeout = time.Minute
	return p
}

// badPolicies are policies every store must reject.
func badPolicies() []struct {
	name string
	p    breaker.Policy
} {
	type bad = struct {
		name string
		p    breaker.Policy
	}
	var out []bad
	add := func(name string, change func(*breaker.Policy)) {
		p := consecutive()
		change(&p)
		out = append(out, bad{name, p})
	}
	add("zero FailureThreshold", func(p *breaker.Policy) { p.FailureThreshold = 0 })
	add("negative FailureThreshold", func(p *breaker.Policy) { p.FailureThreshold = -1 })
	add("zero SuccessThreshold", func(p *breaker.Policy) { p.SuccessThreshold = 0 })
	add("negative SuccessThreshold", func(p *breaker.Policy) { p.SuccessThreshold = -3 })
	add("zero HalfOpenMaxCalls", func(p *breaker.Policy) { p.HalfOpenMaxCalls = 0 })
	add("FailureThreshold above MaxFailureThreshold", func(p *breaker.Policy) { p.FailureThreshold = breaker.MaxFailureThreshold + 1 })
	maxCount := int64(breaker.MaxCount) // an int64 first: int may be 32 bits
	add("SuccessThreshold above MaxCount", func(p *breaker.Policy) { p.SuccessThreshold = int(maxCount + 1) })
	add("HalfOpenMaxCalls above MaxCount", func(p *breaker.Policy) { p.HalfOpenMaxCalls = int(maxCount + 1) })
	add("zero Timeout", func(p *breaker.Policy) { p.Timeout = 0 })
	add("negative Timeout", func(p *breaker.Policy) { p.Timeout = -time.Second })
	add("zero ProbeTimeout", func(p *breaker.Policy) { p.ProbeTimeout = 0 })
	add("negative ProbeTimeout", func(p *breaker.Policy) { p.ProbeTimeout = -time.Second })
	add("negative FailureWindow", func(p *breaker.Policy) { p.FailureWindow = -time.Second })
	add("zero Policy", func(p *breaker.Policy) { *p = breaker.Policy{} })
	return out
}

var argumentCases = []testCase{
	{"InvalidPolicy", func(s *suite) {
		f := s.newFixture()
		for _, bad := range badPolicies() {
			for _, n := range append([]string{f.fresh}, f.names...) {
				_, err := s.h.Store.Admit(s.ctx, n, bad.p)
				assert.Error(s.t, err, "Admit with %s on %q", bad.name, n)
				for _, kind := range []breaker.OutcomeKind{breaker.OutcomeFailure, breaker.OutcomeSuccess} {
					t := f.tickets[n]
					o := breaker.Outcome{Kind: kind, Generation: t.Generation, Probe: t.Probe}
					_, err = s.h.Store.Record(s.ctx, n, bad.p, o)
					assert.Error(s.t, err, "Record %d with %s on %q", kind, bad.name, n)
				}
			}
			f.unchanged("a call with " + bad.name)
		}
		f.finish()
	}},
	{"UnknownOutcomeKind", func(s *suite) {
		f := s.newFixture()
		for _, kind := range []breaker.OutcomeKind{0, 200, 255} {
			for _, n := range append([]string{f.fresh}, f.names...) {
				t := f.tickets[n]
				o := breaker.Outcome{Kind: kind, Generation: t.Generation, Probe: t.Probe}
				_, err := s.h.Store.Record(s.ctx, n, consecutive(), o)
				assert.Error(s.t, err, "Record with OutcomeKind %d on %q", kind, n)
			}
			f.unchanged("Record with an unknown OutcomeKind")
		}
		f.finish()
	}},
	{"UnknownCommandKind", func(s *suite) {
		f := s.newFixture()
		for _, kind := range []breaker.CommandKind{0, 200, 255} {
			for _, n := range append([]string{f.fresh}, f.names...) {
				for _, ifExists := range []bool{false, true} {
					c := breaker.Command{Kind: kind, IfExists: ifExists, Actor: actor, TTL: time.Second}
					_, err := s.h.Store.Apply(s.ctx, n, c)
					assert.Error(s.t, err, "Apply %s on %q", kind, n)
				}
			}
			f.unchanged("Apply with an unknown CommandKind")
		}
		f.finish()
	}},
	{"NegativeTTL", func(s *suite) {
		f := s.newFixture()
		for _, kind := range []breaker.CommandKind{breaker.CommandForceOpen, breaker.CommandForceClose} {
			for _, ttl := range []time.Duration{-1, -time.Minute} {
				for _, n := range append([]string{f.fresh}, f.names...) {
					_, err := s.h.Store.Apply(s.ctx, n, breaker.Command{Kind: kind, TTL: ttl, Actor: actor})
					assert.Error(s.t, err, "Apply %s with TTL %s on %q", kind, ttl, n)
				}
				f.unchanged("Apply with a negative TTL")
			}
		}
		f.finish()
	}},
}
