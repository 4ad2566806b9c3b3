package redisstore_test

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tripline/tripline/breaker"
	redisstore "github.com/tripline/tripline/store/redis"
)

// TestMalformedData writes, by hand, data no tripline script writes into a
// circuit's keys. Every call that reads it fails with an error matching
// ErrCorrupt that names the circuit; nothing panics and nothing is
// written; a Reset repairs the circuit.
func TestMalformedData(t *testing.T) {
	ctx := context.Background()
	p := policy(2)
	windowed := p
	windowed.FailureWindow = time.Minute

	type ops struct{ admit, record, load, forceOpen bool } // which calls must fail
	all := ops{true, true, true, true}
	cases := []struct {
		name  string
		setup func(t *testing.T, f *fakeRedis, s *redisstore.Store, keys []string)
		p     breaker.Policy
		fail  ops
	}{
		{"state not a number", hset("st", "zz"), p, all},
		{"state out of range", hset("st", "3"), p, all},
		{"negative generation", hset("g", "-1"), p, all},
		{"exponent", hset("g", "1e3"), p, all},
		{"hex", hset("f", "0x1"), p, all},
		{"space", hset("ra", " 5"), p, all},
		{"empty", hset("oa", ""), p, all},
		{"nan", hset("lw", "nan"), p, all},
		{"too large", hset("seq", "99999999999999999"), p, all},
		{"override mode", hset("om", "7"), p, all},
		{"line breaks", hset("st", "1\r\n-ERR fake\r\n"), p, all},
		{"hash is a string", func(t *testing.T, f *fakeRedis, _ *redisstore.Store, keys []string) {
			require.NoError(t, f.Set(keys[0], "x"))
		}, p, all},
		{"window is a string", func(t *testing.T, f *fakeRedis, s *redisstore.Store, keys []string) {
			_, err := s.Record(ctx, "c", windowed, breaker.Outcome{Kind: breaker.OutcomeFailure})
			require.NoError(t, err)
			f.Del(keys[1])
			require.NoError(t, f.Set(keys[1], "x"))
		}, windowed, ops{record: true, load: true}},
		{"leases are a list", func(t *testing.T, f *fakeRedis, s *redisstore.Store, keys []string) {
			_, err := s.Apply(ctx, "c", breaker.Command{Kind: breaker.CommandForceOpen, TTL: time.Millisecond})
			require.NoError(t, err)
			f.Advance(time.Millisecond)
			a, err := s.Admit(ctx, "c", p) // half-open, with a lease
			require.NoError(t, err)
			require.Equal(t, breaker.StateHalfOpen, a.State)
			f.Del(keys[2])
			_, err = f.Push(keys[2], "x")
			require.NoError(t, err)
		}, p, ops{admit: true, load: true}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeRedis(t)
			s := f.store(t, redisstore.WithStrict()) // every call reads the data
			keys := s.Keys("c")
			tc.setup(t, f, s, keys)
			before := f.Dump()

			check := func(op string, must bool, err error) {
				t.Helper()
				if !must {
					return
				}
				require.Error(t, err, op)
				assert.ErrorIs(t, err, redisstore.ErrCorrupt, op)
				assert.Contains(t, err.Error(), `circuit "c"`, op)
				assert.Contains(t, err.Error(), "malformed circuit data", op)
				assert.NotContains(t, err.Error(), "\n", op)
				var rerr redis.Error
				assert.True(t, errors.As(err, &rerr), "%s: the Redis error is still there: %v", op, err)
			}
			_, err := s.Admit(ctx, "c", tc.p)
			check("admit", tc.fail.admit, err)
			_, err = s.Record(ctx, "c", tc.p, breaker.Outcome{Kind: breaker.OutcomeFailure})
			check("record", tc.fail.record, err)
			_, err = s.Load(ctx, "c")
			check("load", tc.fail.load, err)
			_, err = s.Apply(ctx, "c", breaker.Command{Kind: breaker.CommandForceOpen})
			check("force-open", tc.fail.forceOpen, err)
			if tc.fail == all {
				list, err := s.List(ctx) // lists the circuit with its error (list_test.go)
				require.NoError(t, err)
				require.Len(t, list, 1)
				check("list", true, list[0].Err)
				assert.Equal(t, before, f.Dump(), "a failed call wrote something")
			}

			r, err := s.Apply(ctx, "c", breaker.Command{Kind: breaker.CommandReset, Actor: "ops"})
			require.NoError(t, err, "a reset repairs the circuit")
			assert.Equal(t, breaker.StateClosed, r.State)
			snap, err := s.Load(ctx, "c")
			require.NoError(t, err)
			assert.Equal(t, breaker.StateClosed, snap.State)
			a, err := s.Admit(ctx, "c", tc.p)
			require.NoError(t, err)
			assert.True(t, a.Allowed)
			f.requireAllKeysExpire(t)
		})
	}
}

func hset(field, value string) func(*testing.T, *fakeRedis, *redisstore.Store, []string) {
	return func(t *testing.T, f *fakeRedis, s *redisstore.Store, keys []string) {
		_, err := s.Record(context.Background(), "c", policy(2), breaker.Outcome{Kind: breaker.OutcomeFailure})
		require.NoError(t, err)
		f.HSet(keys[0], field, value)
	}
}

// TestStoreErrorsAreErrors: a Redis that answers with an error, or not at
// all, gives an error on every call, never a closed circuit.
func TestStoreErrorsAreErrors(t *testing.T) {
	ctx := context.Background()
	p := policy(2)
	for _, tc := range []struct {
		name    string
		breakIt func(f *fakeRedis)
	}{
		{"error reply", func(f *fakeRedis) { f.SetError("LOADING Redis is loading the dataset in memory") }},
		{"server gone", func(f *fakeRedis) { f.Close() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeRedis(t)
			c := redis.NewClient(&redis.Options{Addr: f.Addr(), MaxRetries: -1, DialTimeout: time.Second, DialerRetries: 1, DialerRetryTimeout: time.Millisecond})
			t.Cleanup(func() { _ = c.Close() })
			s := f.storeOn(t, c, redisstore.WithStrict()) // every call asks Redis (localview_test.go: the same with local views)
			_, err := s.Record(ctx, "c", p, breaker.Outcome{Kind: breaker.OutcomeFailure})
			require.NoError(t, err)
			tc.breakIt(f)

			_, err = s.Admit(ctx, "c", p)
			assert.ErrorContains(t, err, `redisstore: admit circuit "c"`)
			_, err = s.Record(ctx, "c", p, breaker.Outcome{Kind: breaker.OutcomeFailure})
			assert.ErrorContains(t, err, `redisstore: record circuit "c"`)
			_, err = s.Apply(ctx, "c", breaker.Command{Kind: breaker.CommandReset})
			assert.ErrorContains(t, err, `redisstore: apply circuit "c"`)
			snap, err := s.Load(ctx, "c")
			assert.ErrorContains(t, err, `redisstore: load circuit "c"`)
			assert.Equal(t, breaker.Snapshot{}, snap)
			list, err := s.List(ctx)
			assert.Error(t, err)
			assert.Nil(t, list)
			_, err = s.Watch(ctx)
			assert.Error(t, err)
		})
	}
}

// TestHandWrittenLimits (issue 17): hand-written numbers at the scripts'
// limits never make a script write a value it cannot read back. A circuit
// at the last exact generation (2^53-1) cannot make a transition: a call
// that would make one fails with ErrCorrupt and writes nothing, and a
// reset starts the circuit over at generation 1. A failure sequence number
// at the limit wraps.
func TestHandWrittenLimits(t *testing.T) {
	ctx := context.Background()
	const last = "9007199254740991"
	p := policy(2)

	t.Run("last generation", func(t *testing.T) {
		f := newFakeRedis(t)
		s := f.store(t, redisstore.WithStrict())
		hash := s.Keys("c")[0]
		_, err := s.Record(ctx, "c", p, breaker.Outcome{Kind: breaker.OutcomeFailure})
		require.NoError(t, err)
		f.HSet(hash, "g", last)
		snap, err := s.Load(ctx, "c")
		require.NoError(t, err, "a circuit at the last generation is readable")
		require.Equal(t, uint64(breaker.MaxCount), snap.Generation)
		a, err := s.Admit(ctx, "c", p)
		require.NoError(t, err)
		require.True(t, a.Allowed, "closed: no transition needed")

		before := f.Dump()
		_, err = s.Record(ctx, "c", p, breaker.Outcome{Kind: breaker.OutcomeFailure, Generation: a.Generation})
		assert.ErrorIs(t, err, redisstore.ErrCorrupt, "a failure that would trip")
		_, err = s.Apply(ctx, "c", breaker.Command{Kind: breaker.CommandForceOpen})
		assert.ErrorIs(t, err, redisstore.ErrCorrupt, "force-open")
		assert.Equal(t, before, f.Dump(), "a refused call wrote something")

		r, err := s.Apply(ctx, "c", breaker.Command{Kind: breaker.CommandReset})
		require.NoError(t, err, "a reset starts the circuit over")
		assert.Equal(t, breaker.Result{State: breaker.StateClosed, Generation: 1,
			Transition: breaker.Transition{From: breaker.StateClosed, To: breaker.StateClosed, Generation: 1}}, r)
		snap, err = s.Load(ctx, "c")
		require.NoError(t, err, "readable after the reset")
		assert.Equal(t, uint64(1), snap.Generation)
		assert.Zero(t, snap.Failures)
		f.requireAllKeysExpire(t)
	})

	t.Run("last generation, unreadable otherwise", func(t *testing.T) {
		f := newFakeRedis(t)
		s := f.store(t, redisstore.WithStrict())
		hash := s.Keys("c")[0]
		_, err := s.Record(ctx, "c", p, breaker.Outcome{Kind: breaker.OutcomeFailure})
		require.NoError(t, err)
		f.HSet(hash, "g", last)
		f.HSet(hash, "st", "zz")
		r, err := s.Apply(ctx, "c", breaker.Command{Kind: breaker.CommandReset})
		require.NoError(t, err, "a reset repairs the circuit")
		assert.Equal(t, uint64(1), r.Generation)
		_, err = s.Load(ctx, "c")
		require.NoError(t, err)
	})

	t.Run("last failure sequence number", func(t *testing.T) {
		f := newFakeRedis(t)
		s := f.store(t, redisstore.WithStrict())
		windowed := p
		windowed.FailureWindow = time.Minute
		for name, q := range map[string]breaker.Policy{"consecutive": p, "window": windowed} {
			hash := s.Keys(name)[0]
			_, err := s.Record(ctx, name, q, breaker.Outcome{Kind: breaker.OutcomeFailure})
			require.NoError(t, err)
			f.HSet(hash, "seq", last)
			_, err = s.Record(ctx, name, q, breaker.Outcome{Kind: breaker.OutcomeSuccess})
			require.NoError(t, err)
			_, err = s.Record(ctx, name, q, breaker.Outcome{Kind: breaker.OutcomeFailure})
			require.NoError(t, err, name)
			assert.Equal(t, "1", f.HGet(hash, "seq"), "%s: the sequence wraps", name)
			_, err = s.Load(ctx, name)
			require.NoError(t, err, name)
		}
	})
}

// TestForeignWindowScores (issue 17): a failure time later than now (a
// hand-written score, +inf included) is not a failure: it is not counted,
// and the next failure drops it, as admissions drop such probe leases.
func TestForeignWindowScores(t *testing.T) {
	ctx := context.Background()
	f := newFakeRedis(t)
	s := f.store(t, redisstore.WithStrict())
	p := policy(3)
	p.FailureWindow = time.Minute
	_, err := s.Record(ctx, "c", p, breaker.Outcome{Kind: breaker.OutcomeFailure})
	require.NoError(t, err)
	window := s.Keys("c")[1]
	_, err = f.ZAdd(window, math.Inf(1), "inf")
	require.NoError(t, err)
	_, err = f.ZAdd(window, float64(f.Now().Add(time.Hour).UnixMicro()), "future")
	require.NoError(t, err)

	snap, err := s.Load(ctx, "c")
	require.NoError(t, err)
	assert.Equal(t, 1, snap.Failures, "Load counts only the failure at or before now")
	r, err := s.Record(ctx, "c", p, breaker.Outcome{Kind: breaker.OutcomeFailure})
	require.NoError(t, err)
	assert.Equal(t, breaker.StateClosed, r.State, "2 failures of 3: no trip")
	members, err := f.ZMembers(window)
	require.NoError(t, err)
	assert.Len(t, members, 2, "the foreign scores are dropped: %v", members)
}
