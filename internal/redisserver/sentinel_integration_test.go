//go:build integration

package redisserver_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tripline/tripline/internal/redisserver"
)

// TestSentinelFailover starts a master, two replicas and three Sentinels,
// fails over on request (SENTINEL FAILOVER: nothing written before is
// lost, the old master is demoted) and after a SIGKILL of the master with
// replication paused (the write the master acknowledged last is lost), and
// checks that a go-redis failover client follows both times and that every
// process is gone after the test.
func TestSentinelFailover(t *testing.T) {
	var pids []int
	t.Run("setup", func(t *testing.T) {
		ctx := context.Background()
		begin := time.Now()
		s := redisserver.StartSentinel(t, 2, 3)
		t.Logf("%v healthy in %v", s, time.Since(begin))
		servers := s.Servers()
		require.Len(t, servers, 3)
		require.Len(t, s.Sentinels(), 3)
		require.Len(t, s.SentinelAddrs(), 3)
		assert.Equal(t, redisserver.SentinelMasterName, s.MasterName())
		assert.Same(t, servers[0], s.Master())
		assert.Equal(t, servers[0].Addr(), s.MasterAddr())
		assert.Equal(t, servers[1:], s.Replicas())
		for _, sn := range s.Sentinels() {
			assert.NotEqual(t, 6379, sn.Port())
		}

		c := redis.NewFailoverClient(&redis.FailoverOptions{
			MasterName:    s.MasterName(),
			SentinelAddrs: s.SentinelAddrs(),
			DialTimeout:   time.Second,
			ReadTimeout:   500 * time.Millisecond,
			WriteTimeout:  500 * time.Millisecond,
		})
		t.Cleanup(func() { _ = c.Close() })
		require.NoError(t, c.Set(ctx, "k", "v", 0).Err())
		n, err := c.Wait(ctx, 2, 5*time.Second).Result()
		require.NoError(t, err)
		require.EqualValues(t, 2, n, "replicas that acknowledged the write")

		// Planned failover: the old master keeps running and is demoted.
		old := s.Master()
		begin = time.Now()
		m := s.Failover(15 * time.Second)
		switched := time.Since(begin)
		s.WaitHealthy(15 * time.Second)
		t.Logf("SENTINEL FAILOVER: %s -> %s switched in %v, old master demoted %v later", old.Addr(), m.Addr(), switched, time.Since(begin)-switched)
		assert.NotSame(t, old, m)
		assert.Contains(t, s.Replicas(), old)
		assert.Same(t, m, s.Master())
		require.Eventually(t, func() bool { return c.Set(ctx, "k2", "v2", 0).Err() == nil }, 10*time.Second, 20*time.Millisecond)
		assert.Equal(t, "v", c.Get(ctx, "k").Val(), "written and replicated before the failover")
		v, err := m.Do(ctx, "GET", "k2")
		require.NoError(t, err)
		assert.Equal(t, "v2", v, "the failover client writes to the new master")

		// Unplanned failover with replication paused: the last write is lost.
		s.PauseReplication()
		require.NoError(t, c.Set(ctx, "lost", "x", 0).Err())
		for _, r := range s.Replicas() {
			v, err := r.Do(ctx, "GET", "lost")
			require.NoError(t, err)
			require.Nil(t, v, "replica %s got the write while replication was paused", r.Addr())
		}
		m.Kill()
		release := holdPort(t, m.Addr())
		s.ResumeReplication()
		begin = time.Now()
		m2 := s.WaitFailover(m, 20*time.Second)
		t.Logf("master %s killed: %s promoted in %v", m.Addr(), m2.Addr(), time.Since(begin))
		release()
		m.Restart()
		s.WaitHealthy(20 * time.Second)
		t.Logf("killed master restarted and demoted %v after the kill", time.Since(begin))
		assert.Contains(t, s.Replicas(), m, "the restarted master rejoined as a replica")
		require.Eventually(t, func() bool { return c.Get(ctx, "k").Val() == "v" }, 10*time.Second, 20*time.Millisecond)
		assert.Equal(t, "v2", c.Get(ctx, "k2").Val())
		assert.ErrorIs(t, c.Get(ctx, "lost").Err(), redis.Nil, "a write not replicated before the kill is lost")

		for _, p := range append(s.Servers(), s.Sentinels()...) {
			pids = append(pids, p.Pid())
		}
	})
	for _, pid := range pids {
		requireGone(t, pid)
	}
}

// TestSentinelFailoverAfterAbort: Failover still switches when Sentinel
// aborts the failover it asked for. The replica is paused (CLIENT PAUSE
// ALL) right after a SENTINEL FAILOVER, so the leader cannot promote it
// within failover-timeout and gives up; Sentinel does not retry a failover
// that was asked for, so Failover asks again. A starved Sentinel aborted
// so under load (-failover-abort-slave-timeout: another Sentinel turned
// the promoted replica back first), and Failover waited for nothing.
func TestSentinelFailoverAfterAbort(t *testing.T) {
	ctx := context.Background()
	s := redisserver.StartSentinel(t, 1, 3)
	old := s.Master()
	replicas := s.Replicas()
	require.Len(t, replicas, 1)
	_, err := s.Sentinels()[0].Do(ctx, "SENTINEL", "FAILOVER", redisserver.SentinelMasterName)
	require.NoError(t, err)
	// Before the leader's next timer tick sends SLAVEOF NO ONE.
	_, err = replicas[0].Do(ctx, "CLIENT", "PAUSE", "4500", "ALL")
	require.NoError(t, err)
	begin := time.Now()
	m := s.Failover(30 * time.Second)
	t.Logf("switched in %v", time.Since(begin))
	assert.Same(t, replicas[0], m)
	assert.NotSame(t, old, m)
}

// holdPort keeps addr, the port of a killed server, taken until release:
// the other packages' test binaries run at the same time and pick ports in
// the same range, and one could take it before Restart. It accepts and
// closes every connection, so clients and Sentinels still find no server
// there.
func holdPort(t *testing.T, addr string) (release func()) {
	t.Helper()
	l, err := net.Listen("tcp", addr)
	require.NoError(t, err, "the killed server's port was taken")
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			_ = c.Close()
		}
	}()
	return func() {
		_ = l.Close()
		<-done
	}
}
