package redisstore_test

import (
	"testing"

	"github.com/tripline/tripline/breaker"
	"github.com/tripline/tripline/store/storetest"
)

// TestConformance runs the Store conformance suite against miniredis, with
// Redis TIME and key expiry on a fake clock, and every replica on its own
// client. After each case every key the case wrote must have a TTL.
func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Harness {
		f := newFakeRedis(t)
		t.Cleanup(func() { f.requireAllKeysExpire(t) })
		return storetest.Harness{
			Store:      f.store(t),
			NewReplica: func(t *testing.T) breaker.Store { return f.store(t) },
			Advance:    f.Advance,
		}
	})
}
