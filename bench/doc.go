// Package bench holds tripline's benchmarks against github.com/sony/gobreaker/v2.
// It is a module of its own so that the main module does not depend on
// gobreaker.
//
// In memory (issue 2): bench_test.go, tripline's Breaker on the memory
// store against gobreaker's in-process breaker. On Redis (issue 5):
// BenchmarkRedis in redis_test.go, tripline on store/redis (with its local
// view, and strict) against gobreaker's distributed breaker on a go-redis
// SharedDataStore (gobreakerstore_test.go) and a bare PING, on a
// redis-server the benchmark starts itself on a free loopback port; it
// also measures how fast a trip reaches another replica and the Redis
// memory a circuit takes. TestImpls and TestRedis check that every
// contender takes the path its benchmark claims (TestRedis needs
// redis-server on PATH and fails without it).
//
// run.sh runs the benchmarks and summarises them with benchstat (table.awk
// and redis-table.awk make the Markdown tables); BENCHMARKS.md at the
// repository root holds the figures.
package bench
