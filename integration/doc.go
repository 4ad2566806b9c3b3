// Package integration holds tripline's tests against real redis-server
// processes: the store conformance suite (store/storetest) on a single node
// and on a Redis Cluster, fleet tests with several breakers on one circuit,
// and the fault-injection suite (kill -9, SIGSTOP/SIGCONT, SCRIPT FLUSH,
// FLUSHALL, CLIENT KILL, eviction, cluster failover, a faulty proxy).
//
// Every test file carries the build tag `integration`, so plain
// `go test ./...` compiles nothing here and needs no Redis. CI (.ci/run)
// installs redis-server and redis-cli where they are missing
// (.ci/install-redis.sh) and then runs
//
//	go test -race -tags integration ./integration/...
//
// The tests start their own servers with internal/redisserver, on free
// loopback ports (never 127.0.0.1:6379), and stop them by pid when they end,
// failed or not. TestMain fails the run at once when redis-server or
// redis-cli is not on PATH (the tests never skip for lack of Redis), and
// checks with go.uber.org/goleak that no goroutine outlives the tests:
// close every go-redis client, pub/sub and breaker a test creates.
package integration
