//go:build integration

package integration

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tripline/tripline/breaker"
	"github.com/tripline/tripline/internal/redisserver"
	redisstore "github.com/tripline/tripline/store/redis"
)

// Faults a TCP proxy between the replicas and Redis makes: slow replies,
// replies lost after the server ran the script, connections reset. The
// admin store (used for the checks) talks to the server directly.

// proxyFleet starts a server, a proxy in front of it, and the standard
// four replicas connected through the proxy (relaxed: see singleFleet).
func proxyFleet(t *testing.T, relaxed bool) (*redisserver.Proxy, *faultFleet) {
	t.Helper()
	srv := redisserver.StartSingle(t)
	proxy := redisserver.StartProxy(t, srv.Addr())
	newClient, storeOpts := fleetClients(proxy.Addr(), relaxed)
	f := newFaultFleet(t, redis.NewClient(&redis.Options{Addr: srv.Addr()}), standardReplicas(newClient), storeOpts...)
	return proxy, f
}

// TestFaultProxySlowReplies delays every reply by 20ms, well within the
// relaxed fleet's 500ms timeouts: nothing fails, and the calls that make a
// round trip (every call on the ledger circuit records its failure) are
// slower by the delay. How much slower is not checked: on a busy machine a
// call's latency is the scheduler's too (the round trips a call makes are
// counted by TestRedisRoundTrips; speed is measured by benchmarks).
func TestFaultProxySlowReplies(t *testing.T) {
	proxy, f := proxyFleet(t, true)
	const delay = 20 * time.Millisecond
	runFault(t, f, func() faultReport {
		proxy.SetLatency(delay)
		time.Sleep(time.Second) // the slow spell
		proxy.SetLatency(0)
		f.setPhase(phaseAfter)
		return faultReport{fault: "proxy-latency-20ms", injected: 1}
	})
	assert.Zero(t, f.storeErrors(), "store errors with replies slower than usual but within the timeout")
	assert.Zero(t, f.degraded.Load())
	lat := f.latencies("all", phaseFault)
	assert.GreaterOrEqual(t, pct(lat, 99), delay, "p99 added latency: a quarter of the calls made a round trip through the proxy")
}

// TestFaultProxyTimeouts delays every reply by 80ms, more than the
// clients' read timeout: every store call times out after its script ran
// (its retry too), so breakers serve their degraded modes; the scripts'
// call ids keep a retried Record from counting a failure twice.
func TestFaultProxyTimeouts(t *testing.T) {
	proxy, f := proxyFleet(t, false)
	runFault(t, f, func() faultReport {
		proxy.SetLatency(80 * time.Millisecond)
		time.Sleep(time.Second) // the slow spell
		proxy.SetLatency(0)
		f.setPhase(phaseAfter)
		return faultReport{fault: "proxy-latency-80ms", injected: 1}
	})
	assert.Positive(t, f.episodes.Load(), "no degraded episode while every reply came too late")
}

// TestFaultProxyLostReplies loses replies after the server ran the
// command: six times every connection open at that moment goes mute
// (MuteOpen: the client times out, retries on a new connection, and the
// script runs a second time with the same call id), then for 300ms every
// reply is lost (DropReplies). The ledger circuit must count each failure
// once: at least every failure the store acknowledged, at most every
// failure the breakers tried to record.
//
// MuteOpen silences the Watch connections too, and store/redis Watch never
// notices a silent connection (TestFaultWatchSilentConnection): the
// watchers' deafness is logged here, not failed.
func TestFaultProxyLostReplies(t *testing.T) {
	proxy, f := proxyFleet(t, false)
	runFault(t, f, func() faultReport {
		for range 6 {
			proxy.MuteOpen()
			time.Sleep(100 * time.Millisecond)
		}
		proxy.DropReplies(true)
		time.Sleep(300 * time.Millisecond)
		proxy.DropReplies(false)
		f.setPhase(phaseAfter)
		st := proxy.Stats()
		return faultReport{fault: "proxy-lost-replies", injected: 7,
			extra: fmt.Sprintf("droppedBytes=%d connections=%d", st.DroppedBytes, st.Accepted)}
	})
	assert.Positive(t, proxy.Stats().DroppedBytes, "no reply was lost")
}

// TestFaultProxyResets resets every connection (TCP RST) ten times under
// load: go-redis retries the command on a new connection and Watch
// re-subscribes.
func TestFaultProxyResets(t *testing.T) {
	proxy, f := proxyFleet(t, false)
	runFault(t, f, func() faultReport {
		for range 10 {
			proxy.ResetAll()
			time.Sleep(80 * time.Millisecond)
		}
		f.setPhase(phaseAfter)
		return faultReport{fault: "proxy-resets", injected: 10,
			extra: fmt.Sprintf("connectionsReset=%d", proxy.Stats().Reset)}
	})
	assert.Positive(t, proxy.Stats().Reset)
}

// TestFaultWatchSilentConnection: a Watch whose connection goes silent
// (the TCP connection stays open but no byte comes back: a dead peer
// behind a load balancer or NAT, a hung proxy) must notice and subscribe
// again, so that it delivers transitions published afterwards. Redis
// itself is healthy all along; only the open connections are muted.
//
// Regression: Watch read go-redis's PubSub.Channel, whose health check sends
// PING but never checks that a PONG comes back: a silent connection was
// never noticed. Watch now pings and resubscribes itself.
func TestFaultWatchSilentConnection(t *testing.T) {
	srv := redisserver.StartSingle(t)
	proxy := redisserver.StartProxy(t, srv.Addr())
	prefix := newPrefix(t)
	client := redis.NewClient(faultOptions(proxy.Addr(), 1))
	t.Cleanup(func() { _ = client.Close() })
	admin := openStore(t, newClient(t, srv.Addr()), redisstore.WithPrefix(prefix))
	ctx, cancel := context.WithCancel(context.Background())
	events, err := openStore(t, client, redisstore.WithPrefix(prefix)).Watch(ctx)
	require.NoError(t, err)
	defer func() {
		cancel()
		for range events { // until Watch closes it
		}
	}()
	// heard resets the circuit until an event of it arrives, or gives up
	// after timeout.
	heard := func(timeout time.Duration) bool {
		deadline := time.Now().Add(timeout)
		for time.Now().Before(deadline) {
			_, err := admin.Apply(ctx, "w", breaker.Command{Kind: breaker.CommandReset})
			require.NoError(t, err)
			select {
			case ev, ok := <-events:
				require.True(t, ok, "Watch closed its channel")
				if ev.Name == "w" {
					return true
				}
			case <-time.After(200 * time.Millisecond):
			}
		}
		return false
	}
	require.True(t, heard(5*time.Second), "no event before the fault")
	proxy.MuteOpen()
	start := time.Now()
	assert.True(t, heard(15*time.Second), "Watch still deaf 15s after its connection went silent")
	t.Logf("Watch heard again %s after its connection went silent", time.Since(start).Round(time.Millisecond))
}
