//go:build integration

package redisserver_test

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/tripline/tripline/internal/redisserver"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// newClient returns a go-redis client on addr that the test closes.
func newClient(t *testing.T, opt *redis.Options) *redis.Client {
	t.Helper()
	opt.DialTimeout = time.Second
	opt.DialerRetries = 1 // a refused or untrusted dial fails at once
	if opt.ReadTimeout == 0 {
		opt.ReadTimeout = 500 * time.Millisecond
	}
	opt.WriteTimeout = 500 * time.Millisecond
	c := redis.NewClient(opt)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// requireGone fails unless no process with pid exists any more.
func requireGone(t *testing.T, pid int) {
	t.Helper()
	require.NotZero(t, pid)
	err := syscall.Kill(pid, 0)
	require.ErrorIs(t, err, syscall.ESRCH, "pid %d still exists", pid)
}

func TestStartSingle(t *testing.T) {
	var pid int
	t.Run("started", func(t *testing.T) {
		begin := time.Now()
		srv := redisserver.StartSingle(t, redisserver.WithConfig("maxmemory 10mb", "maxmemory-policy allkeys-lru"))
		t.Logf("started %v in %v", srv, time.Since(begin))
		pid = srv.Pid()
		require.NotZero(t, pid)
		assert.True(t, srv.Running())
		assert.NotEqual(t, 6379, srv.Port())
		assert.Equal(t, fmt.Sprintf("127.0.0.1:%d", srv.Port()), srv.Addr())
		assert.Empty(t, srv.TLSAddr())
		assert.FileExists(t, srv.LogPath())

		ctx := context.Background()
		c := newClient(t, &redis.Options{Addr: srv.Addr()})
		require.NoError(t, c.Ping(ctx).Err())
		require.NoError(t, c.Set(ctx, "k", "v", 0).Err())
		assert.Equal(t, map[string]string{"maxmemory": "10485760"}, c.ConfigGet(ctx, "maxmemory").Val())
		assert.Equal(t, map[string]string{"maxmemory-policy": "allkeys-lru"}, c.ConfigGet(ctx, "maxmemory-policy").Val())
		assert.Equal(t, map[string]string{"save": ""}, c.ConfigGet(ctx, "save").Val())
		assert.Equal(t, map[string]string{"appendonly": "no"}, c.ConfigGet(ctx, "appendonly").Val())

		v, err := srv.Do(ctx, "GET", "k")
		require.NoError(t, err)
		assert.Equal(t, "v", v)
		_, err = srv.Do(ctx, "NOSUCHCOMMAND")
		var re redisserver.ReplyError
		require.ErrorAs(t, err, &re)
		assert.Contains(t, re.Error(), "unknown command")
	})
	requireGone(t, pid)
}

func TestKillRestart(t *testing.T) {
	ctx := context.Background()
	srv := redisserver.StartSingle(t)
	c := newClient(t, &redis.Options{Addr: srv.Addr(), MaxRetries: -1})
	require.NoError(t, c.Set(ctx, "k", "v", 0).Err())
	port, pid := srv.Port(), srv.Pid()

	srv.Kill()
	requireGone(t, pid)
	assert.Zero(t, srv.Pid())
	assert.False(t, srv.Running())
	assert.Error(t, c.Ping(ctx).Err())

	begin := time.Now()
	srv.Restart()
	t.Logf("restart took %v", time.Since(begin))
	assert.Equal(t, port, srv.Port())
	assert.NotEqual(t, pid, srv.Pid())
	// The old pooled connection is dead; the client redials.
	require.Eventually(t, func() bool { return c.Ping(ctx).Err() == nil }, 5*time.Second, 10*time.Millisecond)
	n, err := c.Exists(ctx, "k").Result()
	require.NoError(t, err)
	assert.Equal(t, int64(0), n, "a restarted server starts empty")

	// Restart of a running server kills it first.
	pid = srv.Pid()
	srv.Restart()
	requireGone(t, pid)
	require.Eventually(t, func() bool { return c.Ping(ctx).Err() == nil }, 5*time.Second, 10*time.Millisecond)
}

func TestStopCont(t *testing.T) {
	ctx := context.Background()
	srv := redisserver.StartSingle(t)
	c := newClient(t, &redis.Options{Addr: srv.Addr(), MaxRetries: -1, ReadTimeout: 100 * time.Millisecond})
	require.NoError(t, c.Ping(ctx).Err())

	srv.Stop()
	begin := time.Now()
	err := c.Ping(ctx).Err()
	var ne interface{ Timeout() bool }
	require.ErrorAs(t, err, &ne, "PING on a SIGSTOPped server must time out, got %v", err)
	assert.True(t, ne.Timeout())
	t.Logf("PING on stopped server failed after %v: %v", time.Since(begin), err)

	srv.Cont()
	require.Eventually(t, func() bool { return c.Ping(ctx).Err() == nil }, 5*time.Second, 10*time.Millisecond)
}

func TestCleanupStopsStoppedServer(t *testing.T) {
	var pid int
	t.Run("stopped at end of test", func(t *testing.T) {
		srv := redisserver.StartSingle(t, redisserver.WithStopTimeout(time.Second))
		pid = srv.Pid()
		srv.Stop()
	})
	requireGone(t, pid)
}

func TestACLUser(t *testing.T) {
	ctx := context.Background()
	srv := redisserver.StartSingle(t,
		redisserver.WithACLUser("app", "s3cret", "~app:*", "&app:*", "+@read", "+@write", "-@dangerous", "+ping"),
		redisserver.WithConfig("user default off"),
	)
	// The harness still works with the default user off.
	_, err := srv.Do(ctx, "SET", "other:k", "v")
	require.NoError(t, err)

	anon := newClient(t, &redis.Options{Addr: srv.Addr(), MaxRetries: -1})
	assert.ErrorContains(t, anon.Ping(ctx).Err(), "NOAUTH")

	app := newClient(t, &redis.Options{Addr: srv.Addr(), Username: "app", Password: "s3cret", MaxRetries: -1})
	require.NoError(t, app.Ping(ctx).Err())
	assert.NoError(t, app.Set(ctx, "app:k", "v", 0).Err())
	assert.ErrorContains(t, app.Get(ctx, "other:k").Err(), "NOPERM")
	assert.ErrorContains(t, app.FlushAll(ctx).Err(), "NOPERM")

	user, pass := srv.Admin()
	admin := newClient(t, &redis.Options{Addr: srv.Addr(), Username: user, Password: pass})
	assert.Equal(t, "v", admin.Get(ctx, "other:k").Val())
}

func TestTLS(t *testing.T) {
	ctx := context.Background()
	certs := redisserver.NewTLSCerts(t)
	srv := redisserver.StartSingle(t, redisserver.WithTLS(certs))
	require.NotEmpty(t, srv.TLSAddr())
	assert.NotEqual(t, srv.Addr(), srv.TLSAddr())

	c := newClient(t, &redis.Options{Addr: srv.TLSAddr(), TLSConfig: certs.ClientConfig(), MaxRetries: -1})
	require.NoError(t, c.Ping(ctx).Err())

	opt, err := redis.ParseURL("rediss://" + srv.TLSAddr())
	require.NoError(t, err)
	opt.TLSConfig.RootCAs = certs.CAPool
	viaURL := newClient(t, opt)
	require.NoError(t, viaURL.Ping(ctx).Err())

	// Without the CA the server's certificate is not trusted.
	untrusted := certs.ClientConfig()
	untrusted.RootCAs = nil
	bad := newClient(t, &redis.Options{Addr: srv.TLSAddr(), TLSConfig: untrusted, MaxRetries: -1})
	assert.ErrorContains(t, bad.Ping(ctx).Err(), "certificate")
}

func TestCluster(t *testing.T) {
	ctx := context.Background()
	begin := time.Now()
	cl := redisserver.StartCluster(t, 3, 1)
	t.Logf("3 masters + 3 replicas healthy in %v", time.Since(begin))
	require.Len(t, cl.Nodes(), 6)
	require.Len(t, cl.Masters(), 3)
	require.Len(t, cl.Replicas(), 3)
	require.Len(t, cl.MasterAddrs(), 3)

	cc := redis.NewClusterClient(&redis.ClusterOptions{
		Addrs:        cl.Addrs(),
		DialTimeout:  time.Second,
		ReadTimeout:  500 * time.Millisecond,
		WriteTimeout: 500 * time.Millisecond,
	})
	t.Cleanup(func() { _ = cc.Close() })
	keys := []string{"a", "b", "c", "d", "e", "f", "g", "h"}
	for _, k := range keys {
		require.NoError(t, cc.Set(ctx, k, k, 0).Err())
	}

	old := cl.MasterForKey("a")
	replicas := cl.ReplicasOf(old)
	require.Len(t, replicas, 1)
	cl.WaitReplicated(5 * time.Second) // so the failover loses nothing

	old.Kill()
	begin = time.Now()
	cl.WaitHealthy(15 * time.Second)
	t.Logf("master %s killed; replica %s promoted, cluster healthy in %v", old.Addr(), replicas[0].Addr(), time.Since(begin))
	promoted := cl.MasterForKey("a")
	assert.Same(t, replicas[0], promoted)
	assert.Len(t, cl.Masters(), 3)

	// go-redis's ClusterClient reloads its slot map only on MOVED/READONLY
	// or every ClusterStateReloadInterval (default 60s): a dead master's
	// slots keep going to the dead address until then, so reload by hand.
	cc.ReloadState(ctx)
	require.Eventually(t, func() bool { return cc.Get(ctx, "a").Val() == "a" }, 5*time.Second, 20*time.Millisecond)
	for _, k := range keys {
		assert.Equal(t, k, cc.Get(ctx, k).Val())
	}

	// The old master comes back empty and rejoins as a replica of the new one.
	begin = time.Now()
	old.Restart()
	cl.WaitHealthy(15 * time.Second)
	t.Logf("old master rejoined as replica in %v", time.Since(begin))
	assert.Equal(t, []*redisserver.Server{old}, cl.ReplicasOf(promoted))
}

func TestProxyInFrontOfRedis(t *testing.T) {
	ctx := context.Background()
	srv := redisserver.StartSingle(t)
	p := redisserver.StartProxy(t, srv.Addr())
	c := newClient(t, &redis.Options{Addr: p.Addr(), ReadTimeout: 100 * time.Millisecond, MaxRetries: 3, MinRetryBackoff: time.Millisecond, MaxRetryBackoff: time.Millisecond})
	require.NoError(t, c.Ping(ctx).Err())

	p.SetLatency(30 * time.Millisecond)
	begin := time.Now()
	require.NoError(t, c.Ping(ctx).Err())
	assert.GreaterOrEqual(t, time.Since(begin), 30*time.Millisecond)
	p.SetLatency(0)

	// Every reply dropped: the first attempt runs on the server; the
	// retries' new connections fail their handshake, so they never send it.
	p.DropReplies(true)
	err := c.Incr(ctx, "n").Err()
	p.DropReplies(false)
	require.Error(t, err)
	v, err := srv.Do(ctx, "GET", "n")
	require.NoError(t, err)
	assert.Equal(t, "1", v)

	// The reply lost on the open connection only: go-redis retries the
	// INCR on a new connection after the read timeout, so the server runs
	// it twice and the caller sees one success.
	require.NoError(t, c.Ping(ctx).Err()) // one pooled connection, open
	p.MuteOpen()
	n, err := c.Incr(ctx, "m").Result()
	require.NoError(t, err)
	assert.Equal(t, int64(2), n, "the lost INCR ran, and so did its retry")

	// Reset connections: the next command fails or redials, then it works.
	p.ResetAll()
	require.Eventually(t, func() bool { return c.Ping(ctx).Err() == nil }, 5*time.Second, 10*time.Millisecond)
	assert.Positive(t, p.Stats().Reset)
}
