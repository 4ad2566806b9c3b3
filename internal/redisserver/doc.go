// Package redisserver starts real redis-server processes, single nodes,
// Redis Clusters and Sentinel setups (a master, its replicas and Sentinels,
// run as `redis-server --sentinel`), for integration tests, and stops them
// again.
//
// Nothing happens at import time: a server is started only when a test calls
// [StartSingle], [StartCluster] or [StartSentinel], and the package carries no build tag so
// that its unit tests run with plain `go test ./...`. The tests that start
// processes live behind the `integration` build tag.
//
// Every server:
//
//   - runs the redis-server found on PATH (the test fails, never skips, when
//     it is missing: run .ci/install-redis.sh);
//   - listens on 127.0.0.1 only, on a free port picked from 12000-21999
//     (never 6379), whose cluster bus port (port+10000, 22000-31999) is free
//     too, both below Linux's ephemeral range so that outgoing connections
//     cannot take them; ports are re-picked when redis-server finds its port
//     taken at start;
//   - keeps nothing on disk (save "", appendonly no) and has its own
//     t.TempDir() for its config file, log (redis.log), stdout/stderr
//     (stdout.log) and, for cluster nodes, nodes.conf;
//   - has one extra ACL user, [AdminUser], with every right and a random
//     password, which the package uses for its own connections (readiness
//     PING, cluster checks, [Server.Do]) and which replicas use to reach their
//     master (masteruser/masterauth). Tests can therefore turn the default
//     user off or give it a password without breaking the harness; tests that
//     list ACL users will see it;
//   - allows DEBUG from local connections (enable-debug-command local),
//     starts a replica's full sync at once (repl-diskless-sync-delay 0) and
//     shuts down at once on SIGTERM (shutdown-timeout 0);
//   - is stopped by t.Cleanup, even when the test fails: SIGCONT (in case it
//     was stopped), SIGTERM, then SIGKILL after the stop timeout, and the
//     process is reaped. On Linux the process also gets SIGKILL when the test
//     binary dies (Pdeathsig), so a timed-out test run leaves no servers
//     behind. Only processes this package started are ever signalled, and
//     only before they were reaped. When the test failed, the tail of each
//     server's log is written to the test log.
//
// Fault injection: [Server.Kill] (SIGKILL), [Server.Restart] (a fresh, empty
// server on the same port; a cluster node keeps its nodes.conf and rejoins),
// [Server.Stop] (SIGSTOP) and [Server.Cont] (SIGCONT). A [Proxy] in front
// of a server adds latency, loses replies after the server ran the command
// ([Proxy.DropReplies], [Proxy.MuteOpen]) and resets connections
// ([Proxy.ResetAll]). A [Cluster] node killed or stopped is failed over by
// its replica; [Cluster.WaitHealthy] waits for that.
//
// The package hands out addresses, not clients: tests build their own
// go-redis clients. [Server.Do] runs one command as [AdminUser] over a
// connection of its own, for setup and inspection (CONFIG SET, SCRIPT FLUSH,
// CLIENT KILL, INFO) without a go-redis client.
//
// The methods of [Server] and [Cluster] report failures with t.Fatalf on the
// t given to StartSingle/StartCluster, so call them from that test's
// goroutine (not from a subtest or a helper goroutine).
//
// Requires Redis 6.2 or later (ACL channel rules "&*"); developed against
// Redis 7.0.
package redisserver
