//go:build integration

package integration

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tripline/tripline/breaker"
	"github.com/tripline/tripline/internal/redisserver"
)

// TestFaultClusterFailover kills (SIGKILL) the Redis Cluster master that
// serves the forced-open circuit, under load from four replicas with
// ClusterClients (3 masters with one replica each, cluster-node-timeout
// 500ms). Its replica is promoted; the circuits it serves are degraded
// until then, the others are not touched; the override, replicated before
// the kill, survives the failover. The old master then comes back and
// rejoins as a replica.
//
// With cluster-require-full-coverage yes (Redis's default), the whole
// cluster answers CLUSTERDOWN from the moment the master is marked failed
// until its replica takes over, so every circuit degrades for that time;
// with "no", only the circuits on the killed master do.
//
// What a failover can lose: replication is asynchronous, so writes the
// master acknowledged but had not sent to its replica when it died are
// gone (counted here on the ledger circuit when it lives on that master:
// failures acknowledged minus failures counted after the failover).
func TestFaultClusterFailover(t *testing.T) {
	for _, fullCoverage := range []string{"yes", "no"} {
		t.Run("full-coverage-"+fullCoverage, func(t *testing.T) { clusterFailover(t, fullCoverage) })
	}
}

func clusterFailover(t *testing.T, fullCoverage string) {
	cl := redisserver.StartCluster(t, 3, 1, redisserver.WithClusterNodeTimeout(500*time.Millisecond),
		redisserver.WithConfig("cluster-require-full-coverage "+fullCoverage))
	newC := func() redis.UniversalClient { return redis.NewClusterClient(faultClusterOptions(cl.Addrs())) }
	adminOpts := faultClusterOptions(cl.Addrs())
	adminOpts.DialTimeout, adminOpts.ReadTimeout, adminOpts.WriteTimeout, adminOpts.PoolTimeout = time.Second, time.Second, time.Second, time.Second
	f := newFaultFleet(t, redis.NewClusterClient(adminOpts), standardReplicas(newC))
	f.mayLoseWrites = true
	heldKey := f.admin.Keys(circuitNames[cHeld])[0]
	victim := cl.MasterForKey(heldKey)
	var onVictim []string
	for _, name := range circuitNames {
		if cl.MasterForKey(f.admin.Keys(name)[0]) == victim {
			onVictim = append(onVictim, name)
		}
	}
	ledgerOnVictim := slices.Contains(onVictim, circuitNames[cLedger])
	cl.WaitReplicated(10 * time.Second)
	var failover time.Duration
	runFault(t, f, func() faultReport {
		killed := time.Now()
		victim.Kill()
		cl.WaitHealthy(30 * time.Second)
		failover = time.Since(killed)
		require.NotEqual(t, victim, cl.MasterForKey(heldKey), "the held circuit's slot is still on the killed master")
		victim.Restart()
		cl.WaitHealthy(30 * time.Second)
		f.setPhase(phaseAfter)
		return faultReport{fault: "cluster-master-kill", injected: 1,
			extra: fmt.Sprintf("failoverIn=%s onKilledMaster=%v", failover.Round(time.Millisecond), onVictim)}
	})
	assert.Len(t, cl.ReplicasOf(cl.MasterForKey(heldKey)), 1, "the old master rejoined as a replica")
	held, err := f.admin.Load(t.Context(), circuitNames[cHeld])
	require.NoError(t, err)
	require.NotNil(t, held.Override, "the override was replicated before the kill")
	assert.Equal(t, breaker.OverrideForceOpen, held.Override.Mode)
	assert.Positive(t, f.episodes.Load(), "no degraded episode while the slot had no master")
	if fullCoverage == "no" {
		f.mu.Lock()
		for name, n := range f.errsBy {
			if slices.Contains(onVictim, name) {
				continue
			}
			// A 50ms call timeout can fire on any circuit when the 2-core CI
			// machine is starved (degradedBefore counts those before the
			// fault); any other error off the killed master is a failure.
			if strings.Contains(f.firstErr[name], "no reply within the call timeout") {
				t.Logf("%d store errors on circuit %s off the killed master: call timeouts (%s)", n, name, f.firstErr[name])
				continue
			}
			assert.Fail(t, "store errors off the killed master", "%d store errors on circuit %s, which the killed master did not serve: %s", n, name, f.firstErr[name])
		}
		f.mu.Unlock()
	}
	if ledgerOnVictim {
		t.Logf("FAILOVER: ledger lived on the killed master: %d failures acknowledged, %d counted after the failover (%d lost to asynchronous replication)",
			f.ledgerOK.Load(), f.ledgerCounted, f.ledgerOK.Load()-int64(f.ledgerCounted))
	}
}
