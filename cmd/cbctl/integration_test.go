//go:build integration

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tripline/tripline/breaker"
	"github.com/tripline/tripline/internal/redisserver"
	"github.com/tripline/tripline/internal/testutil"
	redisstore "github.com/tripline/tripline/store/redis"
)

// These tests run cbctl against real redis-server processes (a single
// server with an ACL user and TLS, and a three-master Cluster) started by
// internal/redisserver on their own ports. Times are real, so the output is
// matched with patterns rather than golden files.

const pw = "s3cr3t@:/pw" // needs escaping in a URL

func TestIntegrationSingleWithPassword(t *testing.T) {
	srv := redisserver.StartSingle(t, redisserver.WithACLUser("alice", pw, "~*", "&*", "+@all"))
	target := "redis://alice:" + url.QueryEscape(pw) + "@" + srv.Addr()
	run := func(args ...string) outcome {
		t.Helper()
		out := cbctl(t, nil, append(args, "--redis", target)...)
		assert.NotContains(t, out.stdout+out.stderr, "s3cr3t", "%v", args)
		return out
	}

	watchCtx, stopWatch := context.WithCancel(t.Context())
	var watchOut, watchErr testutil.SyncBuffer
	watchCode := make(chan int, 1)
	go func() {
		watchCode <- testApp(&watchOut, &watchErr, nil).run(watchCtx, []string{"watch", "payments", "--redis", target})
	}()
	testutil.WaitFor(t, "watch to subscribe", func() bool { return strings.Contains(watchErr.String(), "watching") })

	cfg := breaker.Config{FailureThreshold: 3, Timeout: time.Minute}
	var replicas []*breaker.Breaker
	for range 3 {
		client := redis.NewClient(&redis.Options{Addr: srv.Addr(), Username: "alice", Password: pw})
		store := redisstore.New(client, redisstore.WithStrict(), redisstore.WithCallTimeout(0))
		t.Cleanup(func() { _ = store.Close(); _ = client.Close() })
		cfg.Store = store
		b, err := breaker.New("payments", cfg)
		require.NoError(t, err)
		replicas = append(replicas, b)
	}
	for _, r := range replicas {
		require.ErrorIs(t, r.Do(t.Context(), fail), errUpstream)
	}
	for _, r := range replicas {
		require.ErrorIs(t, r.Do(t.Context(), ok), breaker.ErrOpen)
	}

	out := run("list")
	require.Equal(t, exitOK, out.code, out.stderr)
	assert.Regexp(t, `(?m)^NAME +STATE +FAILURES +GENERATION +PROBE IN +OVERRIDE\npayments +open +- +1 +(59s|1m00s) +-\n\z`, out.stdout)

	out = run("get", "payments", "-o", "json")
	require.Equal(t, exitOK, out.code, out.stderr)
	var c circuitJSON
	require.NoError(t, json.Unmarshal([]byte(out.stdout), &c))
	assert.Equal(t, "open", c.State)
	require.NotNil(t, c.RetryInMS)
	assert.InDelta(t, 57500, *c.RetryInMS, 2500)

	out = run("reset", "payments", "--reason", "fixed")
	require.Equal(t, exitOK, out.code, out.stderr)
	assert.Equal(t, "payments: reset by tester (fixed); open -> closed, generation 2\n", out.stdout)
	for _, r := range replicas {
		assert.NoError(t, r.Do(t.Context(), ok), "every replica is closed again")
	}

	out = run("get", "nope") // watch follows the prefix
	assert.Equal(t, exitOK, out.code, out.stderr)
	assert.Contains(t, out.stdout, "stored:    nothing: ")
	assert.Contains(t, out.stdout, "followers: 1 subscription to tripline:events follows it")
	out = run("reset", "nope")
	assert.Equal(t, exitFailure, out.code)
	assert.True(t, strings.HasPrefix(out.stderr, `cbctl: circuit nope: nothing stored under prefix "tripline": `), out.stderr)

	testutil.WaitFor(t, "two transitions", func() bool { return len(lines(watchOut.String())) >= 2 })
	stopWatch()
	require.Equal(t, exitOK, <-watchCode, watchErr.String())
	got := lines(watchOut.String())
	require.Len(t, got, 2)
	assert.Regexp(t, `^\S+Z  payments  closed -> open  generation 1  \(outcome\)$`, got[0])
	assert.Regexp(t, `^\S+Z  payments  open -> closed  generation 2  \(reset\)$`, got[1])
	assert.NotContains(t, watchErr.String(), "s3cr3t")

	// A wrong password: one line, exit 1, and still no password.
	out = cbctl(t, nil, "list", "--redis", "redis://alice:wrong-"+url.QueryEscape(pw)+"@"+srv.Addr())
	assert.Equal(t, exitFailure, out.code)
	assert.Len(t, lines(out.stderr), 1)
	assert.Contains(t, out.stderr, "WRONGPASS")
	assert.Contains(t, out.stderr, `: authentication failed for user "alice" (WRONGPASS `)
	assert.NotContains(t, out.stderr, "s3cr3t")
}

func TestIntegrationTLS(t *testing.T) {
	srv := redisserver.StartSingle(t, redisserver.WithTLS(redisserver.NewTLSCerts(t)))
	// The test CA is not in the system pool: skip_verify is go-redis's URL
	// option for that.
	target := "rediss://" + srv.TLSAddr() + "/0?skip_verify=true"
	out := cbctl(t, nil, "open", "maint", "--reason", "tls", "--create", "--redis", target)
	require.Equal(t, exitOK, out.code, out.stderr)
	out = cbctl(t, nil, "list", "--redis", target)
	require.Equal(t, exitOK, out.code, out.stderr)
	assert.Regexp(t, `(?m)^maint +open +- +1 +held +force-open until reset by tester: tls$`, out.stdout)

	// Without skip_verify the certificate is refused.
	out = cbctl(t, nil, "list", "--redis", "rediss://"+srv.TLSAddr(), "--timeout", "3s")
	assert.Equal(t, exitFailure, out.code)
	assert.Contains(t, out.stderr, "certificate")
}

func TestIntegrationCluster(t *testing.T) {
	cl := redisserver.StartCluster(t, 3, 0)
	nodes := strings.Join(cl.MasterAddrs(), ",")

	client := redis.NewClusterClient(&redis.ClusterOptions{Addrs: cl.Addrs()})
	store := redisstore.New(client, redisstore.WithStrict(), redisstore.WithCallTimeout(0))
	t.Cleanup(func() { _ = store.Close(); _ = client.Close() })

	// watch first: on Cluster a PUBLISH reaches the other nodes over the
	// cluster bus, later, so a subscription made after the writes could
	// still receive some of them.
	watchCtx, stopWatch := context.WithCancel(t.Context())
	var watchOut, watchErr testutil.SyncBuffer
	watchCode := make(chan int, 1)
	go func() {
		watchCode <- testApp(&watchOut, &watchErr, nil).run(watchCtx, []string{"watch", "--cluster", nodes})
	}()
	testutil.WaitFor(t, "watch to subscribe", func() bool { return strings.Contains(watchErr.String(), "watching") })

	// Enough circuits that every master holds some.
	const n = 30
	masters := map[string]bool{}
	var want []string
	for i := range n {
		name := fmt.Sprintf("svc-%02d", i)
		want = append(want, name)
		_, err := store.Apply(t.Context(), name, breaker.Command{Kind: breaker.CommandForceOpen, Actor: "setup", Reason: "spread"})
		require.NoError(t, err)
		masters[cl.MasterForKey(store.Keys(name)[0]).Addr()] = true
	}
	require.Len(t, masters, 3, "the circuits live on every master")

	out := cbctl(t, nil, "list", "--cluster", nodes, "-o", "json")
	require.Equal(t, exitOK, out.code, out.stderr)
	var circuits []circuitJSON
	require.NoError(t, json.Unmarshal([]byte(out.stdout), &circuits))
	var names []string
	for _, c := range circuits {
		names = append(names, c.Name)
		assert.Equal(t, "open", c.State)
		require.NotNil(t, c.Override)
		assert.Equal(t, "setup", c.Override.Actor)
	}
	assert.Equal(t, want, names, "every circuit of every master, sorted")

	// --redis at a node that does not hold the circuit: Redis answers
	// MOVED, and cbctl says to use --cluster.
	owner := cl.MasterForKey(store.Keys("svc-00")[0]).Addr()
	other := cl.MasterAddrs()[0]
	if other == owner {
		other = cl.MasterAddrs()[1]
	}
	out = cbctl(t, nil, "reset", "svc-00", "--redis", "redis://"+other)
	assert.Equal(t, exitFailure, out.code)
	assert.Empty(t, out.stdout)
	assert.True(t, strings.HasPrefix(out.stderr, "cbctl: reset circuit svc-00: redis://"+other+
		": the server is a Redis Cluster node: connect with --cluster host:port,... (MOVED "), out.stderr)

	for i := range 10 {
		out := cbctl(t, nil, "reset", fmt.Sprintf("svc-%02d", i), "--cluster", nodes)
		require.Equal(t, exitOK, out.code, out.stderr)
	}
	out = cbctl(t, nil, "list", "--cluster", nodes, "--state", "closed")
	require.Equal(t, exitOK, out.code, out.stderr)
	require.Len(t, lines(out.stdout), 11, "a header and ten circuits")
	assert.Regexp(t, regexp.MustCompile(`(?m)^svc-00 +closed +0 +2 +- +-$`), out.stdout)

	out = cbctl(t, nil, "get", "svc-29", "--cluster", nodes)
	require.Equal(t, exitOK, out.code, out.stderr)
	assert.Contains(t, out.stdout, "  reason:     spread\n")

	testutil.WaitFor(t, "30 force-opens and 10 resets on the event stream", func() bool { return len(lines(watchOut.String())) >= n+10 })
	stopWatch()
	require.Equal(t, exitOK, <-watchCode, watchErr.String())
	opens, resets := 0, 0
	for _, l := range lines(watchOut.String()) {
		switch {
		case regexp.MustCompile(`  svc-\d\d  closed -> open  generation 1  \(force-open\)$`).MatchString(l):
			opens++
		case regexp.MustCompile(`  svc-0\d  open -> closed  generation 2  \(reset\)$`).MatchString(l):
			resets++
		default:
			t.Errorf("unexpected watch line %q", l)
		}
	}
	assert.Equal(t, n, opens)
	assert.Equal(t, 10, resets)
}
