package redisstore_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tripline/tripline/breaker"
	redisstore "github.com/tripline/tripline/store/redis"
)

// TestRoundTrips counts the Redis round trips of one Breaker call on each
// path of a strict store, with warm script caches: every decision is one
// script call, and a closed-state success with nothing to reset is none.
// (TestLocalViewCommands counts them with local views.)
func TestRoundTrips(t *testing.T) {
	ctx := context.Background()
	f := newFakeRedis(t)
	c := f.client(t)
	h := newCountHook()
	c.AddHook(h)
	b, err := breaker.New("svc", breaker.Config{
		Store:            f.storeOn(t, c, redisstore.WithStrict()),
		FailureThreshold: 3,
		Timeout:          time.Second,
	})
	require.NoError(t, err)
	boom := errors.New("boom")
	ok := func(context.Context) error { return nil }
	fail := func(context.Context) error { return boom }

	// Warm up: the first EVALSHA of each script finds no script (NOSCRIPT)
	// and Script.Run sends EVAL.
	require.NoError(t, b.Do(ctx, ok))
	_, cmds := h.take()
	assert.Equal(t, [2]int{1, 1}, [2]int{cmds["evalsha"], cmds["eval"]}, "cold admit; the success has nothing to reset: %v", cmds)
	require.ErrorIs(t, b.Do(ctx, fail), boom)
	_, cmds = h.take()
	assert.Equal(t, [2]int{2, 1}, [2]int{cmds["evalsha"], cmds["eval"]}, "admit, then cold record: %v", cmds)

	type path struct {
		name  string
		call  func() error
		trips int
	}
	for _, p := range []path{
		{"success that resets", func() error { return b.Do(ctx, ok) }, 2},
		{"closed success", func() error { return b.Do(ctx, ok) }, 1},
		{"closed failure", func() error { return b.Do(ctx, fail) }, 2},
		{"closed failure", func() error { return b.Do(ctx, fail) }, 2},
		{"failure that trips", func() error { return b.Do(ctx, fail) }, 2},
		{"open rejection", func() error { return b.Do(ctx, ok) }, 1},
		{"half-open probe", func() error { f.Advance(time.Second); return b.Do(ctx, ok) }, 2},
		{"closed success again", func() error { return b.Do(ctx, ok) }, 1},
	} {
		err := p.call()
		if p.name == "open rejection" {
			require.ErrorIs(t, err, breaker.ErrOpen)
		}
		trips, cmds := h.take()
		assert.Equal(t, p.trips, trips, "%s: %v", p.name, cmds)
		assert.Equal(t, p.trips, cmds["evalsha"], "%s: every round trip is one EVALSHA: %v", p.name, cmds)
		t.Logf("%-20s %d round trip(s) %v", p.name, trips, cmds)
	}
	snap, err := b.Snapshot(ctx)
	require.NoError(t, err)
	assert.Equal(t, breaker.StateClosed, snap.State)
	assert.Equal(t, uint64(3), snap.Generation, "tripped, half-open, closed by the probe")
}
