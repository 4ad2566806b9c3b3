//go:build integration

package integration

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tripline/tripline/breaker"
	"github.com/tripline/tripline/internal/redisserver"
	redisstore "github.com/tripline/tripline/store/redis"
)

// Failovers of a Redis Sentinel setup (issue 6), under load from the fault
// fleet (fault_harness_test.go), whose replicas reach Redis through go-redis
// failover clients (redis.NewUniversalClient with MasterName): a planned
// SENTINEL FAILOVER (with and without min-replicas-to-write), a master that
// a client keeps reaching after it was demoted (READONLY), and a SIGKILL of
// the master with a trip that never reached the replica.
//
// Sentinel promotes a replica while the old master still runs (planned
// failover) or after it died (SIGKILL). Either way the replica has only what
// replication had sent it: writes the old master acknowledged later are
// lost. In a planned failover the old master is not paused: a failover
// client keeps writing to it until it hears +switch-master from the one
// Sentinel it follows (the failover's leader says so only when its
// failover ends, after the other replicas were moved; the others as soon as
// the promotion is announced) or until the old master is demoted, which
// closes its connections. Here that is 1-2s of writes. So every test here
// sets mayLoseWrites.

// sentinelOptions are the options of a replica's failover client: one
// retry and one dial attempt as faultOptions, with relaxedTimeout: these
// tests are about the failover, not latency, and a 50ms timeout (the client
// first asks a Sentinel where the master is, on every dial) expires without
// any fault on a busy 2-core machine under -race.
func sentinelOptions(s *redisserver.Sentinel) *redis.UniversalOptions {
	return &redis.UniversalOptions{
		MasterName:            s.MasterName(),
		Addrs:                 s.SentinelAddrs(),
		ContextTimeoutEnabled: true,
		DialTimeout:           relaxedTimeout,
		ReadTimeout:           relaxedTimeout,
		WriteTimeout:          relaxedTimeout,
		PoolTimeout:           relaxedTimeout,
		DialerRetries:         1,
		MaxRetries:            1,
		MinRetryBackoff:       time.Millisecond,
		MaxRetryBackoff:       4 * time.Millisecond,
		PoolSize:              8,
	}
}

// startSentinel starts a Sentinel setup and logs how long it took.
func startSentinel(t *testing.T, replicas, sentinels int, opts ...redisserver.Option) *redisserver.Sentinel {
	t.Helper()
	begin := time.Now()
	s := redisserver.StartSentinel(t, replicas, sentinels, opts...)
	t.Logf("%v: healthy in %s", s, time.Since(begin).Round(time.Millisecond))
	return s
}

// sentinelFleet builds a fleet on s: the standard four replicas with
// failover clients (each counting the commands that failed with READONLY
// or NOREPLICAS into rc), plus extra, with stores whose call timeout is
// relaxedTimeout. The admin client is a failover client too.
func sentinelFleet(t *testing.T, s *redisserver.Sentinel, rc *replyCounter, extra ...replicaSpec) *faultFleet {
	t.Helper()
	newClient := func() redis.UniversalClient {
		c := redis.NewUniversalClient(sentinelOptions(s))
		c.AddHook(rc)
		return c
	}
	admin := sentinelOptions(s)
	admin.DialTimeout, admin.ReadTimeout, admin.WriteTimeout, admin.PoolTimeout = time.Second, time.Second, time.Second, time.Second
	f := newFaultFleet(t, redis.NewUniversalClient(admin), append(standardReplicas(newClient), extra...),
		redisstore.WithCallTimeout(relaxedTimeout))
	f.mayLoseWrites = true
	return f
}

// waitReplicas runs WAIT on the master through the admin client: every
// replica has what the master holds, so a failover from now on loses none
// of it.
func waitReplicas(t *testing.T, f *faultFleet, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got, err := f.adminC.Do(ctx, "WAIT", n, 5000).Int()
	require.NoError(t, err)
	require.Equal(t, n, got, "replicas that acknowledged WAIT")
}

// replyCounter is a go-redis hook that counts the commands (a pipeline
// counts once) that failed with READONLY (a write that reached a replica)
// or NOREPLICAS (a master with min-replicas-to-write refused it). A hook
// sees the error next returns; the command's Err is set after the hooks.
type replyCounter struct{ readOnly, noReplicas atomic.Int64 }

func (h *replyCounter) count(err error) {
	switch {
	case redis.IsReadOnlyError(err):
		h.readOnly.Add(1)
	case redis.HasErrorPrefix(err, "NOREPLICAS"):
		h.noReplicas.Add(1)
	}
}

func (h *replyCounter) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *replyCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		h.count(err)
		return err
	}
}

func (h *replyCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		h.count(err)
		return err
	}
}

// sideCircuit is a circuit outside the load: one Breaker on it per fleet
// replica, on that replica's store, with the closed -> open transitions
// that OnStateChange reports counted fleet-wide. Tests trip it around a
// failover and check what every replica then sees.
type sideCircuit struct {
	name      string
	threshold int
	breakers  []*breaker.Breaker
	trips     atomic.Int64
}

func newSideCircuit(t *testing.T, f *faultFleet, name string, threshold int) *sideCircuit {
	t.Helper()
	sc := &sideCircuit{name: name, threshold: threshold}
	for _, r := range f.replicas {
		b, err := breaker.New(name, breaker.Config{
			FailureThreshold: threshold,
			Timeout:          time.Minute,
			Store:            r.store,
			OnStateChange: func(_ string, from, to breaker.State) {
				if from == breaker.StateClosed && to == breaker.StateOpen {
					sc.trips.Add(1)
				}
			},
		})
		require.NoError(t, err)
		sc.breakers = append(sc.breakers, b)
	}
	return sc
}

// tripVia trips the circuit with threshold failures through replica i and
// returns the generation Redis then holds.
func (sc *sideCircuit) tripVia(t *testing.T, f *faultFleet, i int) uint64 {
	t.Helper()
	ctx := context.Background()
	for n := range sc.threshold {
		require.ErrorIs(t, sc.breakers[i].Do(ctx, func(context.Context) error { return errBoom }), errBoom, "failure %d", n+1)
	}
	snap, err := f.admin.Load(ctx, sc.name)
	require.NoError(t, err)
	require.Equal(t, breaker.StateOpen, snap.State, "%d failures did not trip %s", sc.threshold, sc.name)
	return snap.Generation
}

// requireOpenEverywhere makes one call per replica: each must be rejected
// with ErrOpen, without running.
func (sc *sideCircuit) requireOpenEverywhere(t *testing.T) {
	t.Helper()
	for i, b := range sc.breakers {
		ran := false
		err := b.Do(context.Background(), func(context.Context) error { ran = true; return nil })
		require.ErrorIs(t, err, breaker.ErrOpen, "replica %d on %s", i, sc.name)
		require.False(t, ran, "replica %d ran a call on open circuit %s", i, sc.name)
	}
}

// waitClosedEverywhere polls until a call on every replica runs and
// succeeds, or fails the test after timeout.
func (sc *sideCircuit) waitClosedEverywhere(t *testing.T, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for i, b := range sc.breakers {
		for {
			ran := false
			err := b.Do(context.Background(), func(context.Context) error { ran = true; return nil })
			if err == nil && ran {
				break
			}
			require.True(t, time.Now().Before(deadline), "replica %d: %s not closed within %s: %v", i, sc.name, timeout, err)
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// retrip fails calls on every replica at once (4 goroutines each) until
// each is rejected: the circuit, closed in Redis at generation from, must
// trip exactly once (one closed -> open fleet-wide, generation from+1),
// within the local views' bound of threshold + 2 x (callers - 1) calls. It
// returns the calls that ran.
func (sc *sideCircuit) retrip(t *testing.T, f *faultFleet, from uint64) int64 {
	t.Helper()
	const perReplica = 4
	ctx := context.Background()
	snap, err := f.admin.Load(ctx, sc.name)
	require.NoError(t, err)
	require.Equal(t, breaker.StateClosed, snap.State)
	require.Equal(t, from, snap.Generation)
	sc.trips.Store(0)
	ran := failTogether(t, ctx, sc.breakers, perReplica)
	callers := int64(len(sc.breakers) * perReplica)
	assert.EqualValues(t, 1, sc.trips.Load(), "%s: closed -> open transitions fleet-wide", sc.name)
	assert.GreaterOrEqual(t, ran, int64(sc.threshold), "%s: calls run before the trip", sc.name)
	assert.LessOrEqual(t, ran, int64(sc.threshold)+2*(callers-1), "%s: calls run before the trip", sc.name)
	snap, err = f.admin.Load(ctx, sc.name)
	require.NoError(t, err)
	assert.Equal(t, breaker.StateOpen, snap.State)
	assert.Equal(t, from+1, snap.Generation, "%s tripped exactly once", sc.name)
	for i, b := range sc.breakers {
		s, err := b.Snapshot(ctx)
		require.NoError(t, err)
		assert.Zero(t, s.StoreErrors, "replica %d: store errors on %s (its checks were not decided by Redis)", i, sc.name)
	}
	return ran
}

// TestSentinelPlannedFailover: SENTINEL FAILOVER (master, 2 replicas, 3
// Sentinels) under load, after a circuit was tripped and replicated (WAIT).
// Every call is decided as documented (store errors only while the clients
// switch, served in each replica's degraded mode), the tripped circuit is
// still open on the new master for every replica, the fleet converges, and
// a reset and a trip made after the failover reach every replica.
func TestSentinelPlannedFailover(t *testing.T) {
	var ro replyCounter
	s := startSentinel(t, 2, 3)
	f := sentinelFleet(t, s, &ro)
	tripped := newSideCircuit(t, f, "tripped", 3)
	gen := tripped.tripVia(t, f, 0)
	waitReplicas(t, f, 2)
	old := s.Master()
	var switched, demoted time.Duration
	runFault(t, f, func() faultReport {
		f.probes.Store(newProbeLedger()) // lost writes may repeat a generation
		begin := time.Now()
		m := s.Failover(15 * time.Second)
		switched = time.Since(begin)
		s.WaitHealthy(15 * time.Second) // the old master is demoted
		demoted = time.Since(begin)
		require.NotSame(t, old, m)
		f.setPhase(phaseAfter)
		return faultReport{fault: "sentinel-failover", injected: 1,
			extra: fmt.Sprintf("switchedIn=%s oldMasterDemotedIn=%s readOnly=%d", switched.Round(time.Millisecond), demoted.Round(time.Millisecond), ro.readOnly.Load())}
	})
	assert.Contains(t, s.Replicas(), old, "the old master is a replica now")

	snap, err := f.admin.Load(t.Context(), tripped.name)
	require.NoError(t, err)
	assert.Equal(t, breaker.StateOpen, snap.State, "the trip was replicated before the failover")
	assert.Equal(t, gen, snap.Generation)
	tripped.requireOpenEverywhere(t)
	held, err := f.admin.Load(t.Context(), circuitNames[cHeld])
	require.NoError(t, err)
	require.NotNil(t, held.Override, "the override was replicated before the failover")
	assert.Equal(t, breaker.OverrideForceOpen, held.Override.Mode)

	// After the failover: a reset and a trip reach every replica.
	res, err := f.admin.Apply(t.Context(), tripped.name, breaker.Command{Kind: breaker.CommandReset, Actor: "sentinel-test"})
	require.NoError(t, err)
	tripped.waitClosedEverywhere(t, 5*time.Second)
	ran := tripped.retrip(t, f, res.Generation)
	t.Logf("SENTINEL: %s: open at generation %d across the failover; reset to %d and tripped again once after %d calls, seen by all %d replicas",
		tripped.name, gen, res.Generation, ran, len(tripped.breakers))
	t.Logf("SENTINEL: planned failover lost %d of %d acknowledged ledger failures (written to the old master between the promotion and the clients' switch)",
		f.ledgerOK.Load()-int64(f.ledgerCounted), f.ledgerOK.Load())
}

// TestSentinelPlannedFailoverMinReplicas: the planned failover again, with
// min-replicas-to-write 2 (every replica) and min-replicas-max-lag 2 on
// every server. The old master refuses writes (NOREPLICAS) from the moment
// the promoted replica leaves it, and the new master refuses them until the
// other two servers replicate it: the writes made while the clients switch
// are refused, and served in each replica's degraded mode, instead of being
// acknowledged by the old master and lost. (Writes the old master had sent
// but the replica had not read when it was promoted are still lost.)
func TestSentinelPlannedFailoverMinReplicas(t *testing.T) {
	var rc replyCounter
	s := startSentinel(t, 2, 3, redisserver.WithConfig("min-replicas-to-write 2", "min-replicas-max-lag 2"))
	f := sentinelFleet(t, s, &rc)
	waitReplicas(t, f, 2)
	runFault(t, f, func() faultReport {
		f.probes.Store(newProbeLedger()) // lost writes may repeat a generation
		begin := time.Now()
		s.Failover(15 * time.Second)
		switched := time.Since(begin)
		s.WaitHealthy(15 * time.Second)
		f.setPhase(phaseAfter)
		return faultReport{fault: "sentinel-failover-min-replicas", injected: 1,
			extra: fmt.Sprintf("switchedIn=%s oldMasterDemotedIn=%s noReplicas=%d readOnly=%d",
				switched.Round(time.Millisecond), time.Since(begin).Round(time.Millisecond), rc.noReplicas.Load(), rc.readOnly.Load())}
	})
	assert.Positive(t, rc.noReplicas.Load(), "no write was refused with NOREPLICAS during the failover")
	t.Logf("SENTINEL: planned failover with min-replicas-to-write 2 lost %d of %d acknowledged ledger failures; %d commands refused with NOREPLICAS",
		f.ledgerOK.Load()-int64(f.ledgerCounted), f.ledgerOK.Load(), rc.noReplicas.Load())
}

// TestSentinelReadOnly: two extra replicas reach Redis through a fixed
// address (a DNS name or VIP, not Sentinel) that still points at the old
// master after a SENTINEL FAILOVER demoted it. Their script writes fail
// with READONLY: the store returns them as errors, the breakers serve the
// calls in their degraded mode (a *StoreError from FailClosed, never
// ErrOpen, never a failure of the protected call, never a panic), and once
// the address points at the new master they recover. The failover
// clients' READONLY errors are counted too (Sentinel closes the old
// master's connections when it demotes it, and they ask a Sentinel on
// every dial, so few or none are expected).
func TestSentinelReadOnly(t *testing.T) {
	var ro, pinnedRO replyCounter
	var target atomic.Pointer[string] // where the fixed address leads
	s := startSentinel(t, 1, 1)
	pinned := func() redis.UniversalClient {
		// The failover clients' settings, on a plain client whose one
		// address leads wherever target says.
		o := sentinelOptions(s).Simple()
		o.Addr = "redis-master.internal:6379" // never dialled: Dialer resolves it
		o.Dialer = func(ctx context.Context, network, _ string) (net.Conn, error) {
			d := net.Dialer{Timeout: relaxedTimeout}
			return d.DialContext(ctx, network, *target.Load())
		}
		c := redis.NewClient(o)
		c.AddHook(&pinnedRO)
		return c
	}
	extra := []replicaSpec{
		{mode: breaker.FallbackLocal, group: "pinned", client: pinned},
		{mode: breaker.FailClosed, group: "pinned", client: pinned},
	}
	old := s.MasterAddr()
	target.Store(&old)
	f := sentinelFleet(t, s, &ro, extra...)
	pinnedClosed := f.replicas[len(f.replicas)-1]
	require.Equal(t, breaker.FailClosed, pinnedClosed.spec.mode)
	ledger := pinnedClosed.breakers[cLedger]
	waitReplicas(t, f, 1)

	var readOnlyErr error
	var roAtDemotion, roAtHeal int64
	runFault(t, f, func() faultReport {
		f.probes.Store(newProbeLedger()) // lost writes may repeat a generation
		m := s.Failover(15 * time.Second)
		s.WaitHealthy(15 * time.Second) // the old master is demoted: a replica
		roAtDemotion = pinnedRO.readOnly.Load()

		// The pinned replicas' writes now reach a replica. Call the
		// fail-closed one's ledger circuit (every call fails, so its
		// outcome is a script write) until a call is rejected with the
		// READONLY error as a *StoreError.
		deadline := time.Now().Add(10 * time.Second)
		for readOnlyErr == nil {
			ran := false
			err := ledger.Do(context.Background(), func(context.Context) error { ran = true; return errFlaky })
			var serr *breaker.StoreError
			switch {
			case ran:
				require.ErrorIs(t, err, errFlaky, "a call that ran returns its own error")
			case errors.As(err, &serr) && redis.IsReadOnlyError(err):
				require.NotErrorIs(t, err, breaker.ErrOpen, "a store error is not an open circuit")
				readOnlyErr = err
			}
			require.True(t, time.Now().Before(deadline), "no READONLY store error 10s after the old master was demoted (last: %v; READONLY replies %d)", err, pinnedRO.readOnly.Load())
			time.Sleep(5 * time.Millisecond)
		}

		// The address now leads to the new master. go-redis drops a
		// connection that answered READONLY, so the next dial goes there.
		addr := m.Addr()
		target.Store(&addr)
		roAtHeal = pinnedRO.readOnly.Load()
		// FailClosed runs a call only if the store admitted it, and a
		// Record that failed would start an episode that rejects the next
		// call (its first probe waits 50ms): five calls in a row that ran
		// were all admitted and recorded by Redis.
		deadline = time.Now().Add(10 * time.Second)
		for inRow := 0; inRow < 5; {
			ran := false
			err := ledger.Do(context.Background(), func(context.Context) error { ran = true; return errFlaky })
			if ran {
				require.ErrorIs(t, err, errFlaky)
				inRow++
				continue
			}
			inRow = 0
			require.True(t, time.Now().Before(deadline), "the fail-closed pinned replica did not recover 10s after its address moved to the new master: %v", err)
			time.Sleep(5 * time.Millisecond)
		}
		f.setPhase(phaseAfter)
		return faultReport{fault: "sentinel-readonly", injected: 1,
			extra: fmt.Sprintf("readOnly(pinned total=%d afterDemotion=%d atHeal=%d, failover clients=%d)", pinnedRO.readOnly.Load(), roAtDemotion, roAtHeal, ro.readOnly.Load())}
	})
	t.Logf("SENTINEL: READONLY as a store error: %v", readOnlyErr)
	assert.Positive(t, roAtHeal, "no READONLY reply reached the pinned clients")
	for _, r := range f.replicas[len(f.replicas)-2:] {
		var errs uint64
		for _, b := range r.breakers {
			snap, err := b.Snapshot(t.Context())
			require.NoError(t, err)
			errs += snap.StoreErrors
		}
		assert.Positive(t, errs, "pinned replica %d (%s): no store error counted", r.id, r.spec.mode)
	}
}

// TestSentinelKillMaster: SIGKILL of the master (2 replicas, 3 Sentinels)
// under load; Sentinel promotes a replica, the other one follows it, and
// the fleet carries on against the new master. (The killed master is not
// restarted here: the other package's test binary, running at the same
// time, may take its free port; TestSentinelFailover in
// internal/redisserver restarts one.) Before the kill, replication is paused and a circuit is
// tripped: the master acknowledged the trip, no replica got it. After the
// failover the circuit reads as closed (generation 0: it never existed on
// the new master) on every replica, and threshold failures trip it again,
// exactly once.
func TestSentinelKillMaster(t *testing.T) {
	var ro replyCounter
	s := startSentinel(t, 2, 3)
	f := sentinelFleet(t, s, &ro)
	lost := newSideCircuit(t, f, "lost", 3)
	waitReplicas(t, f, 2)
	var lostGen uint64
	runFault(t, f, func() faultReport {
		f.probes.Store(newProbeLedger()) // lost writes may repeat a generation
		s.PauseReplication()
		lostGen = lost.tripVia(t, f, 0)
		require.EqualValues(t, 1, lost.trips.Load())
		lost.requireOpenEverywhere(t)
		for _, r := range s.Replicas() {
			n := adminDo(t, r, "EXISTS", f.admin.Keys(lost.name)[0])
			require.EqualValues(t, 0, n, "replica %s got the trip while replication was paused", r.Addr())
		}
		old := s.Master()
		begin := time.Now()
		old.Kill()
		s.ResumeReplication()
		m := s.WaitFailover(old, 20*time.Second)
		promoted := time.Since(begin)
		s.WaitHealthy(20 * time.Second) // the other replica follows the new master
		f.setPhase(phaseAfter)
		return faultReport{fault: "sentinel-master-kill", injected: 1,
			extra: fmt.Sprintf("promoted=%s in %s, healthyIn=%s readOnly=%d", m.Addr(), promoted.Round(time.Millisecond), time.Since(begin).Round(time.Millisecond), ro.readOnly.Load())}
	})
	held, err := f.admin.Load(t.Context(), circuitNames[cHeld])
	require.NoError(t, err)
	require.NotNil(t, held.Override, "the override was replicated before the kill")
	assert.Equal(t, breaker.OverrideForceOpen, held.Override.Mode)

	// The trip is gone: closed, generation 0, for Redis and every replica.
	snap, err := f.admin.Load(t.Context(), lost.name)
	require.NoError(t, err)
	assert.Equal(t, breaker.StateClosed, snap.State, "the trip was never replicated")
	assert.Zero(t, snap.Generation)
	for i, b := range lost.breakers {
		s, err := b.Snapshot(t.Context())
		require.NoError(t, err)
		assert.Equal(t, breaker.StateClosed, s.State, "replica %d", i)
		assert.Zero(t, s.Generation, "replica %d", i)
	}
	ran := lost.retrip(t, f, 0)
	t.Logf("SENTINEL: trip of %s (generation %d) acknowledged by the killed master, never replicated: closed at generation 0 after the failover; tripped again once after %d calls (threshold %d, %d replicas)",
		lost.name, lostGen, ran, lost.threshold, len(lost.breakers))
	t.Logf("SENTINEL: %d of %d acknowledged ledger failures lost (replication was paused before the kill)",
		f.ledgerOK.Load()-int64(f.ledgerCounted), f.ledgerOK.Load())
}
