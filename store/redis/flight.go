package redisstore

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/tripline/tripline/breaker"
)

// flight is one admission of a circuit on its way to Redis. While it is in
// flight, the store's other admissions of that circuit wait for its reply
// instead of sending their own (see admitShared).
type flight struct {
	done chan struct{} // closed once a, err and shared are set
	at   time.Duration // local time just before the request was sent
	a    breaker.Admission
	err  error
	// shared: err is Redis's answer or the call timeout, not the end of
	// the leader's ctx, so the waiters return it too.
	shared  bool
	waiters atomic.Int32 // callers waiting for the reply (tests)
}

// step is what a caller that waited for a flight does next.
type step uint8

const (
	decided step = iota // it has its answer
	again               // it waits for, or leads, the next flight
	alone               // it sends its own admission
)

// admitShared is admitRemote with at most one admission of c in flight on
// the store at a time, while the subscription is live. The first caller
// sends it; the others wait for the reply (or the end of their ctx) and
// then decide from it. A caller whose admission may lease a probe, or move
// the circuit to half-open, always sends its own: a probe lease comes from
// Redis only, so the fleet-wide probe limit stays exact.
func (s *Store) admitShared(ctx context.Context, c *circuit, p breaker.Policy) (breaker.Admission, error) {
	for s.local() && s.epoch.Load()&1 == 1 {
		fl := c.flight.Load()
		if fl == nil {
			fl = &flight{done: make(chan struct{})}
			if c.flight.CompareAndSwap(nil, fl) {
				return s.lead(ctx, c, p, fl)
			}
			continue
		}
		fl.waiters.Add(1)
		select {
		case <-fl.done:
			fl.waiters.Add(-1)
		case <-ctx.Done():
			fl.waiters.Add(-1)
			return breaker.Admission{}, fmt.Errorf("redisstore: admit circuit %q: waiting for the admission in flight: %w", c.name, ctx.Err())
		}
		next, a, err := s.afterFlight(c, fl)
		switch next {
		case decided:
			return a, err
		case alone:
			return s.admitRemote(ctx, c, p)
		}
	}
	// No subscription (every call asks Redis then), or the store closed.
	return s.admitRemote(ctx, c, p)
}

// lead sends the admission of flight fl and hands its reply to the callers
// waiting for it.
func (s *Store) lead(ctx context.Context, c *circuit, p breaker.Policy, fl *flight) (breaker.Admission, error) {
	defer func() {
		c.flight.CompareAndSwap(fl, nil)
		close(fl.done)
	}()
	fl.at = s.now()
	a, err := s.admitRemote(ctx, c, p)
	fl.a, fl.err, fl.shared = a, err, err != nil && ctx.Err() == nil
	return a, err
}

// afterFlight decides what a caller that waited for flight fl does. The
// reply came while the caller waited, and Redis made it at most one round
// trip before the caller came: no older than what a fresh view decides
// from (and a view that heard of a later generation since is not
// overruled by it). So:
//
//   - a fresh view decides (the reply, or an event since, refreshed it);
//   - the leader's error is the caller's too, unless the leader's own ctx
//     ended;
//   - a rejection (open, or half-open with every probe slot held) still in
//     force, with nothing newer heard since, rejects the caller too, with
//     the time left of the reply's RetryAfter;
//   - a circuit at the edge (half-open with a slot that may be free, or
//     open past its retry time) takes the next flight: one admission at a
//     time, each of which may lease a probe or change the state;
//   - anything else (the view cannot be made fresh now: the subscription
//     went down, or the view ages past the staleness bound in a round
//     trip) sends its own admission.
func (s *Store) afterFlight(c *circuit, fl *flight) (step, breaker.Admission, error) {
	if a, ok := s.admitLocal(c); ok {
		return decided, a, nil
	}
	if fl.err != nil {
		if fl.shared {
			return decided, breaker.Admission{}, fl.err
		}
		return again, breaker.Admission{}, nil
	}
	v := c.view.Load()
	if v == nil {
		return alone, breaker.Admission{}, nil // nothing learned
	}
	if v.gen == fl.a.Generation && !fl.a.Allowed {
		now := s.now()
		held := fl.a.State == breaker.StateOpen && fl.a.RetryAfter == 0 // forced open without expiry
		if left := fl.at + fl.a.RetryAfter - now; held || left > 0 {
			return decided, breaker.Admission{State: fl.a.State, Generation: fl.a.Generation, RetryAfter: max(left, 0)}, nil
		}
	}
	if v.state != breaker.StateClosed || fl.a.State != breaker.StateClosed {
		return again, breaker.Admission{}, nil
	}
	return alone, breaker.Admission{}, nil
}
