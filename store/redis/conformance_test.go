package redisstore_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/tripline/tripline/breaker"
	redisstore "github.com/tripline/tripline/store/redis"
	"github.com/tripline/tripline/store/storetest"
)

// TestConformance runs the Store conformance suite against miniredis, with
// Redis TIME, key expiry and the stores' local clock on a fake clock, and
// every replica on its own client. After each case every key the case wrote
// must have a TTL.
//
// Strict: every call asks Redis. LocalView (the default): the suite's
// replicas decide from local views; after every call that made a
// transition, the suite waits until each replica has heard of it (or holds
// no fresh view of the circuit), which is the bound the local view
// documents (pub/sub delay). Everything else is checked as for Strict.
func TestConformance(t *testing.T) {
	t.Run("Strict", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T) storetest.Harness {
			f := newFakeRedis(t)
			t.Cleanup(func() { f.requireAllKeysExpire(t) })
			return storetest.Harness{
				Store:      f.store(t, redisstore.WithStrict()),
				NewReplica: func(t *testing.T) breaker.Store { return f.store(t, redisstore.WithStrict()) },
				Advance:    f.Advance,
			}
		})
	})
	t.Run("LocalView", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T) storetest.Harness {
			f := newFakeRedis(t)
			t.Cleanup(func() { f.requireAllKeysExpire(t) })
			fl := &heardFleet{t: t}
			return storetest.Harness{
				Store:      fl.add(f.store(t)),
				NewReplica: func(t *testing.T) breaker.Store { return fl.add(f.store(t)) },
				Advance:    f.Advance,
			}
		})
	})
}

// heardFleet is the replicas of one conformance case. Each call that made
// a transition returns once every replica has heard of it.
type heardFleet struct {
	t      *testing.T
	mu     sync.Mutex
	stores []*redisstore.Store
}

func (fl *heardFleet) add(s *redisstore.Store) breaker.Store {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	fl.stores = append(fl.stores, s)
	return heardStore{Store: s, fleet: fl}
}

// await waits until no replica holds a fresh view of name older than gen.
func (fl *heardFleet) await(name string, gen uint64) {
	if gen == 0 {
		return
	}
	fl.mu.Lock()
	stores := append([]*redisstore.Store(nil), fl.stores...)
	fl.mu.Unlock()
	heard := func() bool {
		for _, s := range stores {
			if v := s.ViewOf(name); v.Known && v.Fresh && v.Gen < gen {
				return false
			}
		}
		return true
	}
	for deadline := time.Now().Add(5 * time.Second); !heard(); {
		if time.Now().After(deadline) {
			assert.Fail(fl.t, "a transition did not reach every replica", "circuit %q generation %d", name, gen)
			return
		}
		time.Sleep(50 * time.Microsecond) // polling pub/sub delivery, with a deadline
	}
}

type heardStore struct {
	*redisstore.Store
	fleet *heardFleet
}

func (s heardStore) Admit(ctx context.Context, name string, p breaker.Policy) (breaker.Admission, error) {
	a, err := s.Store.Admit(ctx, name, p)
	s.fleet.await(name, a.Transition.Generation)
	return a, err
}

func (s heardStore) Record(ctx context.Context, name string, p breaker.Policy, o breaker.Outcome) (breaker.Result, error) {
	r, err := s.Store.Record(ctx, name, p, o)
	s.fleet.await(name, r.Transition.Generation)
	return r, err
}

func (s heardStore) Apply(ctx context.Context, name string, c breaker.Command) (breaker.Result, error) {
	r, err := s.Store.Apply(ctx, name, c)
	s.fleet.await(name, r.Transition.Generation)
	return r, err
}
