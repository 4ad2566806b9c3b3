package redisstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tripline/tripline/breaker"
	redisstore "github.com/tripline/tripline/store/redis"
)

// TestExpiry checks the TTL rules: an idle circuit disappears WithIdleTTL
// after its last write and then reads as closed, generation 0; an open
// circuit lives until RetryAt + idle TTL, an override until its end + idle
// TTL, an override without an end as long as calls see it.
func TestExpiry(t *testing.T) {
	ctx := context.Background()
	const idle = time.Hour
	setup := func(t *testing.T) (*fakeRedis, *redisstore.Store) {
		f := newFakeRedis(t)
		// Strict: every call's write reaches Redis when it is made.
		return f, f.store(t, redisstore.WithStrict(), redisstore.WithIdleTTL(idle))
	}
	exists := func(f *fakeRedis, s *redisstore.Store) bool { return f.Exists(s.Keys("c")[0]) }
	gone := func(t *testing.T, f *fakeRedis, s *redisstore.Store) {
		t.Helper()
		for _, k := range f.Keys() {
			assert.NotContains(t, k, s.Keys("c")[0], "key %q outlived its TTL", k)
		}
		snap, err := s.Load(ctx, "c")
		require.NoError(t, err)
		assert.Equal(t, breaker.Snapshot{Name: "c"}, snap, "an expired circuit reads as closed, generation 0")
	}

	t.Run("idle closed circuit", func(t *testing.T) {
		f, s := setup(t)
		p := policy(3)
		_, err := s.Record(ctx, "c", p, breaker.Outcome{Kind: breaker.OutcomeFailure})
		require.NoError(t, err)
		f.Advance(idle / 2)
		_, err = s.Record(ctx, "c", p, breaker.Outcome{Kind: breaker.OutcomeSuccess}) // clears the count: a write
		require.NoError(t, err)
		f.requireAllKeysExpire(t)
		f.Advance(idle - time.Millisecond)
		require.True(t, exists(f, s), "expired before the idle TTL passed since the last write")
		f.Advance(time.Millisecond)
		gone(t, f, s)
	})

	t.Run("failures in the window", func(t *testing.T) {
		f, s := setup(t)
		p := policy(3)
		p.FailureWindow = 2 * time.Hour
		_, err := s.Record(ctx, "c", p, breaker.Outcome{Kind: breaker.OutcomeFailure})
		require.NoError(t, err)
		assert.Equal(t, idle+p.FailureWindow, f.TTL(s.Keys("c")[0]))
		assert.Equal(t, p.FailureWindow+time.Millisecond, f.TTL(s.Keys("c")[1]), "the window goes once its failures no longer count")
		f.Advance(idle + p.FailureWindow)
		gone(t, f, s)
	})

	t.Run("open circuit", func(t *testing.T) {
		f, s := setup(t)
		p := policy(1)
		p.Timeout = 2 * time.Hour
		_, err := s.Record(ctx, "c", p, breaker.Outcome{Kind: breaker.OutcomeFailure})
		require.NoError(t, err)
		f.Advance(p.Timeout + idle - time.Millisecond)
		snap, err := s.Load(ctx, "c")
		require.NoError(t, err)
		assert.Equal(t, breaker.StateOpen, snap.State, "an open circuit lives until RetryAt + idle TTL")
		f.Advance(time.Millisecond)
		gone(t, f, s)
	})

	t.Run("half-open circuit", func(t *testing.T) {
		f, s := setup(t)
		p := policy(1)
		_, err := s.Record(ctx, "c", p, breaker.Outcome{Kind: breaker.OutcomeFailure})
		require.NoError(t, err)
		f.Advance(p.Timeout)
		a, err := s.Admit(ctx, "c", p)
		require.NoError(t, err)
		require.Equal(t, breaker.StateHalfOpen, a.State)
		for _, k := range s.Keys("c")[:1] {
			assert.Equal(t, idle+p.ProbeTimeout, f.TTL(k), k)
		}
		assert.Equal(t, idle+p.ProbeTimeout, f.TTL(s.Keys("c")[2]), "leases")
		f.Advance(idle + p.ProbeTimeout)
		gone(t, f, s)
	})

	t.Run("override with an end", func(t *testing.T) {
		f, s := setup(t)
		_, err := s.Apply(ctx, "c", breaker.Command{Kind: breaker.CommandForceClose, TTL: 5 * time.Hour})
		require.NoError(t, err)
		f.Advance(5*time.Hour + idle - time.Millisecond)
		require.True(t, exists(f, s))
		f.Advance(time.Millisecond)
		gone(t, f, s)
	})

	t.Run("override without an end", func(t *testing.T) {
		f, s := setup(t)
		p := policy(1)
		_, err := s.Apply(ctx, "c", breaker.Command{Kind: breaker.CommandForceOpen, Actor: "ops", Reason: "incident"})
		require.NoError(t, err)
		for range 5 { // five idle TTLs, kept alive by the calls that see it
			f.Advance(idle * 6 / 10)
			a, err := s.Admit(ctx, "c", p)
			require.NoError(t, err)
			require.False(t, a.Allowed, "forced open")
			f.requireAllKeysExpire(t)
		}
		snap, err := s.Load(ctx, "c")
		require.NoError(t, err)
		require.NotNil(t, snap.Override)
		assert.Equal(t, "incident", snap.Override.Reason)
		f.Advance(idle) // nobody asks: it goes
		gone(t, f, s)
	})

	t.Run("override without an end, local views", func(t *testing.T) {
		// A replica rejects forced-open calls from its view, but asks Redis
		// once its view is WithMaxStaleness old, which refreshes the TTL.
		f := newFakeRedis(t)
		s := f.store(t, redisstore.WithIdleTTL(idle))
		p := policy(1)
		warm(t, s, "c", p)
		_, err := s.Apply(ctx, "c", breaker.Command{Kind: breaker.CommandForceOpen, Actor: "ops", Reason: "incident"})
		require.NoError(t, err)
		for range 5 {
			f.Advance(idle * 6 / 10)
			for range 3 {
				a, err := s.Admit(ctx, "c", p)
				require.NoError(t, err)
				require.False(t, a.Allowed, "forced open")
			}
		}
		snap, err := s.Load(ctx, "c")
		require.NoError(t, err)
		require.NotNil(t, snap.Override, "kept alive through five idle TTLs")
		f.requireAllKeysExpire(t)
	})
}
