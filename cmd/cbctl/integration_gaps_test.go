//go:build integration

package main

import (
	"context"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tripline/tripline/internal/redisserver"
	"github.com/tripline/tripline/internal/testutil"
)

// TestIntegrationWatchInterrupted: issue 16's report against a real
// redis-server. watch says so when the server is killed, when it is back
// (a fresh process on the same port), and when the server drops the
// subscriber's connection (CLIENT KILL: go-redis reconnects at once); and
// the transitions after each come through.
func TestIntegrationWatchInterrupted(t *testing.T) {
	srv := redisserver.StartSingle(t)
	target := "redis://" + srv.Addr()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var stdout, stderr testutil.SyncBuffer
	code := make(chan int, 1)
	go func() {
		code <- testApp(&stdout, &stderr, nil).run(ctx, []string{"watch", "--redis", target, "-o", "json"})
	}()
	testutil.WaitFor(t, "watch to subscribe", func() bool { return strings.Contains(stderr.String(), "watching") })
	open := func(name string) {
		t.Helper()
		out := cbctl(t, nil, "open", name, "--reason", "r", "--create", "--redis", target)
		require.Equal(t, exitOK, out.code, out.stderr)
		testutil.WaitFor(t, "the transition of "+name, func() bool { return strings.Contains(stdout.String(), `"name":"`+name+`"`) })
	}
	count := func(s string) int { return strings.Count(stderr.String(), s) }

	open("first")
	srv.Kill()
	testutil.WaitFor(t, "the interruption", func() bool { return count("watch interrupted") == 1 })
	srv.Restart()
	testutil.WaitFor(t, "the resumption", func() bool { return count("watch resumed") == 1 })
	open("second")

	user, pass := srv.Admin()
	admin := redis.NewClient(&redis.Options{Addr: srv.Addr(), Username: user, Password: pass})
	t.Cleanup(func() { _ = admin.Close() })
	killed, err := admin.ClientKillByFilter(t.Context(), "TYPE", "pubsub").Result()
	require.NoError(t, err)
	require.EqualValues(t, 1, killed, "watch's subscription")
	testutil.WaitFor(t, "the second interruption and resumption", func() bool {
		return count("watch interrupted") == 2 && count("watch resumed") == 2
	})
	open("third")
	cancel()
	require.Equal(t, exitOK, <-code, stderr.String())

	var events []string
	for _, l := range lines(stdout.String()) {
		m := regexp.MustCompile(`"event":"(\w+)"(?:,"name":"(\w+)")?`).FindStringSubmatch(l)
		require.NotNil(t, m, l)
		events = append(events, strings.TrimSuffix(m[1]+" "+m[2], " "))
	}
	assert.Equal(t, []string{
		"transition first", "interrupted", "resumed", "transition second", "interrupted", "resumed", "transition third",
	}, events)
	assert.Contains(t, stderr.String(), "watch interrupted: "+target+": the server closed the connection (")
	t.Logf("stderr:\n%s", stderr.String())
}

// TestIntegrationGetNothingStored: get of a circuit with nothing stored on
// a real redis-server. A user of tripline's read-only ACL, which grants no
// PUBSUB, gets the circuit as closed with the follower count unknown (never
// "check --prefix"); an admin gets the count; and a keyspace too large to
// scan whole is said so.
func TestIntegrationGetNothingStored(t *testing.T) {
	const prefix = "app"
	rules := []string{"~" + prefix + ":{*", "&" + prefix + ":events",
		"+evalsha", "+eval", "+time", "+hmget", "+zcount", "+scan", "+subscribe", "+ping"}
	srv := redisserver.StartSingle(t, redisserver.WithACLUser("viewer", pw, rules...))
	viewer := "redis://viewer:" + url.QueryEscape(pw) + "@" + srv.Addr()
	user, pass := srv.Admin()
	admin := "redis://" + user + ":" + url.QueryEscape(pass) + "@" + srv.Addr()

	out := cbctl(t, nil, "get", "ghost", "--prefix", prefix, "--redis", viewer)
	require.Equal(t, exitOK, out.code, out.stderr)
	assert.Contains(t, out.stdout, "followers: unknown: redis://viewer:xxxxx@"+srv.Addr()+`: the Redis user "viewer" may not read circuits (ACL: NOPERM`)
	assert.Contains(t, out.stdout, `prefix:    "app": no circuit is stored`)
	assert.NotContains(t, out.stdout+out.stderr, "S3cr", "no password")

	out = cbctl(t, nil, "get", "ghost", "--prefix", prefix, "--redis", admin)
	assert.Equal(t, exitFailure, out.code)
	assert.Contains(t, out.stderr, `nothing stored under prefix "app" and no replica follows it: check --prefix`)

	// 300,000 keys of another application: the bounded scan stops before
	// the end, and get says what it saw.
	client := redis.NewClient(&redis.Options{Addr: srv.Addr(), Username: user, Password: pass})
	t.Cleanup(func() { _ = client.Close() })
	pipe := client.Pipeline()
	for i := range 300 {
		kv := make([]any, 0, 2000)
		for j := range 1000 {
			kv = append(kv, fmt.Sprintf("other:%d:%d", i, j), "x")
		}
		pipe.MSet(t.Context(), kv...)
	}
	_, err := pipe.Exec(t.Context())
	require.NoError(t, err)
	out = cbctl(t, nil, "get", "ghost", "--prefix", prefix, "--redis", admin)
	require.Equal(t, exitOK, out.code, out.stderr)
	assert.Contains(t, out.stdout, "followers: none subscribe to app:events")
	assert.Contains(t, out.stdout, `prefix:    "app": no circuit among the keys scanned`)
}

// TestIntegrationClusterFollowers: on Redis Cluster the follower count is
// summed over every node: a subscription lives on the node it was made on.
func TestIntegrationClusterFollowers(t *testing.T) {
	cl := redisserver.StartCluster(t, 3, 0)
	nodes := strings.Join(cl.MasterAddrs(), ",")
	for _, addr := range cl.MasterAddrs() {
		c := redis.NewClient(&redis.Options{Addr: addr})
		ps := c.Subscribe(t.Context(), "tripline:events")
		_, err := ps.Receive(t.Context())
		require.NoError(t, err)
		t.Cleanup(func() { _ = ps.Close(); _ = c.Close() })
	}
	out := cbctl(t, nil, "get", "ghost", "--cluster", nodes)
	require.Equal(t, exitOK, out.code, out.stderr)
	assert.Contains(t, out.stdout, "followers: 3 subscriptions to tripline:events follow it")
	out = cbctl(t, nil, "list", "--cluster", nodes)
	require.Equal(t, exitOK, out.code, out.stderr)
	assert.Contains(t, out.stderr, "3 subscriptions to tripline:events follow it")
}
