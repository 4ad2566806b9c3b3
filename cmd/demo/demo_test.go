package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tripline/tripline/breaker"
	"github.com/tripline/tripline/internal/redact"
	"github.com/tripline/tripline/internal/testutil"
)

func TestParseSchedule(t *testing.T) {
	s, err := parseSchedule("up=300ms, down=1s,up")
	require.NoError(t, err)
	assert.Equal(t, schedule{{up: true, dur: 300 * time.Millisecond}, {dur: time.Second}, {up: true}}, s)
	assert.Equal(t, "up=300ms,down=1s,up", s.String())

	for _, bad := range []string{"", "up=1s,sideways=1s", "up,down=1s", "up=-1s", "up=0s", "down=soon"} {
		_, err := parseSchedule(bad)
		assert.Error(t, err, "%q", bad)
	}
}

func TestScheduleAt(t *testing.T) {
	const ms = time.Millisecond
	once, err := parseSchedule("up=300ms,down=700ms,up")
	require.NoError(t, err)
	cyclic, err := parseSchedule("up=1s,down=500ms")
	require.NoError(t, err)
	tests := []struct {
		s          schedule
		t          time.Duration
		up         bool
		start, end time.Duration
	}{
		{once, 0, true, 0, 300 * ms},
		{once, 299 * ms, true, 0, 300 * ms},
		{once, 300 * ms, false, 300 * ms, 1000 * ms},
		{once, 999 * ms, false, 300 * ms, 1000 * ms},
		{once, 1000 * ms, true, 1000 * ms, 0},
		{once, time.Hour, true, 1000 * ms, 0},
		{cyclic, 1200 * ms, false, 1000 * ms, 1500 * ms},
		{cyclic, 1500 * ms, true, 1500 * ms, 2500 * ms},
		{cyclic, 2600 * ms, false, 2500 * ms, 3000 * ms},
	}
	for _, tt := range tests {
		p, start, end := tt.s.at(tt.t)
		assert.Equal(t, tt.up, p.up, "%s at %s", tt.s, tt.t)
		assert.Equal(t, tt.start, start, "%s at %s", tt.s, tt.t)
		assert.Equal(t, tt.end, end, "%s at %s", tt.s, tt.t)
	}
	assert.Equal(t, []time.Duration{300 * ms}, once.downStarts(time.Hour))
	assert.Equal(t, []time.Duration{1000 * ms, 2500 * ms}, cyclic.downStarts(3*time.Second))
}

func TestRunUsage(t *testing.T) {
	for _, args := range [][]string{
		{"--frob"}, {"--role", "sidecar"}, {"--duration", "-1s"}, {"--schedule", "up,down"},
		{"--display", "3d"}, {"extra"}, {"--replicas", "0"},
	} {
		var stdout, stderr bytes.Buffer
		code := run(t.Context(), args, &stdout, &stderr)
		assert.Equal(t, 2, code, "%v", args)
		assert.NotEmpty(t, stderr.String(), "%v", args)
	}
	var stdout, stderr bytes.Buffer
	assert.Equal(t, 0, run(t.Context(), []string{"-h"}, &stdout, &stderr))
	assert.Contains(t, stderr.String(), "-upstream-url")
}

func TestReplicaRoleNeedsUpstreamAndRedis(t *testing.T) {
	_, err := parseArgs([]string{"--role", "replica"}, func(string) string { return "" }, &bytes.Buffer{})
	require.ErrorContains(t, err, "needs --upstream-url or $UPSTREAM_URL")

	env := map[string]string{envUpstreamURL: "http://upstream:8080/"}
	_, err = parseArgs([]string{"--role", "replica"}, func(k string) string { return env[k] }, &bytes.Buffer{})
	require.ErrorContains(t, err, "needs --redis or $REDIS_URL")

	env[envRedisURL] = "redis://redis:6379"
	env[envReplicaName] = "replica7"
	cfg, err := parseArgs([]string{"--role", "replica"}, func(k string) string { return env[k] }, &bytes.Buffer{})
	require.NoError(t, err)
	assert.Equal(t, "http://upstream:8080/", cfg.upstreamURL)
	assert.Equal(t, "redis://redis:6379", cfg.redisURL)
	assert.Equal(t, "replica7", cfg.name)
}

// TestDemoFleet runs the whole demo in-process, on an embedded miniredis and
// real time with short phases: two outages, each tripping the shared
// circuit exactly once, seen by every replica, one probe at a time, and
// recovery after each.
func TestDemoFleet(t *testing.T) {
	runFleet(t, nil)
}

// runFleet runs the demo with env as its environment and checks what it saw.
func runFleet(t *testing.T, env map[string]string) {
	const sched = "up=300ms,down=700ms,up=700ms,down=700ms,up"
	cfg, err := parseArgs([]string{
		"--duration", "3200ms", "--schedule", sched, "--open-timeout", "150ms", "--interval", "10ms",
	}, func(k string) string { return env[k] }, &bytes.Buffer{})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(t.Context(), cfg.duration)
	defer cancel()
	var out testutil.SyncBuffer
	res, err := runAll(ctx, cfg, &out, screen{})
	require.NoError(t, err)
	res.print(&out)
	t.Log("\n" + out.String())

	// Exactly one closed -> open per outage, made during that outage.
	downs := cfg.sched.downStarts(res.elapsed)
	require.Len(t, downs, 2)
	tripsPerOutage := make([]int, len(downs))
	for _, tr := range res.transitions {
		if tr.from != breaker.StateClosed || tr.to != breaker.StateOpen {
			continue
		}
		i := len(downs) - 1
		for i >= 0 && downs[i] > tr.at {
			i--
		}
		require.GreaterOrEqual(t, i, 0, "a trip at %s, before any outage", tr.at)
		assert.Less(t, tr.at, downs[i]+700*time.Millisecond+100*time.Millisecond, "trip %d happens during its outage", i)
		tripsPerOutage[i]++
	}
	assert.Equal(t, []int{1, 1}, tripsPerOutage)
	assert.Equal(t, 2, res.trips())

	// Every replica saw the circuit open.
	require.Len(t, res.names, 3)
	for _, name := range res.names {
		st := res.replicas[name]
		assert.True(t, st.SawOpen, "%s saw the open state", name)
		assert.Positive(t, st.Rejected, "%s had calls rejected", name)
		assert.Zero(t, st.StoreErrors, name)
	}

	// The store published every transition once, as one chain: each starts
	// where the last ended, one generation later; so no two probes ran at
	// once and every trip was a single transition.
	require.Len(t, res.published, len(res.transitions))
	for i, ev := range res.published {
		assert.Equal(t, uint64(i+1), ev.Generation, "event %d", i)
		if i > 0 {
			assert.Equal(t, res.published[i-1].To, ev.From, "event %d starts where %d ended", i, i-1)
		}
		if ev.From == breaker.StateHalfOpen {
			require.Positive(t, i)
			assert.Equal(t, breaker.StateOpen, res.published[i-1].From, "a probe's outcome follows its own half-open")
		}
	}
	closes := 0
	for _, ev := range res.published {
		if ev.From == breaker.StateHalfOpen && ev.To == breaker.StateClosed {
			closes++
		}
	}
	assert.Equal(t, 2, closes, "recovered after each outage")

	// It ended recovered.
	assert.Equal(t, breaker.StateClosed, res.final.State)
	assert.Equal(t, uint64(len(res.published)), res.final.Generation)
	assert.Contains(t, out.String(), "fleet-wide: 2 trips (closed -> open)")
	assert.Contains(t, out.String(), `circuit "demo-upstream" is closed`)
	assert.NotContains(t, out.String(), "never failed")
	assert.NotContains(t, out.String(), "\x1b", "output that is not a terminal gets plain lines")
}

// TestSummaryExplainsAQuietRun: `demo --duration 3s` ends as the default
// schedule's first outage starts, and showed nothing happening without
// saying why.
func TestSummaryExplainsAQuietRun(t *testing.T) {
	tests := []struct {
		sched string
		want  string
	}{
		{defaultSchedule, "the upstream never failed: its first outage starts at 3s (try --duration 10s)"},
		{"down=2s,up", "its first outage starts at 0s (try --duration 5s)"},
		{"up=1m,down", "its first outage starts at 1m0s (try --duration 1m3s)"},
		{"up", "the upstream never failed: its --schedule has no down phase"},
	}
	for _, tt := range tests {
		t.Run(tt.sched, func(t *testing.T) {
			s, err := parseSchedule(tt.sched)
			require.NoError(t, err)
			res := &result{backend: "test", circuit: "c", sched: s, elapsed: 3 * time.Second,
				names: []string{"r1"}, replicas: map[string]stats{"r1": {Calls: 30, OK: 30}}}
			var out strings.Builder
			res.print(&out)
			assert.Contains(t, out.String(), tt.want)
		})
	}
	res := &result{backend: "test", circuit: "c", names: []string{"r1"}, replicas: map[string]stats{"r1": {Calls: 30, OK: 27, Failed: 3}}}
	var out strings.Builder
	res.print(&out)
	assert.NotContains(t, out.String(), "never failed", "calls failed: nothing to explain")
}

// TestRolesTalkThroughRedis runs the two docker-compose roles in-process:
// an upstream that is down at first, and a replica that trips on it and
// recovers, through a shared (mini)redis.
func TestRolesTalkThroughRedis(t *testing.T) {
	mr := miniredis.RunT(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var upOut, upErr testutil.SyncBuffer
	upDone := make(chan int, 1)
	go func() {
		upDone <- run(ctx, []string{"--role", "upstream", "--upstream-addr", addr, "--duration", "0", "--schedule", "down=400ms,up"}, &upOut, &upErr)
	}()
	testutil.WaitFor(t, "upstream to listen", func() bool { return strings.Contains(upOut.String(), "listening") })

	var repOut, repErr testutil.SyncBuffer
	code := run(t.Context(), []string{
		"--role", "replica", "--duration", "1s", "--upstream-url", "http://" + addr + "/",
		"--redis", "redis://" + mr.Addr(), "--name", "r1", "--interval", "10ms", "--open-timeout", "100ms",
	}, &repOut, &repErr)
	assert.Equal(t, 0, code, repErr.String())
	t.Log("\n" + repOut.String())
	assert.Contains(t, repOut.String(), "r1         closed -> open")
	assert.Contains(t, repOut.String(), "r1         half-open -> closed")
	assert.Contains(t, repOut.String(), "r1         stopped: calls")

	cancel()
	assert.Equal(t, 0, <-upDone, upErr.String())
	assert.Contains(t, upOut.String(), "down: fails every call with 503")
	assert.Contains(t, upOut.String(), "up: answers 200")
}

func TestDemoNeverPrintsThePassword(t *testing.T) {
	assert.Equal(t, "dial redis://alice:xxxxx@h", redactErr(errors.New("dial redis://alice:s3cret@h"), "redis://alice:s3cret@h:1"))
	// URLs url.Parse rejects: the password is still hidden (it was printed
	// raw before the demo shared cbctl's redaction).
	for _, bad := range []string{"redis://alice:s3cret@h:port", "redis://alice:s3/cret@h:1/x", "redis://s3cret@h:port"} {
		err := fmt.Errorf("connect %s: refused", bad)
		assert.NotContains(t, redactErr(err, bad), "s3", bad)
		assert.Contains(t, redactErr(err, bad), redact.Mask, bad)
	}

	for _, bad := range []string{"redis://alice:s3cret@h:port", "redis://alice:s3/cret@h:1/x"} {
		for _, role := range []string{"all", "replica"} {
			var stdout, stderr testutil.SyncBuffer
			code := run(t.Context(), []string{"--role", role, "--redis", bad, "--upstream-url", "http://127.0.0.1:1/", "--duration", "1s"}, &stdout, &stderr)
			assert.Equal(t, 1, code, "%s %s", role, bad)
			assert.Contains(t, stderr.String(), "not a valid redis:// or rediss:// URL")
			assert.NotContains(t, stdout.String()+stderr.String(), "s3", "%s %s", role, bad)
		}
	}
}
