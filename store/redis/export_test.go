package redisstore

import (
	"time"

	"github.com/tripline/tripline/breaker"
)

// WithLocalClock replaces the local monotonic clock, so tests move it with
// the fake Redis clock instead of sleeping.
func WithLocalClock(now func() time.Duration) Option {
	return func(o *options) { o.clock = now }
}

// WithStrictExact makes a strict store send every outcome, a closed-state
// success with nothing to reset included: the model tests predict every
// Result of the scripts exactly (a success the store does not send reports
// what the replica last heard, see strictNoop).
func WithStrictExact() Option {
	return func(o *options) { o.strict, o.sendAll = true, true }
}

// DropEvents makes the subscriber drop every message it receives (a lost
// message), or stop dropping them.
func (s *Store) DropEvents(drop bool) { s.dropEvents.Store(drop) }

// Epoch returns the subscription epoch: odd while the subscription is live.
func (s *Store) Epoch() uint64 { return s.epoch.Load() }

// LocalView describes the store's view of a circuit.
type LocalView struct {
	Known    bool // the store holds a view
	Fresh    bool // it may decide calls now
	State    breaker.State
	Gen      uint64
	Failures bool // consecutive failures are counted, as last heard
}

// ViewOf returns the store's view of the circuit name.
func (s *Store) ViewOf(name string) LocalView {
	cv, ok := s.circuits.Load(name)
	if !ok {
		return LocalView{}
	}
	v := cv.(*circuit).view.Load()
	if v == nil {
		return LocalView{}
	}
	return LocalView{Known: true, Fresh: s.local() && s.fresh(v, s.now()), State: v.state, Gen: v.gen, Failures: v.failures}
}

// CircuitCount returns how many circuits the store holds views for.
func (s *Store) CircuitCount() int {
	n := 0
	s.circuits.Range(func(any, any) bool { n++; return true })
	return n
}

// Settling reports whether calls whose replies were lost are still being
// settled (see settle.go).
func (s *Store) Settling() bool {
	s.settles.mu.Lock()
	defer s.settles.mu.Unlock()
	return s.settles.running
}

// FlightWaiters returns how many admissions of the circuit name wait for
// the admission of it in flight (0 if none is).
func (s *Store) FlightWaiters(name string) int {
	cv, ok := s.circuits.Load(name)
	if !ok {
		return 0
	}
	if fl := cv.(*circuit).flight.Load(); fl != nil {
		return int(fl.waiters.Load())
	}
	return 0
}

// AddView makes the circuit name with a closed view, as a reply would,
// without asking Redis.
func (s *Store) AddView(name string) {
	s.learn(s.circuit(name), fact{state: breaker.StateClosed}, s.mark())
}
