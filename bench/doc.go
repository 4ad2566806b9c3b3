// Package bench holds tripline's benchmarks against github.com/sony/gobreaker/v2.
// It is a module of its own so that the main module does not depend on
// gobreaker. The benchmarks live in bench_test.go; run.sh runs them and
// summarises them with benchstat; BENCHMARKS.md at the repository root holds
// the figures.
package bench
