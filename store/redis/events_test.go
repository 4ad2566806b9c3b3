package redisstore_test

import (
	"bytes"
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tripline/tripline/breaker"
	"github.com/tripline/tripline/internal/testutil"
	redisstore "github.com/tripline/tripline/store/redis"
)

// next receives one event or fails the test after a second.
func next(t *testing.T, ch <-chan redisstore.Event) redisstore.Event {
	t.Helper()
	select {
	case ev, ok := <-ch:
		require.True(t, ok, "the event channel closed")
		return ev
	case <-time.After(5 * time.Second):
		t.Fatal("no event within 5s")
		return redisstore.Event{}
	}
}

// TestWatch follows a circuit through every kind of transition, as the
// scripts publish them, on another replica's store.
func TestWatch(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f := newFakeRedis(t)
	s, watcher := f.store(t), f.store(t)
	assert.Equal(t, "tripline:events", s.Channel())
	events, err := watcher.Watch(ctx)
	require.NoError(t, err)

	p := policy(1)
	p.HalfOpenMaxCalls = 1
	_, err = s.Record(ctx, "c", p, breaker.Outcome{Kind: breaker.OutcomeFailure})
	require.NoError(t, err)
	tripped := f.Now()
	f.Advance(p.Timeout)
	a, err := s.Admit(ctx, "c", p)
	require.NoError(t, err)
	_, err = s.Record(ctx, "c", p, breaker.Outcome{Kind: breaker.OutcomeSuccess, Generation: a.Generation, Probe: a.Probe})
	require.NoError(t, err)
	_, err = s.Apply(ctx, "c", breaker.Command{Kind: breaker.CommandReset})
	require.NoError(t, err)
	_, err = s.Apply(ctx, "c", breaker.Command{Kind: breaker.CommandForceOpen})
	require.NoError(t, err)
	_, err = s.Apply(ctx, "c", breaker.Command{Kind: breaker.CommandForceClose})
	require.NoError(t, err)
	_, err = s.Apply(ctx, "c", breaker.Command{Kind: breaker.CommandForceOpen, TTL: time.Minute})
	require.NoError(t, err)

	closed, open, half := breaker.StateClosed, breaker.StateOpen, breaker.StateHalfOpen
	want := []redisstore.Event{
		{Name: "c", From: closed, To: open, Generation: 1, Cause: "outcome", At: tripped, RetryAt: tripped.Add(p.Timeout)},
		{Name: "c", From: open, To: half, Generation: 2, Cause: "timeout", At: f.Now()},
		{Name: "c", From: half, To: closed, Generation: 3, Cause: "outcome", At: f.Now()},
		{Name: "c", From: closed, To: closed, Generation: 4, Cause: "reset", At: f.Now()},
		{Name: "c", From: closed, To: open, Generation: 5, Cause: "force-open", At: f.Now()}, // no end: no RetryAt
		{Name: "c", From: open, To: closed, Generation: 6, Cause: "force-close", At: f.Now()},
		{Name: "c", From: closed, To: open, Generation: 7, Cause: "force-open", At: f.Now(), RetryAt: f.Now().Add(time.Minute)},
	}
	for _, w := range want {
		ev := next(t, events)
		assert.True(t, w.At.Equal(ev.At), "At: want %s, got %s", w.At, ev.At)
		assert.True(t, w.RetryAt.Equal(ev.RetryAt), "RetryAt: want %s, got %s", w.RetryAt, ev.RetryAt)
		ev.At, ev.RetryAt = w.At, w.RetryAt
		assert.Equal(t, w, ev)
	}

	cancel()
	for range events { // drained and closed once ctx is done
	}
}

// TestWatchNames gets only the circuits asked for, with any name.
func TestWatchNames(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f := newFakeRedis(t)
	s := f.store(t)
	odd := "ü {x}: y"
	events, err := s.Watch(ctx, odd, "b")
	require.NoError(t, err)
	for _, name := range []string{"a", odd, "c", "b"} {
		_, err := s.Apply(ctx, name, breaker.Command{Kind: breaker.CommandForceOpen})
		require.NoError(t, err)
	}
	assert.Equal(t, odd, next(t, events).Name)
	assert.Equal(t, "b", next(t, events).Name)
	cancel()
	for ev := range events {
		t.Errorf("unexpected event %+v", ev)
	}
}

// lockedBuffer is a bytes.Buffer safe for a logger in another goroutine.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestWatchSkipsMalformedMessages: anything else published on the channel
// is logged and skipped; the stream goes on.
func TestWatchSkipsMalformedMessages(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f := newFakeRedis(t)
	var logs lockedBuffer
	s := f.store(t, redisstore.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	events, err := s.Watch(ctx)
	require.NoError(t, err)
	bad := []string{
		"",
		"hello",
		"1 YQ 0 1 1 1 0",              // no cause
		"1 YQ 0 1 1 1 outcome",        // no retry time
		"2 YQ 0 1 1 1 outcome 0",      // unknown version
		"1 Y! 0 1 1 1 outcome 0",      // name not base64url
		"1 YQ== 0 1 1 1 outcome 0",    // padded
		"1  0 1 1 1 outcome 0",        // empty name
		"1 YQ 0 3 1 1 outcome 0",      // no such state
		"1 YQ 0 1 0 1 outcome 0",      // generation 0
		"1 YQ 0 1 -1 1 outcome 0",     // negative
		"1 YQ 0 1 1 x outcome 0",      // time
		"1 YQ 0 1 1 1 outcome -5",     // retry time
		"1 YQ 0 1 1 1 because 0",      // unknown cause
		"1 YQ 0 1 1 1 outcome 0 more", // too many fields
		"1 YQ 0 1 99999999999999999999999 1 outcome 0",
	}
	for _, msg := range bad {
		f.Publish(s.Channel(), msg)
	}
	f.Publish(s.Channel(), "1 YQ 0 1 7 1000000 outcome 2000000")
	ev := next(t, events)
	assert.Equal(t, redisstore.Event{Name: "a", From: breaker.StateClosed, To: breaker.StateOpen,
		Generation: 7, At: time.UnixMicro(1000000), Cause: "outcome", RetryAt: time.UnixMicro(2000000)}, ev)
	assert.Equal(t, len(bad), bytes.Count([]byte(logs.String()), []byte("skipped a message")), logs.String())
}

// TestWatchGaps is issue 16's report: a watcher heard nothing when Redis
// went away and came back, though transitions published meanwhile were
// lost. WatchGaps says so, in order with the transitions: EventLost when
// the server goes away, EventResumed once the subscription is live again.
// Watch keeps its stream of transitions only.
func TestWatchGaps(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f := newFakeRedis(t)
	s := f.store(t, redisstore.WithStrict())
	gaps, err := s.WatchGaps(ctx)
	require.NoError(t, err)
	plain, err := s.Watch(ctx)
	require.NoError(t, err)
	open := func(name string) {
		t.Helper()
		_, err := s.Apply(ctx, name, breaker.Command{Kind: breaker.CommandForceOpen})
		require.NoError(t, err)
	}

	open("a")
	for _, ch := range []<-chan redisstore.Event{gaps, plain} {
		ev := next(t, ch)
		assert.Equal(t, redisstore.EventTransition, ev.Kind)
		assert.Equal(t, "a", ev.Name)
	}

	f.Close()
	lost := next(t, gaps)
	assert.Equal(t, redisstore.EventLost, lost.Kind)
	assert.Error(t, lost.Err)
	assert.True(t, lost.At.IsZero(), "no Redis time marks a gap")
	require.NoError(t, f.Restart())
	resumed := next(t, gaps)
	assert.Equal(t, redisstore.EventResumed, resumed.Kind)
	assert.NoError(t, resumed.Err)
	assert.True(t, resumed.At.IsZero())

	// Both subscriptions are back before the next transition is published.
	testutil.WaitFor(t, "both watchers to subscribe again", func() bool {
		n, err := s.Subscribers(ctx)
		return err == nil && n == 2
	})
	open("b")
	ev := next(t, gaps)
	assert.Equal(t, redisstore.EventTransition, ev.Kind)
	assert.Equal(t, "b", ev.Name)
	ev = next(t, plain)
	assert.Equal(t, redisstore.EventTransition, ev.Kind, "Watch reports no gap")
	assert.Equal(t, "b", ev.Name)

	cancel()
	for ev := range gaps {
		t.Errorf("unexpected event %+v", ev)
	}
	for ev := range plain {
		t.Errorf("unexpected event %+v", ev)
	}
}

func TestEventKindString(t *testing.T) {
	for k, want := range map[redisstore.EventKind]string{
		redisstore.EventTransition: "transition",
		redisstore.EventLost:       "lost",
		redisstore.EventResumed:    "resumed",
		7:                          "EventKind(7)",
	} {
		assert.Equal(t, want, k.String())
	}
}
