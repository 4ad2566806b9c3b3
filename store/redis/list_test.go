package redisstore_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tripline/tripline/breaker"
	redisstore "github.com/tripline/tripline/store/redis"
)

func TestList(t *testing.T) {
	ctx := context.Background()
	f := newFakeRedis(t)
	s := f.store(t)
	names := []string{"b", "a", "ü", "{x}", "a:b c", strings.Repeat("z", breaker.MaxNameLen)}
	for i, name := range names {
		_, err := s.Apply(ctx, name, breaker.Command{Kind: breaker.CommandForceOpen, TTL: time.Duration(i+1) * time.Minute,
			Actor: "ops", Reason: fmt.Sprint("reason ", i)})
		require.NoError(t, err)
	}
	// Keys under the prefix that are not circuits.
	require.NoError(t, f.Set("tripline:{!!}", "x"))
	require.NoError(t, f.Set("tripline:other", "x"))
	require.NoError(t, f.Set("tripline:events", "x"))
	// The script cache is gone (restart, failover): List loads through a
	// pipeline of EVALSHA and must recover.
	require.NoError(t, f.client(t).ScriptFlush(ctx).Err())

	list, err := s.List(ctx)
	require.NoError(t, err)
	var got []string
	for _, snap := range list {
		got = append(got, snap.Name)
		one, err := s.Load(ctx, snap.Name)
		require.NoError(t, err)
		assert.Equal(t, one, snap)
		require.NotNil(t, snap.Override)
		assert.Equal(t, "ops", snap.Override.Actor)
	}
	assert.Equal(t, []string{"a", "a:b c", "b", strings.Repeat("z", breaker.MaxNameLen), "{x}", "ü"}, got)
}

func TestListManyAndEmpty(t *testing.T) {
	ctx := context.Background()
	f := newFakeRedis(t)
	s := f.store(t)
	list, err := s.List(ctx)
	require.NoError(t, err)
	assert.Empty(t, list)
	p := policy(5)
	for i := range 600 { // more than one SCAN page and one pipeline
		_, err := s.Record(ctx, fmt.Sprintf("c%04d", i), p, breaker.Outcome{Kind: breaker.OutcomeFailure})
		require.NoError(t, err)
	}
	list, err = s.List(ctx)
	require.NoError(t, err)
	require.Len(t, list, 600)
	for i, snap := range list {
		assert.Equal(t, fmt.Sprintf("c%04d", i), snap.Name)
		assert.Equal(t, 1, snap.Failures)
	}
}

// TestPrefixesIsolate: stores with different prefixes on one Redis share
// nothing, even when one prefix is a glob that matches the other or
// extends it.
func TestPrefixesIsolate(t *testing.T) {
	ctx := context.Background()
	f := newFakeRedis(t)
	prefixes := []string{"a", "a:", "a*", "a?", "ab", "a[b]", `a\`}
	stores := map[string]*redisstore.Store{}
	events := map[string]<-chan redisstore.Event{}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for _, p := range prefixes {
		stores[p] = f.store(t, redisstore.WithPrefix(p))
		var err error
		events[p], err = stores[p].Watch(wctx)
		require.NoError(t, err)
	}
	// Each prefix trips its own circuit named after it, plus "shared".
	for _, p := range prefixes {
		for _, name := range []string{p, "shared"} {
			_, err := stores[p].Apply(ctx, name, breaker.Command{Kind: breaker.CommandForceOpen, Reason: p})
			require.NoError(t, err)
		}
	}
	for _, p := range prefixes {
		list, err := stores[p].List(ctx)
		require.NoError(t, err)
		require.Len(t, list, 2, "prefix %q", p)
		for _, snap := range list {
			assert.Equal(t, p, snap.Override.Reason, "prefix %q sees another prefix's circuit %q", p, snap.Name)
			assert.EqualValues(t, 1, snap.Generation)
		}
		for _, q := range prefixes {
			if q != p {
				snap, err := stores[p].Load(ctx, q)
				require.NoError(t, err)
				assert.Equal(t, breaker.Snapshot{Name: q}, snap, "prefix %q sees circuit %q of prefix %q", p, q, q)
			}
		}
		for range 2 {
			ev := next(t, events[p])
			assert.Contains(t, []string{p, "shared"}, ev.Name)
		}
		select {
		case ev := <-events[p]:
			t.Errorf("prefix %q got another prefix's event %+v", p, ev)
		default:
		}
	}
}

// TestInvalidStore: a bad option or a nil client makes every call fail
// with an error that says why; nothing panics.
func TestInvalidStore(t *testing.T) {
	ctx := context.Background()
	f := newFakeRedis(t)
	c := f.client(t)
	for name, s := range map[string]*redisstore.Store{
		"nil client":     redisstore.New(nil),
		"empty prefix":   redisstore.New(c, redisstore.WithPrefix("")),
		"brace prefix":   redisstore.New(c, redisstore.WithPrefix("app{1}")),
		"zero idle TTL":  redisstore.New(c, redisstore.WithIdleTTL(0)),
		"zero reply TTL": redisstore.New(c, redisstore.WithReplyTTL(-time.Second)),
		"zero staleness": redisstore.New(c, redisstore.WithMaxStaleness(0)),
		"short flush":    redisstore.New(c, redisstore.WithFlushInterval(time.Microsecond)),
		"negative call":  redisstore.New(c, redisstore.WithCallTimeout(-time.Millisecond)),
	} {
		t.Cleanup(func() { assert.NoError(t, s.Close()) })
		t.Run(name, func(t *testing.T) {
			_, err := s.Admit(ctx, "c", policy(1))
			assert.ErrorContains(t, err, "redisstore: invalid store")
			_, err = s.Record(ctx, "c", policy(1), breaker.Outcome{Kind: breaker.OutcomeFailure})
			assert.ErrorContains(t, err, "redisstore: invalid store")
			_, err = s.Apply(ctx, "c", breaker.Command{Kind: breaker.CommandReset})
			assert.ErrorContains(t, err, "redisstore: invalid store")
			_, err = s.Load(ctx, "c")
			assert.ErrorContains(t, err, "redisstore: invalid store")
			_, err = s.List(ctx)
			assert.ErrorContains(t, err, "redisstore: invalid store")
			_, err = s.Watch(ctx)
			assert.ErrorContains(t, err, "redisstore: invalid store")
		})
	}
	assert.Empty(t, f.Keys())
}

// TestBadArguments are refused before Redis is asked.
func TestBadArguments(t *testing.T) {
	ctx := context.Background()
	f := newFakeRedis(t)
	c := f.client(t)
	h := newCountHook()
	c.AddHook(h)
	s := f.storeOn(t, c)
	bad := policy(1)
	bad.Timeout = 0
	long := strings.Repeat("x", breaker.MaxNameLen+1)
	note := strings.Repeat("x", redisstore.MaxNoteLen+1)
	for _, err := range []error{
		second(s.Admit(ctx, "", policy(1))),
		second(s.Admit(ctx, long, policy(1))),
		second(s.Admit(ctx, "c", bad)),
		second(s.Admit(ctx, "c", breaker.Policy{})),
		second(s.Record(ctx, "c", bad, breaker.Outcome{Kind: breaker.OutcomeFailure})),
		second(s.Record(ctx, "c", policy(1), breaker.Outcome{})),
		second(s.Record(ctx, "c", policy(1), breaker.Outcome{Kind: 9})),
		second(s.Apply(ctx, "c", breaker.Command{})),
		second(s.Apply(ctx, "c", breaker.Command{Kind: 9})),
		second(s.Apply(ctx, "c", breaker.Command{Kind: breaker.CommandForceOpen, TTL: -1})),
		second(s.Apply(ctx, "c", breaker.Command{Kind: breaker.CommandForceOpen, Actor: note})),
		second(s.Apply(ctx, "c", breaker.Command{Kind: breaker.CommandForceOpen, Reason: note})),
		second(s.Load(ctx, "")),
	} {
		assert.Error(t, err)
	}
	trips, _ := h.take()
	assert.Zero(t, trips, "a bad argument reached Redis")
	assert.Empty(t, f.Keys())
}

func second[T any](_ T, err error) error { return err }

var _ redis.UniversalClient = (*redis.Client)(nil)
