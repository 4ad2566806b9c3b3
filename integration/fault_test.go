//go:build integration

package integration

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tripline/tripline/breaker"
	"github.com/tripline/tripline/internal/redisserver"
	redisstore "github.com/tripline/tripline/store/redis"
)

// Faults on a single redis-server, under load from four replicas (see
// fault_harness_test.go). Each test injects one fault, heals it, and checks
// that no call was decided wrongly, that the fleet comes back to one shared
// view, and that every Watch delivers transitions again; it logs one
// "FAULT ..." line with its numbers.

// singleFleet starts a server with opts and a fleet of the standard four
// replicas on it: clients with faultOptions (one retry) and stores with
// their default call timeout (50ms).
//
// relaxed gives clients and stores 500ms timeouts instead, for tests that
// require zero store errors (the fault must be invisible): their point is
// not latency, and 50ms can expire on a busy 2-core machine under -race
// without any fault (a new connection's handshake, for one).
func singleFleet(t *testing.T, relaxed bool, opts ...redisserver.Option) (*redisserver.Server, *faultFleet) {
	t.Helper()
	srv := redisserver.StartSingle(t, opts...)
	newClient, storeOpts := fleetClients(srv.Addr(), relaxed)
	f := newFaultFleet(t, redis.NewClient(&redis.Options{Addr: srv.Addr()}), standardReplicas(newClient), storeOpts...)
	return srv, f
}

// relaxedTimeout is the client and store timeout of relaxed fleets.
const relaxedTimeout = 500 * time.Millisecond

// fleetClients returns how a fleet's replicas make their clients to addr,
// and their store options: faultOptions (one retry) and the store's default
// call timeout, or relaxedTimeout for both when relaxed.
func fleetClients(addr string, relaxed bool) (func() redis.UniversalClient, []redisstore.Option) {
	if !relaxed {
		return func() redis.UniversalClient { return redis.NewClient(faultOptions(addr, 1)) }, nil
	}
	newClient := func() redis.UniversalClient {
		o := faultOptions(addr, 1)
		o.DialTimeout, o.ReadTimeout, o.WriteTimeout, o.PoolTimeout = relaxedTimeout, relaxedTimeout, relaxedTimeout, relaxedTimeout
		return redis.NewClient(o)
	}
	return newClient, []redisstore.Option{redisstore.WithCallTimeout(relaxedTimeout)}
}

// runFault loads the fleet (3 goroutines per replica, a call each
// millisecond or so), lets it run healthy, calls inject (which injects the
// fault, lets it last, heals it and moves the fleet to phaseAfter), lets the
// load run healthy again, stops it, and checks convergence, health and the
// decisions.
func runFault(t *testing.T, f *faultFleet, inject func() faultReport) faultReport {
	t.Helper()
	f.startLoad(3, time.Millisecond)
	stopped := false
	defer func() {
		if !stopped {
			f.endLoad()
		}
	}()
	waitCalls(t, f, 300)
	f.setPhase(phaseBefore)
	waitCalls(t, f, 600)
	f.degradedBefore = f.degraded.Load()
	f.setPhase(phaseFault)
	rep := inject()
	require.Equal(t, int32(phaseAfter), f.phase.Load(), "inject must heal the fault and set phaseAfter")
	waitCalls(t, f, 400)
	f.endLoad()
	stopped = true
	conv := f.converge(10 * time.Second)
	watchTimeout := 10 * time.Second
	if f.deafWatch != "" {
		watchTimeout = 3 * time.Second // a known bug: do not wait long for it
	}
	watch := f.checkHealthy(watchTimeout)
	f.summary(rep, conv, watch)
	return rep
}

// waitCalls waits until the fleet has made n more calls.
func waitCalls(t *testing.T, f *faultFleet, n int64) {
	t.Helper()
	target := f.calls.Load() + n
	deadline := time.Now().Add(10 * time.Second)
	for f.calls.Load() < target {
		require.True(t, time.Now().Before(deadline), "the load made fewer than %d calls in 10s (calls hang?)", n)
		time.Sleep(5 * time.Millisecond)
	}
}

// adminDo runs a command on srv as the harness's admin user.
func adminDo(t *testing.T, srv *redisserver.Server, args ...string) any {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	v, err := srv.Do(ctx, args...)
	require.NoError(t, err, "%v", args)
	return v
}

// TestFaultKill9Restart: redis-server is killed with SIGKILL under load,
// stays down 600ms and comes back empty (scripts gone too). Every breaker
// serves its degraded mode meanwhile; afterwards circuits read as closed
// (the forced-open one too: its data is gone), NOSCRIPT is handled, and the
// fleet shares one view again.
func TestFaultKill9Restart(t *testing.T) {
	srv, f := singleFleet(t, false)
	runFault(t, f, func() faultReport {
		f.dataLost()
		srv.Kill()
		time.Sleep(600 * time.Millisecond) // the outage
		srv.Restart()
		f.setPhase(phaseAfter)
		return faultReport{fault: "kill-9+restart", injected: 1}
	})
	held, err := f.admin.Load(t.Context(), circuitNames[cHeld])
	require.NoError(t, err)
	assert.Equal(t, breaker.StateClosed, held.State, "a restarted empty Redis holds no override")
	assert.Nil(t, held.Override)
	assert.Positive(t, f.episodes.Load(), "no degraded episode while Redis was down")
	requireEveryKeyExpires(t, f.adminC, f.prefix)
}

// TestFaultSigstop freezes redis-server (SIGSTOP) for a second under load
// and measures the latency the breaker adds to calls meanwhile. Nothing is
// lost: the forced-open circuit must stay forced open. Two more replicas
// use clients without retries, to show what a retry costs.
//
// The store sets no deadline of its own, so a call that meets the frozen
// server waits for the client's read timeout (faultTimeout), once per
// attempt: with one retry, about 2 x 50ms plus the retry backoff and a
// redial; then the breaker serves the call degraded and asks the store
// again only after its backoff (50ms, doubling to StoreBackoffMax), so most
// calls during the freeze add nothing.
func TestFaultSigstop(t *testing.T) {
	srv := redisserver.StartSingle(t)
	specs := standardReplicas(func() redis.UniversalClient { return redis.NewClient(faultOptions(srv.Addr(), 1)) })
	for i := range specs {
		specs[i].group = "retries=1"
	}
	for range 2 {
		specs = append(specs, replicaSpec{mode: breaker.FallbackLocal, group: "retries=0",
			client: func() redis.UniversalClient { return redis.NewClient(faultOptions(srv.Addr(), -1)) }})
	}
	f := newFaultFleet(t, redis.NewClient(&redis.Options{Addr: srv.Addr()}), specs)
	runFault(t, f, func() faultReport {
		srv.Stop()
		time.Sleep(time.Second) // the freeze
		srv.Cont()
		f.setPhase(phaseAfter)
		return faultReport{fault: "sigstop-1s", injected: 1}
	})
	for group, attempts := range map[string]int{"retries=1": 2, "retries=0": 1} {
		lat := f.latencies(group, phaseFault)
		require.NotEmpty(t, lat, group)
		// Each attempt waits one timeout (a retry's new connection waits it
		// in its handshake); a retry adds its backoff (<= 4ms). Allow 25ms
		// for scheduling under -race.
		bound := time.Duration(attempts)*faultTimeout + 25*time.Millisecond
		p99, worst := pct(lat, 99), pct(lat, 100)
		t.Logf("SIGSTOP %s: %d calls during the freeze, added latency p50=%s p99=%s max=%s (bound %s)",
			group, len(lat), pct(lat, 50), p99, worst, bound)
		assert.LessOrEqual(t, p99, bound, "%s: p99 added latency during the freeze", group)
	}
	held, err := f.admin.Load(t.Context(), circuitNames[cHeld])
	require.NoError(t, err)
	require.NotNil(t, held.Override, "a freeze loses nothing")
	assert.Equal(t, breaker.OverrideForceOpen, held.Override.Mode)
}

// TestFaultScriptFlush flushes Redis's script cache 20 times under load:
// the store sends the script again on NOSCRIPT, so no call sees a store
// error and nothing is served degraded.
func TestFaultScriptFlush(t *testing.T) {
	srv, f := singleFleet(t, true)
	const flushes = 20
	runFault(t, f, func() faultReport {
		for range flushes {
			adminDo(t, srv, "SCRIPT", "FLUSH")
			time.Sleep(40 * time.Millisecond)
		}
		f.setPhase(phaseAfter)
		return faultReport{fault: "script-flush", injected: flushes,
			extra: fmt.Sprintf("evalCalls=%d", commandCount(t, srv.Do, "eval"))}
	})
	assert.Zero(t, f.storeErrors(), "store errors after SCRIPT FLUSH")
	assert.Zero(t, f.degraded.Load(), "calls served degraded after SCRIPT FLUSH")
	assert.Positive(t, commandCount(t, srv.Do, "eval"), "no EVAL after SCRIPT FLUSH: NOSCRIPT never met?")
}

// TestFaultFlushAll empties Redis 10 times under load: circuits read as
// closed (the forced-open one too), no store errors, nothing stuck, every
// key still has a TTL.
func TestFaultFlushAll(t *testing.T) {
	srv, f := singleFleet(t, true)
	const flushes = 10
	runFault(t, f, func() faultReport {
		f.dataLost()
		for range flushes {
			adminDo(t, srv, "FLUSHALL")
			time.Sleep(60 * time.Millisecond)
		}
		f.setPhase(phaseAfter)
		return faultReport{fault: "flushall", injected: flushes}
	})
	assert.Zero(t, f.storeErrors(), "store errors after FLUSHALL")
	held, err := f.admin.Load(t.Context(), circuitNames[cHeld])
	require.NoError(t, err)
	assert.Equal(t, breaker.StateClosed, held.State)
	assert.Nil(t, held.Override)
	requireEveryKeyExpires(t, f.adminC, f.prefix)
}

// TestFaultClientKill kills the store's connections from the server side
// under load, 12 times, alternating plain connections (CLIENT KILL TYPE
// normal) and Watch's pub/sub connections (TYPE pubsub). go-redis retries
// a command whose connection was closed, and re-subscribes a pub/sub; every
// Watch must deliver transitions again afterwards.
func TestFaultClientKill(t *testing.T) {
	srv, f := singleFleet(t, false)
	const rounds = 12
	killed := map[string]int64{}
	runFault(t, f, func() faultReport {
		for i := range rounds {
			typ := "normal"
			if i%2 == 1 {
				typ = "pubsub"
			}
			n, _ := adminDo(t, srv, "CLIENT", "KILL", "TYPE", typ).(int64)
			killed[typ] += n
			time.Sleep(80 * time.Millisecond)
		}
		f.setPhase(phaseAfter)
		return faultReport{fault: "client-kill", injected: rounds,
			extra: fmt.Sprintf("connectionsKilled(normal=%d pubsub=%d)", killed["normal"], killed["pubsub"])}
	})
	assert.Positive(t, killed["pubsub"], "no pub/sub connection was killed")
	held, err := f.admin.Load(t.Context(), circuitNames[cHeld])
	require.NoError(t, err)
	require.NotNil(t, held.Override)
}

// TestFaultEvictionLRU runs Redis out of memory with allkeys-lru eviction:
// 200 idle forced-open circuits and junk keys compete for 2MB more than
// Redis used when the fault started. Evicted circuits read as closed, with
// no error, and List and Load keep working.
func TestFaultEvictionLRU(t *testing.T) {
	srv, f := singleFleet(t, true, redisserver.WithConfig("maxmemory-policy allkeys-lru"))
	ctx := t.Context()
	const cold = 200
	for i := range cold {
		_, err := f.admin.Apply(ctx, "cold-"+strconv.Itoa(i), breaker.Command{Kind: breaker.CommandForceOpen, Reason: "cold"})
		require.NoError(t, err)
	}
	filler := f.adminC
	var junk int
	runFault(t, f, func() faultReport {
		f.dataLost()
		used := infoField(t, srv.Do, "memory", "used_memory")
		adminDo(t, srv, "CONFIG", "SET", "maxmemory", strconv.FormatInt(used+2<<20, 10))
		value := strings.Repeat("x", 4096)
		for range 40 { // 40 x 64 x 4KB = 10MB
			pipe := filler.Pipeline()
			for range 64 {
				pipe.Set(ctx, "junk:"+strconv.Itoa(junk), value, time.Hour)
				junk++
			}
			_, err := pipe.Exec(ctx)
			require.NoError(t, err)
			time.Sleep(10 * time.Millisecond)
		}
		adminDo(t, srv, "CONFIG", "SET", "maxmemory", "0")
		f.setPhase(phaseAfter)
		return faultReport{fault: "maxmemory-allkeys-lru", injected: 1}
	})
	evicted := infoField(t, srv.Do, "stats", "evicted_keys")
	lost := 0
	for i := range cold {
		s, err := f.admin.Load(ctx, "cold-"+strconv.Itoa(i))
		require.NoError(t, err)
		if s.Override == nil {
			assert.Equal(t, breaker.StateClosed, s.State, "an evicted circuit reads as closed")
			lost++
		}
	}
	list, err := f.admin.List(ctx)
	require.NoError(t, err)
	t.Logf("EVICTION: %d junk keys written, evicted_keys=%d, %d of %d idle forced-open circuits evicted (read closed), List returned %d circuits",
		junk, evicted, lost, cold, len(list))
	assert.Positive(t, evicted, "nothing was evicted")
	assert.Positive(t, lost, "no circuit was evicted: the test did not test eviction")
}

// TestFaultNoEvictionOOM puts Redis over maxmemory with noeviction under
// load. A script whose first write is refused (recording a failure on a
// closed circuit: HSET or ZADD first) fails with OOM, so breakers go
// degraded on those writes, while reads (Load, List, Admit of a closed
// circuit: scripts that write nothing) keep working.
//
// Redis 7.0 refuses only a script's first write, and only if that command
// is marked deny-oom: a script that first runs DEL, PEXPIRE or
// ZREMRANGEBYSCORE (apply, a trip, a half-open lease) may then write past
// maxmemory. So during OOM a reset or a trip is still written, while the
// plain failures that would lead to a trip are refused.
func TestFaultNoEvictionOOM(t *testing.T) {
	srv, f := singleFleet(t, false, redisserver.WithConfig("maxmemory-policy noeviction"))
	ctx := t.Context()
	var readsOK, readsFailed int
	var writeErr, applyErr error
	runFault(t, f, func() faultReport {
		adminDo(t, srv, "CONFIG", "SET", "maxmemory", "1")
		end := time.Now().Add(800 * time.Millisecond)
		for time.Now().Before(end) { // the outage: reads meanwhile
			if _, err := f.admin.Load(ctx, circuitNames[cHeld]); err != nil {
				readsFailed++
				t.Logf("Load during OOM: %v", err)
			} else {
				readsOK++
			}
			if _, err := f.admin.List(ctx); err != nil {
				readsFailed++
				t.Logf("List during OOM: %v", err)
			} else {
				readsOK++
			}
			time.Sleep(20 * time.Millisecond)
		}
		p := breaker.Policy{FailureThreshold: 5, Timeout: time.Second, SuccessThreshold: 1, HalfOpenMaxCalls: 1, ProbeTimeout: time.Second}
		_, writeErr = f.admin.Record(ctx, "oom-probe", p, breaker.Outcome{Kind: breaker.OutcomeFailure})
		_, applyErr = f.admin.Apply(ctx, "oom-probe", breaker.Command{Kind: breaker.CommandReset})
		adminDo(t, srv, "CONFIG", "SET", "maxmemory", "0")
		f.setPhase(phaseAfter)
		return faultReport{fault: "maxmemory-noeviction-oom", injected: 1,
			extra: fmt.Sprintf("readsDuringOOM(ok=%d failed=%d) resetDuringOOM=%v", readsOK, readsFailed, applyErr)}
	})
	assert.ErrorContains(t, writeErr, "OOM", "recording a failure during OOM")
	assert.Zero(t, readsFailed, "reads during OOM")
	assert.Positive(t, f.episodes.Load(), "no degraded episode while writes were refused")
	assert.Positive(t, f.ledgerErr.Load(), "no failure was refused during OOM")
	held, err := f.admin.Load(ctx, circuitNames[cHeld])
	require.NoError(t, err)
	require.NotNil(t, held.Override, "OOM loses nothing")
}
