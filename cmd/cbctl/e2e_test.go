package main

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tripline/tripline/breaker"
	"github.com/tripline/tripline/internal/testutil"
	redisstore "github.com/tripline/tripline/store/redis"
)

// t0 is the Redis server's clock in these tests (miniredis SetTime), so
// every time cbctl prints is fixed.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// fleet is a miniredis and the URL cbctl reaches it by.
type fleet struct {
	mr  *miniredis.Miniredis
	url string
}

func newFleet(t *testing.T) *fleet {
	t.Helper()
	mr := miniredis.RunT(t)
	mr.SetTime(t0)
	return &fleet{mr: mr, url: "redis://" + mr.Addr()}
}

// replica is one service replica: its own client, store and Breaker.
func (f *fleet) replica(t *testing.T, name string, cfg breaker.Config) *breaker.Breaker {
	t.Helper()
	client := redis.NewClient(&redis.Options{Addr: f.mr.Addr()})
	// Strict: these tests check what cbctl shows and does, so every replica
	// asks Redis at once rather than through its local view.
	store := redisstore.New(client, redisstore.WithStrict(), redisstore.WithCallTimeout(0))
	t.Cleanup(func() { _ = store.Close(); _ = client.Close() })
	cfg.Store = store
	b, err := breaker.New(name, cfg)
	require.NoError(t, err)
	return b
}

// cbctl runs cbctl against the fleet.
func (f *fleet) cbctl(t *testing.T, args ...string) outcome {
	t.Helper()
	return cbctl(t, nil, append(args, "--redis", f.url)...)
}

var errUpstream = errors.New("upstream down")

func fail(context.Context) error { return errUpstream }
func ok(context.Context) error   { return nil }

func TestTripListResetWatch(t *testing.T) {
	f := newFleet(t)

	// watch runs for the whole test, as an operator's terminal would.
	watchCtx, stopWatch := context.WithCancel(t.Context())
	var watchOut, watchErr testutil.SyncBuffer
	watchCode := make(chan int, 1)
	go func() {
		watchCode <- testApp(&watchOut, &watchErr, nil).run(watchCtx, []string{"watch", "--redis", f.url})
	}()
	testutil.WaitFor(t, "watch to subscribe", func() bool { return strings.Contains(watchErr.String(), "watching") })

	cfg := breaker.Config{FailureThreshold: 3, Timeout: 30 * time.Second}
	replicas := []*breaker.Breaker{
		f.replica(t, "payments", cfg), f.replica(t, "payments", cfg), f.replica(t, "payments", cfg),
	}
	// One failure on each replica: the third trips the shared circuit.
	for _, r := range replicas {
		require.ErrorIs(t, r.Do(t.Context(), fail), errUpstream)
	}
	for _, r := range replicas {
		require.ErrorIs(t, r.Do(t.Context(), ok), breaker.ErrOpen, "every replica sees the trip")
	}
	// Two failures on another circuit: counted, still closed.
	inventory := f.replica(t, "inventory", cfg)
	require.ErrorIs(t, inventory.Do(t.Context(), fail), errUpstream)
	require.ErrorIs(t, inventory.Do(t.Context(), fail), errUpstream)

	out := f.cbctl(t, "open", "search", "--for", "10m", "--reason", "deploy in progress", "--actor", "alice", "--create")
	require.Equal(t, exitOK, out.code, out.stderr)
	assert.Equal(t, "search: forced open for 10m0s by alice (deploy in progress); closed -> open, generation 1\n", out.stdout)
	out = f.cbctl(t, "close", "ledger", "--reason", "false alarms", "--create")
	require.Equal(t, exitOK, out.code, out.stderr)
	assert.Equal(t, "ledger: forced closed until reset by tester (false alarms); now closed, generation 1\n", out.stdout)

	f.mr.SetTime(t0.Add(12 * time.Second))
	t.Run("list", func(t *testing.T) {
		out := f.cbctl(t, "list")
		require.Equal(t, exitOK, out.code, out.stderr)
		golden(t, "list", out.stdout)
		assert.Empty(t, out.stderr)
	})
	t.Run("list open", func(t *testing.T) {
		out := f.cbctl(t, "list", "--state", "open")
		require.Equal(t, exitOK, out.code, out.stderr)
		golden(t, "list_open", out.stdout)
	})
	t.Run("list json", func(t *testing.T) {
		out := f.cbctl(t, "list", "-o", "json")
		require.Equal(t, exitOK, out.code, out.stderr)
		golden(t, "list_json", out.stdout)
		var circuits []map[string]any
		require.NoError(t, json.Unmarshal([]byte(out.stdout), &circuits))
		require.Len(t, circuits, 4)
		names := []string{}
		for _, c := range circuits {
			names = append(names, c["name"].(string))
		}
		assert.Equal(t, []string{"inventory", "ledger", "payments", "search"}, names)
		assert.Equal(t, "open", circuits[2]["state"])
		assert.InDelta(t, 18000, circuits[2]["retry_in_ms"], 0)
	})
	t.Run("list half-open json", func(t *testing.T) {
		out := f.cbctl(t, "list", "--state", "half-open", "-o", "json")
		require.Equal(t, exitOK, out.code, out.stderr)
		assert.Equal(t, "[]\n", out.stdout)
	})
	t.Run("get", func(t *testing.T) {
		for _, name := range []string{"payments", "search", "inventory", "ledger"} {
			out := f.cbctl(t, "get", name)
			require.Equal(t, exitOK, out.code, out.stderr)
			golden(t, "get_"+name, out.stdout)
		}
		out := f.cbctl(t, "get", "search", "-o", "json")
		require.Equal(t, exitOK, out.code, out.stderr)
		golden(t, "get_search_json", out.stdout)
	})
	t.Run("unknown circuit", func(t *testing.T) {
		// get: closed, nothing stored (read_test.go); watch follows the
		// prefix, so it is not blamed.
		out := f.cbctl(t, "get", "nope")
		assert.Equal(t, exitOK, out.code, out.stderr)
		assert.Contains(t, out.stdout, "stored:    nothing: ")
		for _, args := range [][]string{
			{"reset", "nope"}, {"open", "nope", "--reason", "r"}, {"close", "nope", "--reason", "r"},
		} {
			out := f.cbctl(t, args...)
			assert.Equal(t, exitFailure, out.code, "%v", args)
			assert.Empty(t, out.stdout, "%v", args)
			require.Len(t, lines(out.stderr), 1, "%v: %q", args, out.stderr)
			assert.True(t, strings.HasPrefix(out.stderr, `cbctl: circuit nope: nothing stored under prefix "tripline": `), "%v: %q", args, out.stderr)
		}
		assert.Equal(t, `cbctl: circuit nope: nothing stored under prefix "tripline": it is closed with no failure counted, or the name or --prefix is wrong (give --create to reset it anyway)`+"\n",
			f.cbctl(t, "reset", "nope").stderr)
	})

	// The operator resets the circuit: every replica is closed at its next call.
	out = f.cbctl(t, "reset", "payments", "--reason", "fixed the upstream")
	require.Equal(t, exitOK, out.code, out.stderr)
	assert.Equal(t, "payments: reset by tester (fixed the upstream); open -> closed, generation 2\n", out.stdout)
	for i, r := range replicas {
		assert.NoError(t, r.Do(t.Context(), ok), "replica %d runs its call again", i)
		snap, err := r.Snapshot(t.Context())
		require.NoError(t, err)
		assert.Equal(t, breaker.StateClosed, snap.State)
	}
	out = f.cbctl(t, "get", "payments", "-o", "json")
	require.Equal(t, exitOK, out.code, out.stderr)
	var got circuitJSON
	require.NoError(t, json.Unmarshal([]byte(out.stdout), &got))
	assert.Equal(t, "closed", got.State)
	assert.Equal(t, uint64(2), got.Generation)
	assert.Nil(t, got.RetryInMS)

	// watch printed each transition, in order, then ends cleanly when
	// interrupted.
	want := []string{
		"2026-03-01T12:00:00.000Z  payments  closed -> open  generation 1  (outcome)",
		"2026-03-01T12:00:00.000Z  search  closed -> open  generation 1  (force-open)",
		"2026-03-01T12:00:00.000Z  ledger  closed -> closed  generation 1  (force-close)",
		"2026-03-01T12:00:12.000Z  payments  open -> closed  generation 2  (reset)",
	}
	testutil.WaitFor(t, "watch to print 4 transitions", func() bool { return len(lines(watchOut.String())) >= len(want) })
	stopWatch()
	assert.Equal(t, exitOK, <-watchCode, watchErr.String())
	assert.Equal(t, want, lines(watchOut.String()))
	assert.Len(t, lines(watchErr.String()), 1, "only the 'watching' line")
}

func TestWatchFiltersAndJSON(t *testing.T) {
	f := newFleet(t)
	ctx, cancel := context.WithCancel(t.Context())
	var stdout, stderr testutil.SyncBuffer
	code := make(chan int, 1)
	go func() {
		code <- testApp(&stdout, &stderr, nil).run(ctx, []string{"watch", "b", "--redis", f.url, "-o", "json"})
	}()
	testutil.WaitFor(t, "watch to subscribe", func() bool { return strings.Contains(stderr.String(), "watching") })

	for _, name := range []string{"a", "b"} {
		out := f.cbctl(t, "open", name, "--reason", "test", "--create")
		require.Equal(t, exitOK, out.code, out.stderr)
	}
	out := f.cbctl(t, "reset", "b")
	require.Equal(t, exitOK, out.code, out.stderr)
	testutil.WaitFor(t, "two events for b", func() bool { return len(lines(stdout.String())) >= 2 })
	cancel()
	require.Equal(t, exitOK, <-code, stderr.String())
	got := lines(stdout.String())
	require.Len(t, got, 2)
	var ev eventJSON
	require.NoError(t, json.Unmarshal([]byte(got[0]), &ev))
	assert.Equal(t, eventJSON{Time: t0, Event: "transition", Name: "b", From: "closed", To: "open", Generation: 1, Cause: "force-open"}, ev)
	require.NoError(t, json.Unmarshal([]byte(got[1]), &ev))
	assert.Equal(t, eventJSON{Time: t0, Event: "transition", Name: "b", From: "open", To: "closed", Generation: 2, Cause: "reset"}, ev)
}

func TestForcedOpenUntilReset(t *testing.T) {
	f := newFleet(t)
	out := f.cbctl(t, "open", "checkout", "--reason", "  maintenance\n window ", "--create", "--actor", "ops")
	require.Equal(t, exitOK, out.code, out.stderr)
	assert.Equal(t, "checkout: forced open until reset by ops (maintenance window); closed -> open, generation 1\n", out.stdout)
	r := f.replica(t, "checkout", breaker.Config{})
	err := r.Do(t.Context(), ok)
	var oe *breaker.OpenError
	require.ErrorAs(t, err, &oe)
	assert.Equal(t, time.Duration(0), oe.RetryAfter, "forced open without expiry")

	out = f.cbctl(t, "list")
	require.Equal(t, exitOK, out.code, out.stderr)
	golden(t, "list_forced_until_reset", out.stdout)

	// Forcing it again is allowed: the circuit now exists.
	out = f.cbctl(t, "open", "checkout", "--reason", "still", "--for", "1h")
	require.Equal(t, exitOK, out.code, out.stderr)
	assert.Equal(t, "checkout: forced open for 1h0m0s by tester (still); now open, generation 2\n", out.stdout)
}

func TestOverrideExpiresOnServerClock(t *testing.T) {
	f := newFleet(t)
	out := f.cbctl(t, "open", "search", "--for", "90s", "--reason", "deploy", "--create")
	require.Equal(t, exitOK, out.code, out.stderr)
	f.mr.SetTime(t0.Add(30 * time.Second))
	out = f.cbctl(t, "list")
	require.Equal(t, exitOK, out.code, out.stderr)
	assert.Contains(t, out.stdout, "force-open 1m00s left by tester: deploy")
	assert.Contains(t, out.stdout, "search  open   -         1           1m00s")

	f.mr.SetTime(t0.Add(91 * time.Second))
	out = f.cbctl(t, "list")
	require.Equal(t, exitOK, out.code, out.stderr)
	golden(t, "list_override_over", out.stdout)
}
