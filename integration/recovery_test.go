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

// Recovery without help (issue 6): a circuit that lost some of its keys
// (evicted, expired, deleted by hand) reads without error and keeps
// working through ordinary calls; what data loss does to generations and
// to the breakers' protection while Redis refuses writes.

// recoveryPolicy is the policy of the recovery tests: a short Timeout (real
// Redis time) and a long ProbeTimeout, so that a probe lease never lapses
// by itself during a test.
var recoveryPolicy = breaker.Policy{
	FailureThreshold: 3,
	Timeout:          30 * time.Millisecond,
	SuccessThreshold: 1,
	HalfOpenMaxCalls: 1,
	ProbeTimeout:     10 * time.Second,
}

// TestRecoveryPartialKeyLoss loses one key of a circuit (its state hash,
// its failure window or its probe leases) in each state the circuit can
// be in: closed with failures in its window, open, half-open with a probe
// running, forced open. Afterwards Load does not fail, the running probe's
// outcome is taken or ignored without error, and the circuit still goes
// through a whole cycle (trip, half-open, close) through ordinary calls
// within a few seconds: nothing is stuck. A forced-open circuit that kept
// its hash is still forced open (its override lives there).
func TestRecoveryPartialKeyLoss(t *testing.T) {
	srv := redisserver.StartSingle(t)
	client := newClient(t, srv.Addr())
	st := openStore(t, client, redisstore.WithPrefix(newPrefix(t)), slowCalls)
	ctx := t.Context()
	p := recoveryPolicy
	p.FailureWindow = time.Hour

	fail := func(t *testing.T, name string) {
		a, err := st.Admit(ctx, name, p)
		require.NoError(t, err)
		require.True(t, a.Allowed)
		_, err = st.Record(ctx, name, p, breaker.Outcome{Kind: breaker.OutcomeFailure, Generation: a.Generation, Probe: a.Probe})
		require.NoError(t, err)
	}
	trip := func(t *testing.T, name string) {
		for range p.FailureThreshold {
			fail(t, name)
		}
		s, err := st.Load(ctx, name)
		require.NoError(t, err)
		require.Equal(t, breaker.StateOpen, s.State)
	}
	// Each setup leaves the circuit in a state and returns what its
	// caller still has to do after the loss (a running probe's outcome).
	states := []struct {
		name  string
		setup func(t *testing.T, name string) (after func(t *testing.T))
	}{
		{"closed-with-failures", func(t *testing.T, name string) func(*testing.T) {
			fail(t, name)
			fail(t, name)
			return nil
		}},
		{"open", func(t *testing.T, name string) func(*testing.T) {
			trip(t, name)
			return nil
		}},
		{"half-open-probe-running", func(t *testing.T, name string) func(*testing.T) {
			trip(t, name)
			a := admitWhenDue(t, st, name, p)
			require.Equal(t, breaker.StateHalfOpen, a.State)
			return func(t *testing.T) {
				_, err := st.Record(ctx, name, p, breaker.Outcome{Kind: breaker.OutcomeSuccess, Generation: a.Generation, Probe: a.Probe})
				require.NoError(t, err, "the running probe's outcome after the loss")
			}
		}},
		{"forced-open", func(t *testing.T, name string) func(*testing.T) {
			_, err := st.Apply(ctx, name, breaker.Command{Kind: breaker.CommandForceOpen, Reason: "loss"})
			require.NoError(t, err)
			return nil
		}},
	}
	keyNames := []string{"hash", "window", "leases"}
	for _, state := range states {
		for k, keyName := range keyNames {
			t.Run(state.name+"/lose-"+keyName, func(t *testing.T) {
				name := state.name + "-" + keyName
				after := state.setup(t, name)
				require.NoError(t, client.Del(ctx, st.Keys(name)[k]).Err())
				before, err := st.Load(ctx, name)
				require.NoError(t, err, "Load after losing the %s", keyName)
				if after != nil {
					after(t)
				}
				if state.name == "forced-open" && keyName != "hash" {
					require.NotNil(t, before.Override, "the override lives in the hash, which is still there")
					assert.Equal(t, breaker.OverrideForceOpen, before.Override.Mode)
					return
				}
				cycle(t, st, name, p, 5*time.Second)
			})
		}
	}
}

// admitWhenDue admits calls on an open circuit until its timeout has passed
// and a probe is granted (polling Redis time with a deadline).
func admitWhenDue(t *testing.T, st *redisstore.Store, name string, p breaker.Policy) breaker.Admission {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		a, err := st.Admit(t.Context(), name, p)
		require.NoError(t, err)
		if a.Allowed {
			return a
		}
		time.Sleep(min(a.RetryAfter, 10*time.Millisecond) + time.Millisecond)
	}
	t.Fatalf("circuit %s admitted no call within 5s", name)
	return breaker.Admission{}
}

// cycle drives the circuit through ordinary calls (failures until it
// opens, then a successful probe once it is half-open) until it has
// opened and closed again, failing the test if that takes longer than
// timeout or any call fails.
func cycle(t *testing.T, st *redisstore.Store, name string, p breaker.Policy, timeout time.Duration) {
	t.Helper()
	require.NoError(t, cycleErr(t.Context(), st, name, p, timeout))
}

// cycleErr is cycle returning its failure.
func cycleErr(ctx context.Context, st *redisstore.Store, name string, p breaker.Policy, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	opened := false
	var last breaker.Admission
	for time.Now().Before(deadline) {
		a, err := st.Admit(ctx, name, p)
		if err != nil {
			return err
		}
		last = a
		if !a.Allowed {
			opened = opened || a.State == breaker.StateOpen
			time.Sleep(min(a.RetryAfter, 10*time.Millisecond) + time.Millisecond)
			continue
		}
		kind := breaker.OutcomeFailure
		if opened && a.State == breaker.StateHalfOpen {
			kind = breaker.OutcomeSuccess
		}
		r, err := st.Record(ctx, name, p, breaker.Outcome{Kind: kind, Generation: a.Generation, Probe: a.Probe})
		if err != nil {
			return err
		}
		if r.State == breaker.StateOpen {
			opened = true
		}
		if opened && kind == breaker.OutcomeSuccess && r.State == breaker.StateClosed {
			return nil
		}
	}
	return fmt.Errorf("circuit %s stuck: no trip-and-close cycle within %s (opened %v, last admission %+v)", name, timeout, opened, last)
}

// TestRecoveryGenerationAfterDataLoss shows what data loss (FLUSHALL, a
// restart without persistence, eviction) does to generations: the circuit
// starts again at generation 0, so the next transition published is
// generation 1, lower than transitions seen before the loss. A consumer of
// Watch events must not drop an event because its generation is not above
// the last one it saw. An outcome admitted before the loss is ignored.
func TestRecoveryGenerationAfterDataLoss(t *testing.T) {
	srv := redisserver.StartSingle(t)
	client := newClient(t, srv.Addr())
	st := openStore(t, client, redisstore.WithPrefix(newPrefix(t)), slowCalls)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	p := recoveryPolicy
	for range 3 { // three trip, half-open, close cycles: generation 9
		cycle(t, st, "gen", p, 5*time.Second)
	}
	a, err := st.Admit(ctx, "gen", p)
	require.NoError(t, err)
	require.Equal(t, uint64(9), a.Generation)

	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	events, err := st.Watch(watchCtx, "gen")
	require.NoError(t, err)
	require.NoError(t, client.FlushAll(ctx).Err())

	_, err = st.Record(ctx, "gen", p, breaker.Outcome{Kind: breaker.OutcomeFailure, Generation: a.Generation})
	require.NoError(t, err)
	s, err := st.Load(ctx, "gen")
	require.NoError(t, err)
	assert.Zero(t, s.Failures, "an outcome admitted before the loss is ignored")
	assert.Zero(t, s.Generation)

	cycle(t, st, "gen", p, 5*time.Second)
	select {
	case ev := <-events:
		assert.Equal(t, uint64(1), ev.Generation, "first transition after the loss")
		assert.Equal(t, breaker.StateOpen, ev.To)
		t.Logf("generation before the loss: 9; first transition after it: %+v", ev)
	case <-ctx.Done():
		t.Fatal("no transition published after the loss")
	}
	stopWatch()
	for range events { // until Watch closes it
	}
}

// TestRecoveryOOMFailingDependency measures how well breakers protect a
// dependency that fails every call while Redis refuses writes (noeviction
// at maxmemory), against the same with a healthy Redis.
//
// During OOM a failure cannot be recorded (the script's first write is
// refused), so the breaker starts a degraded episode and its local fallback
// counts the failure; the episode's probe is an Admit, which writes nothing
// on a closed circuit and succeeds, so the episode ends after 50ms and the
// probe's own call runs; its failure cannot be recorded either, and the
// next episode resumes the last one's fallback (tripped by then) and its
// backoff (see breaker's "Store failures"). So each replica runs about
// FailureThreshold calls, then one per probe, the probes 50, 100, 200,
// 400ms apart: within the 600ms spell at most 5 + 4 per replica, plus one
// for a probe in flight at a boundary.
func TestRecoveryOOMFailingDependency(t *testing.T) {
	srv := redisserver.StartSingle(t, redisserver.WithConfig("maxmemory-policy noeviction"))
	const replicas, spell = 2, 600 * time.Millisecond
	run := func(t *testing.T, prefix string) (calls, ran int, snaps []breaker.Snapshot) {
		var bs []*breaker.Breaker
		for range replicas {
			c := redis.NewClient(faultOptions(srv.Addr(), 1))
			t.Cleanup(func() { _ = c.Close() })
			b, err := breaker.New("dep", breaker.Config{
				FailureThreshold: 5,
				Timeout:          time.Second,
				Store:            openStore(t, c, redisstore.WithPrefix(prefix)),
			})
			require.NoError(t, err)
			bs = append(bs, b)
		}
		end := time.Now().Add(spell)
		for time.Now().Before(end) {
			for _, b := range bs {
				calls++
				_ = b.Do(t.Context(), func(context.Context) error { ran++; return errFlaky })
			}
			time.Sleep(time.Millisecond)
		}
		for _, b := range bs {
			s, err := b.Snapshot(t.Context())
			require.NoError(t, err)
			snaps = append(snaps, s)
		}
		return calls, ran, snaps
	}
	healthyCalls, healthyRan, healthy := run(t, newPrefix(t))
	for _, s := range healthy {
		assert.Equal(t, breaker.StateOpen, s.State, "healthy Redis: the shared circuit trips")
	}
	adminDo(t, srv, "CONFIG", "SET", "maxmemory", "1")
	oomCalls, oomRan, oom := run(t, newPrefix(t))
	adminDo(t, srv, "CONFIG", "SET", "maxmemory", "0")
	var storeErrors, degraded uint64
	for _, s := range oom {
		storeErrors += s.StoreErrors
		degraded += s.DegradedCalls
	}
	t.Logf("OOM PROTECTION: a dependency failing every call for %s, %d replicas: healthy Redis ran %d of %d calls; Redis refusing writes ran %d of %d (%d store errors, %d calls decided degraded)",
		spell, replicas, healthyRan, healthyCalls, oomRan, oomCalls, storeErrors, degraded)
	assert.LessOrEqual(t, healthyRan, replicas*5+replicas, "healthy: more calls ran than the threshold allows")
	assert.Positive(t, storeErrors, "no store error while Redis refused writes")
	assert.Positive(t, degraded, "no call decided degraded while Redis refused writes")
	assert.LessOrEqual(t, oomRan, replicas*(5+4+1), "refused writes: more calls ran than threshold + one per probe")
}
