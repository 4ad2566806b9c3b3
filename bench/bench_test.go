package bench

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/sony/gobreaker/v2"
	"github.com/tripline/tripline/breaker"
)

// Every benchmark runs each implementation side by side in one binary, as
// sub-benchmarks named so that benchstat can put them in columns:
//
//	Benchmark<Path>/g=<goroutines>/impl=<gobreaker|tripline-do|tripline-execute|...>
//
// g=1 is a plain serial loop. The other g values use b.RunParallel with
// b.SetParallelism(g/GOMAXPROCS): GOMAXPROCS x parallelism goroutines, so
// the name gives the real goroutine count (2, 8 and 64 at GOMAXPROCS=2;
// rounded up to a multiple of GOMAXPROCS elsewhere).
//
// Besides ns/op (wall time), each benchmark reports cpu-ns/op: the CPU
// time the whole process spent per call (all threads, GC included). Other
// work on the machine stretches wall time while this process waits for a
// core; it barely changes CPU time, so cpu-ns/op is the steadier measure of
// what a call costs on a shared machine. Under contention the two differ:
// a goroutine blocked on a lock costs wall time but no CPU.
//
// Both breakers use their defaults except where a path needs otherwise
// (a threshold that cannot be reached on the failure path, a threshold of 1
// and a timeout of an hour on the open path); both are asked the same thing.

// goroutines are the concurrency levels every path runs at.
var goroutines = []int{1, 2, 8, 64}

// failEvery: on the failure path, one call in failEvery succeeds, so the
// consecutive-failure count keeps resetting far below the threshold and
// neither breaker ever trips; the other calls take the failure path.
const failEvery = 1000

// neverTrips is a threshold the failure path cannot reach.
const neverTrips = breaker.MaxFailureThreshold

var errFail = errors.New("bench: the call failed")

// The protected functions: package-level, so passing them allocates nothing.
func okDo(context.Context) error             { return nil }
func failDo(context.Context) error           { return errFail }
func okExecute(context.Context) (int, error) { return 1, nil }
func okGobreaker() (int, error)              { return 1, nil }
func failGobreaker() (int, error)            { return 0, errFail }

// op is one protected call; i counts the calls of the calling goroutine.
type op func(i int) error

// impl is one contender on one path: setup builds the breaker, puts it in
// the state the path needs and returns the call and a check that runs after
// the timed loop and fails the benchmark if the breaker left that state.
type impl struct {
	name  string
	setup func(tb testing.TB) (op, func(tb testing.TB))
}

// run runs every impl at every concurrency level. The impls of one level
// run back to back, so that load from outside the benchmark falls on
// them alike.
func run(b *testing.B, impls []impl) {
	for _, g := range goroutines {
		p := 0
		if g > 1 {
			procs := runtime.GOMAXPROCS(0)
			p = (g + procs - 1) / procs
			g = p * procs
		}
		for _, im := range impls {
			b.Run(fmt.Sprintf("g=%d/impl=%s", g, im.name), func(b *testing.B) {
				call, check := im.setup(b)
				b.ReportAllocs()
				cpu0, cpuOK := cpuTime()
				if p == 0 {
					i := 0
					for b.Loop() {
						_ = call(i)
						i++
					}
				} else {
					b.SetParallelism(p)
					b.ResetTimer()
					b.RunParallel(func(pb *testing.PB) {
						for i := 0; pb.Next(); i++ {
							_ = call(i)
						}
					})
				}
				b.StopTimer()
				if cpu1, ok := cpuTime(); cpuOK && ok {
					b.ReportMetric(float64(cpu1-cpu0)/float64(b.N), "cpu-ns/op")
				}
				check(b)
			})
		}
	}
}

func newTripline(tb testing.TB, cfg breaker.Config) *breaker.Breaker {
	tb.Helper()
	br, err := breaker.New("bench", cfg)
	if err != nil {
		tb.Fatalf("breaker.New: %v", err)
	}
	return br
}

// wantTriplineState fails tb unless br is in state want at generation gen.
func wantTriplineState(br *breaker.Breaker, want breaker.State, gen uint64) func(testing.TB) {
	return func(tb testing.TB) {
		tb.Helper()
		s, err := br.Snapshot(context.Background())
		if err != nil {
			tb.Fatalf("Snapshot: %v", err)
		}
		if s.State != want || s.Generation != gen {
			tb.Fatalf("tripline breaker is %s at generation %d, want %s at generation %d", s.State, s.Generation, want, gen)
		}
	}
}

// wantGobreakerState fails tb unless cb is in state want.
func wantGobreakerState(cb interface{ State() gobreaker.State }, want gobreaker.State) func(testing.TB) {
	return func(tb testing.TB) {
		tb.Helper()
		if got := cb.State(); got != want {
			tb.Fatalf("gobreaker is %s, want %s", got, want)
		}
	}
}

// The success path in a circuit that has state in its store (it has
// recorded a failure once, then a success): the steady state of a circuit
// that has seen any failure in the life of the process.
func successImpls() []impl {
	ctx := context.Background()
	stored := func(tb testing.TB) *breaker.Breaker {
		br := newTripline(tb, breaker.Config{})
		_ = br.Do(ctx, failDo)
		if err := br.Do(ctx, okDo); err != nil {
			tb.Fatalf("Do after one failure: %v", err)
		}
		return br
	}
	return []impl{
		{"gobreaker", func(tb testing.TB) (op, func(testing.TB)) {
			cb := gobreaker.NewCircuitBreaker[int](gobreaker.Settings{Name: "bench"})
			_, _ = cb.Execute(failGobreaker)
			return func(int) error { _, err := cb.Execute(okGobreaker); return err },
				wantGobreakerState(cb, gobreaker.StateClosed)
		}},
		{"tripline-do", func(tb testing.TB) (op, func(testing.TB)) {
			br := stored(tb)
			return func(int) error { return br.Do(ctx, okDo) },
				wantTriplineState(br, breaker.StateClosed, 0)
		}},
		{"tripline-execute", func(tb testing.TB) (op, func(testing.TB)) {
			br := stored(tb)
			return func(int) error { _, err := breaker.Execute(ctx, br, okExecute); return err },
				wantTriplineState(br, breaker.StateClosed, 0)
		}},
	}
}

// BenchmarkSuccess measures the closed-state success path of a circuit the
// store holds state for.
func BenchmarkSuccess(b *testing.B) { run(b, successImpls()) }

// The success path in a circuit that has never failed: the memory store
// holds nothing for it.
func untouchedImpls() []impl {
	ctx := context.Background()
	return []impl{
		{"gobreaker", func(tb testing.TB) (op, func(testing.TB)) {
			cb := gobreaker.NewCircuitBreaker[int](gobreaker.Settings{Name: "bench"})
			return func(int) error { _, err := cb.Execute(okGobreaker); return err },
				wantGobreakerState(cb, gobreaker.StateClosed)
		}},
		{"tripline-do", func(tb testing.TB) (op, func(testing.TB)) {
			br := newTripline(tb, breaker.Config{})
			return func(int) error { return br.Do(ctx, okDo) },
				wantTriplineState(br, breaker.StateClosed, 0)
		}},
		{"tripline-execute", func(tb testing.TB) (op, func(testing.TB)) {
			br := newTripline(tb, breaker.Config{})
			return func(int) error { _, err := breaker.Execute(ctx, br, okExecute); return err },
				wantTriplineState(br, breaker.StateClosed, 0)
		}},
	}
}

// BenchmarkSuccessUntouched measures the closed-state success path of a
// circuit that has never failed.
func BenchmarkSuccessUntouched(b *testing.B) { run(b, untouchedImpls()) }

func failureImpls() []impl {
	ctx := context.Background()
	return []impl{
		{"gobreaker", func(tb testing.TB) (op, func(testing.TB)) {
			cb := gobreaker.NewCircuitBreaker[int](gobreaker.Settings{
				Name:        "bench",
				ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= neverTrips },
			})
			return func(i int) error {
					fn := failGobreaker
					if i%failEvery == failEvery-1 {
						fn = okGobreaker
					}
					_, err := cb.Execute(fn)
					return err
				},
				wantGobreakerState(cb, gobreaker.StateClosed)
		}},
		{"tripline-do", func(tb testing.TB) (op, func(testing.TB)) {
			br := newTripline(tb, breaker.Config{FailureThreshold: neverTrips})
			return func(i int) error {
					fn := failDo
					if i%failEvery == failEvery-1 {
						fn = okDo
					}
					return br.Do(ctx, fn)
				},
				wantTriplineState(br, breaker.StateClosed, 0)
		}},
	}
}

// BenchmarkFailure measures the closed-state failure path: 999 calls in
// 1000 fail and are counted, one succeeds, and the circuit never trips.
func BenchmarkFailure(b *testing.B) { run(b, failureImpls()) }

func openImpls() []impl {
	ctx := context.Background()
	return []impl{
		{"gobreaker", func(tb testing.TB) (op, func(testing.TB)) {
			cb := gobreaker.NewCircuitBreaker[int](gobreaker.Settings{
				Name:        "bench",
				Timeout:     time.Hour,
				ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= 1 },
			})
			_, _ = cb.Execute(failGobreaker)
			if _, err := cb.Execute(okGobreaker); !errors.Is(err, gobreaker.ErrOpenState) {
				tb.Fatalf("gobreaker after a failure: got %v, want %v", err, gobreaker.ErrOpenState)
			}
			return func(int) error { _, err := cb.Execute(okGobreaker); return err },
				wantGobreakerState(cb, gobreaker.StateOpen)
		}},
		{"tripline-do", func(tb testing.TB) (op, func(testing.TB)) {
			br := newTripline(tb, breaker.Config{FailureThreshold: 1, Timeout: time.Hour})
			_ = br.Do(ctx, failDo)
			if err := br.Do(ctx, okDo); !errors.Is(err, breaker.ErrOpen) {
				tb.Fatalf("tripline after a failure: got %v, want %v", err, breaker.ErrOpen)
			}
			return func(int) error { return br.Do(ctx, okDo) },
				wantTriplineState(br, breaker.StateOpen, 1)
		}},
	}
}

// BenchmarkOpen measures the rejection of a call by an open circuit.
func BenchmarkOpen(b *testing.B) { run(b, openImpls()) }

func twoStepImpls() []impl {
	ctx := context.Background()
	return []impl{
		{"gobreaker", func(tb testing.TB) (op, func(testing.TB)) {
			cb := gobreaker.NewTwoStepCircuitBreaker[int](gobreaker.Settings{Name: "bench"})
			return func(int) error {
					done, err := cb.Allow()
					if err != nil {
						return err
					}
					done(nil)
					return nil
				},
				wantGobreakerState(cb, gobreaker.StateClosed)
		}},
		{"tripline-allow", func(tb testing.TB) (op, func(testing.TB)) {
			br := newTripline(tb, breaker.Config{})
			return func(int) error {
					done, err := br.Allow(ctx)
					if err != nil {
						return err
					}
					done(nil)
					return nil
				},
				wantTriplineState(br, breaker.StateClosed, 0)
		}},
	}
}

// BenchmarkTwoStep measures the two-step form (Allow, then done) on the
// closed-state success path of a circuit with no stored state.
func BenchmarkTwoStep(b *testing.B) { run(b, twoStepImpls()) }
