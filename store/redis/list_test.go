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
	"github.com/tripline/tripline/internal/testutil"
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
		require.NoError(t, snap.Err)
		one, err := s.Load(ctx, snap.Name)
		require.NoError(t, err)
		assert.Equal(t, one, snap.Snapshot)
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

// TestListCorruptCircuit is issue 17's report: one circuit holding data
// that tripline did not write made List fail as a whole. Now the others
// are listed as usual, and the damaged one is listed with its error, which
// matches ErrCorrupt and names it; a reset repairs it.
func TestListCorruptCircuit(t *testing.T) {
	ctx := context.Background()
	f := newFakeRedis(t)
	s := f.store(t, redisstore.WithStrict())
	p := policy(5)
	for _, name := range []string{"a", "b", "c", "d"} {
		_, err := s.Record(ctx, name, p, breaker.Outcome{Kind: breaker.OutcomeFailure})
		require.NoError(t, err)
	}
	f.HSet(s.Keys("b")[0], "st", "zz") // a field no script writes
	f.Del(s.Keys("c")[0])
	require.NoError(t, f.Set(s.Keys("c")[0], "x")) // a key of another type (WRONGTYPE)

	list, err := s.List(ctx)
	require.NoError(t, err, "one damaged circuit does not fail the list")
	require.Len(t, list, 4)
	for i, name := range []string{"a", "b", "c", "d"} {
		e := list[i]
		assert.Equal(t, name, e.Name)
		if name == "b" || name == "c" {
			require.Error(t, e.Err, name)
			assert.ErrorIs(t, e.Err, redisstore.ErrCorrupt, name)
			assert.Contains(t, e.Err.Error(), `circuit "`+name+`"`)
			assert.Equal(t, breaker.Snapshot{Name: name}, e.Snapshot, "only the name of a damaged circuit")
			continue
		}
		assert.NoError(t, e.Err, name)
		assert.Equal(t, 1, e.Failures, name)
	}

	// More than one pipeline: the damaged one in the second batch.
	for i := range 300 {
		_, err := s.Record(ctx, fmt.Sprintf("m%03d", i), p, breaker.Outcome{Kind: breaker.OutcomeFailure})
		require.NoError(t, err)
	}
	f.HSet(s.Keys("m299")[0], "g", "-1")
	list, err = s.List(ctx)
	require.NoError(t, err)
	require.Len(t, list, 304)
	corrupt := 0
	for _, e := range list {
		if e.Err != nil {
			corrupt++
		}
	}
	assert.Equal(t, 3, corrupt)
	assert.ErrorIs(t, list[len(list)-1].Err, redisstore.ErrCorrupt)

	for _, name := range []string{"b", "c", "m299"} {
		_, err := s.Apply(ctx, name, breaker.Command{Kind: breaker.CommandReset})
		require.NoError(t, err)
	}
	list, err = s.List(ctx)
	require.NoError(t, err)
	for _, e := range list {
		assert.NoError(t, e.Err, e.Name)
	}
}

// TestListFailsWhenRedisDoes: an error that is not about one circuit's
// data still fails the whole list.
func TestListFailsWhenRedisDoes(t *testing.T) {
	ctx := context.Background()
	f := newFakeRedis(t)
	s := f.store(t, redisstore.WithStrict())
	_, err := s.Record(ctx, "a", policy(5), breaker.Outcome{Kind: breaker.OutcomeFailure})
	require.NoError(t, err)
	f.SetError("LOADING Redis is loading the dataset in memory")
	list, err := s.List(ctx)
	require.Error(t, err)
	assert.NotErrorIs(t, err, redisstore.ErrCorrupt)
	assert.Nil(t, list)
}

// TestFollowersAndAnyStored: what cbctl asks when a circuit has nothing
// stored. Followers counts the subscriptions to the prefix's channel: a
// Store with local views subscribes at its first call, a strict one never,
// a watcher does; another prefix's are not counted. AnyStored finds a
// circuit under the prefix, and only under it.
func TestFollowersAndAnyStored(t *testing.T) {
	ctx := context.Background()
	f := newFakeRedis(t)
	admin := f.store(t, redisstore.WithStrict())
	count := func() int {
		t.Helper()
		n, err := admin.Subscribers(ctx)
		require.NoError(t, err)
		return n
	}
	stored := func(s *redisstore.Store) bool {
		t.Helper()
		found, complete, err := s.AnyStored(ctx)
		require.NoError(t, err)
		assert.True(t, complete, "a small keyspace is scanned whole")
		return found
	}
	assert.Equal(t, 0, count())
	assert.False(t, stored(admin))

	p := policy(5)
	views := f.store(t) // local views: subscribes at its first call
	strict := f.store(t, redisstore.WithStrict())
	other := f.store(t, redisstore.WithPrefix("other"))
	for _, s := range []*redisstore.Store{views, strict, other} {
		_, err := s.Admit(ctx, "c", p)
		require.NoError(t, err)
	}
	testutil.WaitFor(t, "the Store with local views to subscribe", func() bool { return count() == 1 })
	wctx, cancel := context.WithCancel(ctx)
	events, err := strict.Watch(wctx)
	require.NoError(t, err)
	assert.Equal(t, 2, count(), "a watcher counts")
	cancel()
	for range events {
	}
	testutil.WaitFor(t, "the watcher to leave", func() bool { return count() == 1 })
	assert.False(t, stored(admin), "healthy calls write nothing")

	// Keys that only look like the prefix's do not count.
	require.NoError(t, f.Set("tripline:other", "x"))
	require.NoError(t, f.Set("tripline:{!!}", "x"))
	require.NoError(t, f.Set("tripline2:{YQ}", "x"))
	assert.False(t, stored(admin))
	_, err = other.Record(ctx, "c", p, breaker.Outcome{Kind: breaker.OutcomeFailure})
	require.NoError(t, err)
	assert.False(t, stored(admin), "another prefix's circuit")
	assert.True(t, stored(other))
	_, err = strict.Record(ctx, "c", p, breaker.Outcome{Kind: breaker.OutcomeFailure})
	require.NoError(t, err)
	assert.True(t, stored(admin))

	f.SetError("NOPERM this user has no permissions to run the 'pubsub|numsub' command")
	_, err = admin.Subscribers(ctx)
	assert.ErrorContains(t, err, "redisstore: count followers of tripline: NOPERM")
	_, _, err = admin.AnyStored(ctx)
	assert.ErrorContains(t, err, "redisstore: scan tripline: NOPERM")
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
