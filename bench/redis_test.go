package bench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/sony/gobreaker/v2"
	"github.com/tripline/tripline/breaker"
	redisstore "github.com/tripline/tripline/store/redis"
)

// The Redis benchmarks (issue 5) are sub-benchmarks of BenchmarkRedis, so
// that one redis-server, started by the benchmark on a free loopback port,
// serves every contender of a run:
//
//	BenchmarkRedis/<Path>/g=<goroutines>/impl=<contender>
//
// Contenders on the closed-state success path:
//
//	gobreaker-memory   gobreaker.CircuitBreaker[int].Execute, in process
//	ours-memory        breaker.Breaker.Do on the memory store
//	ours-redis         breaker.Breaker.Do on redisstore (local view)
//	ours-redis-strict  breaker.Breaker.Do on redisstore.WithStrict()
//	gobreaker-redis    gobreaker.DistributedCircuitBreaker[int].Execute on
//	                   gobreakerStore (go-redis: SET NX PX lock, GET, SET)
//	redis-ping         go-redis Client.Ping: one bare round trip
//
// Each contender has its own go-redis client (default options: a pool of
// 10 connections per GOMAXPROCS) and its own circuit. Metrics, besides
// ns/op and cpu-ns/op:
//
//	p50-ns, p99-ns  latency of one call, from a log-linear histogram (±3%)
//	                per goroutine; every call is timed for contenders that
//	                go to Redis on every call, one in 16 for the others
//	                (two clock reads cost ~90ns here)
//	trips/op        commands the contender's client sent per call (round
//	                trips; a script call is one), counted by a go-redis hook
//	cmds/op         commands Redis ran per call, from INFO commandstats
//	                deltas around the timed loop: the commands run inside
//	                scripts are counted too
//
// Both command counts include what the contender sends in the background
// during the loop (the local view's coalesced writes and refreshes).

// redisGoroutines are the concurrency levels of the Redis paths.
var redisGoroutines = []int{1, 8, 64}

// contender is one implementation on one Redis benchmark path.
type contender struct {
	name string
	// every: time one call in every (1: all).
	every int
	// setup builds the contender in the state its path needs and returns
	// the call, a check run after the loop that fails tb if the contender
	// left that state or met an error it should not have, and its client's
	// command counter (nil for in-process contenders).
	setup func(tb testing.TB, env *redisEnv) (op, func(testing.TB), *countHook)
}

// sampleInProcess is the sampling rate of contenders that do not go to
// Redis on every call.
const sampleInProcess = 16

// runRedis runs every contender at every level of redisGoroutines, the
// contenders of one level back to back.
func runRedis(b *testing.B, env *redisEnv, cs []contender) {
	for _, g := range redisGoroutines {
		p := 0
		if g > 1 {
			procs := runtime.GOMAXPROCS(0)
			p = (g + procs - 1) / procs
			g = p * procs
		}
		for _, c := range cs {
			b.Run(fmt.Sprintf("g=%d/impl=%s", g, c.name), func(b *testing.B) {
				measure(b, env, c, p)
			})
		}
	}
}

// measure runs one contender's timed loop: serially when p is 0, else
// with b.RunParallel at parallelism p.
func measure(b *testing.B, env *redisEnv, c contender, p int) {
	call, check, hook := c.setup(b, env)
	every := c.every
	var hs histSet
	b.ReportAllocs()
	cmds0 := env.commandCalls(b)
	var sent0 int64
	if hook != nil {
		sent0 = hook.sent()
	}
	cpu0, cpuOK := cpuTime()
	if p == 0 {
		h := new(hist)
		i := 0
		for b.Loop() {
			if i%every == 0 {
				t0 := time.Now()
				_ = call(i)
				h.record(time.Since(t0))
			} else {
				_ = call(i)
			}
			i++
		}
		hs.add(h)
	} else {
		b.SetParallelism(p)
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			h := new(hist)
			for i := 0; pb.Next(); i++ {
				if i%every == 0 {
					t0 := time.Now()
					_ = call(i)
					h.record(time.Since(t0))
				} else {
					_ = call(i)
				}
			}
			hs.add(h)
		})
	}
	b.StopTimer()
	cpu1, cpuOK1 := cpuTime()
	n := float64(b.N)
	if cpuOK && cpuOK1 {
		b.ReportMetric(float64(cpu1-cpu0)/n, "cpu-ns/op")
	}
	var sent int64
	if hook != nil {
		sent = hook.sent() - sent0
	}
	b.ReportMetric(float64(sent)/n, "trips/op")
	b.ReportMetric(float64(env.commandCalls(b)-cmds0)/n, "cmds/op")
	b.ReportMetric(hs.all.quantile(0.50), "p50-ns")
	b.ReportMetric(hs.all.quantile(0.99), "p99-ns")
	check(b)
}

// BenchmarkRedis runs every Redis path on one redis-server of its own.
func BenchmarkRedis(b *testing.B) {
	env := startRedis(b)
	b.Run("Success", func(b *testing.B) { runRedis(b, env, redisSuccess()) })
	b.Run("Failure", func(b *testing.B) { runRedis(b, env, redisFailure()) })
	b.Run("Open", func(b *testing.B) { runRedis(b, env, redisOpen()) })
	b.Run("Propagation", func(b *testing.B) {
		for _, strict := range []bool{false, true} {
			b.Run("impl="+oursName(strict), func(b *testing.B) { benchPropagation(b, env, strict) })
		}
	})
	b.Run("Memory", func(b *testing.B) {
		for _, window := range []bool{false, true} {
			mode := "consecutive"
			if window {
				mode = "window"
			}
			b.Run("mode="+mode+"/impl=ours-redis", func(b *testing.B) { benchMemory(b, env, window) })
		}
	})
}

func oursName(strict bool) string {
	if strict {
		return "ours-redis-strict"
	}
	return "ours-redis"
}

// benchCallTimeout replaces the store's default call timeout (50ms). At 64
// goroutines on this 2-core machine a strict store's round trip (the wait
// for one of the pool's connections included) sometimes takes longer than
// 50ms; the call then fails and the Breaker decides calls locally for a
// while (a degraded episode), which a benchmark must not measure as the
// store's speed. With 1s the round trips are the same, and a slow one is
// measured as slow; the check after the loop still fails the benchmark on
// any store error.
const benchCallTimeout = time.Second

// newOurs returns a Breaker on a new redisstore Store (strict or with its
// local view) over a client of its own, under a prefix of its own, with
// benchCallTimeout; the Store is closed when tb ends. A local view is
// warm (warmView) before newOurs returns.
func newOurs(tb testing.TB, env *redisEnv, name string, strict bool, cfg breaker.Config) (*breaker.Breaker, *countHook) {
	tb.Helper()
	c, hook := env.client(tb)
	opts := []redisstore.Option{
		redisstore.WithPrefix("p-" + name),
		redisstore.WithCallTimeout(benchCallTimeout),
		redisstore.WithLogger(slog.New(warnings)),
	}
	if strict {
		opts = append(opts, redisstore.WithStrict())
	}
	st := redisstore.New(c, opts...)
	tb.Cleanup(func() { _ = st.Close() })
	cfg.Store = st
	if cfg.Logger == nil {
		cfg.Logger = slog.New(warnings)
	}
	br, err := breaker.New(name, cfg)
	if err != nil {
		tb.Fatalf("breaker.New: %v", err)
	}
	if !strict {
		warmView(tb, br, hook)
	}
	return br, hook
}

// warmView makes successful calls on br until one sends no command: its
// store's subscription is live and the view fresh, so calls are decided
// locally. Until the subscription is live (it starts with the first call)
// every admission asks Redis: a loaded machine took dozens of calls, which
// the round-trip checks counted against the local view.
func warmView(tb testing.TB, br *breaker.Breaker, hook *countHook) {
	tb.Helper()
	ctx := context.Background()
	for deadline := time.Now().Add(10 * time.Second); ; {
		before := hook.sent()
		if err := br.Do(ctx, okDo); err != nil {
			tb.Fatalf("warming the local view: %v", err)
		}
		if hook.sent() == before {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("a call still asks Redis 10s after the first: the subscription is not live")
		}
		time.Sleep(time.Millisecond) // waiting for the subscription, polling with a deadline
	}
}

// warnings keeps the first warnings Breakers and Stores log (store
// failures, degraded episodes), so that a check that finds store errors can
// say which.
var warnings = &warnLog{}

// warnLog is a slog.Handler that keeps the first few records at Warn and
// above.
type warnLog struct {
	mu   sync.Mutex
	msgs []string
}

func (w *warnLog) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }

func (w *warnLog) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Message)
	r.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		return true
	})
	w.mu.Lock()
	if len(w.msgs) < 5 {
		w.msgs = append(w.msgs, b.String())
	}
	w.mu.Unlock()
	return nil
}

func (w *warnLog) WithAttrs([]slog.Attr) slog.Handler { return w }
func (w *warnLog) WithGroup(string) slog.Handler      { return w }

func (w *warnLog) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.Join(w.msgs, "; ")
}

// wantOurs fails tb unless br is in state want at generation gen, and never
// met a store error (a Breaker whose store fails keeps deciding calls on
// its own, which would make a benchmark measure the fallback).
func wantOurs(br *breaker.Breaker, want breaker.State, gen uint64) func(testing.TB) {
	return func(tb testing.TB) {
		tb.Helper()
		s, err := br.Snapshot(context.Background())
		if err != nil {
			tb.Fatalf("Snapshot: %v", err)
		}
		if s.StoreErrors != 0 || s.Degraded {
			tb.Fatalf("tripline breaker met %d store errors (degraded now: %v); first warnings logged in this run: %v", s.StoreErrors, s.Degraded, warnings)
		}
		if s.State != want || s.Generation != gen {
			tb.Fatalf("tripline breaker is %s at generation %d, want %s at generation %d", s.State, s.Generation, want, gen)
		}
	}
}

// errCount counts errors a contender's calls should not have met.
type errCount struct {
	n    atomic.Int64
	last atomic.Value // error
}

func (e *errCount) add(err error) {
	e.n.Add(1)
	e.last.Store(fmt.Sprint(err))
}

func (e *errCount) check(tb testing.TB) {
	tb.Helper()
	if n := e.n.Load(); n != 0 {
		tb.Fatalf("%d calls met an unexpected error, the last: %v", n, e.last.Load())
	}
}

// newGobreakerRedis returns a gobreaker distributed breaker on a
// gobreakerStore over a client of its own.
func newGobreakerRedis(tb testing.TB, env *redisEnv, st gobreaker.Settings) (*gobreaker.DistributedCircuitBreaker[int], *countHook) {
	tb.Helper()
	c, hook := env.client(tb)
	cb, err := gobreaker.NewDistributedCircuitBreaker[int](newGobreakerStore(c), st)
	if err != nil {
		tb.Fatalf("gobreaker.NewDistributedCircuitBreaker: %v", err)
	}
	return cb, hook
}

func wantGobreakerRedis(cb *gobreaker.DistributedCircuitBreaker[int], want gobreaker.State, errs *errCount) func(testing.TB) {
	return func(tb testing.TB) {
		tb.Helper()
		errs.check(tb)
		got, err := cb.State()
		if err != nil {
			tb.Fatalf("gobreaker State: %v", err)
		}
		if got != want {
			tb.Fatalf("gobreaker is %s, want %s", got, want)
		}
	}
}

// inProcess wraps an impl of the in-memory benchmarks as a contender.
func inProcess(name string, im impl) contender {
	return contender{name, sampleInProcess, func(tb testing.TB, _ *redisEnv) (op, func(testing.TB), *countHook) {
		call, check := im.setup(tb)
		return call, check, nil
	}}
}

// redisSuccess: the closed-state success path of a circuit that has state
// in its store (one failure, then a success, before the loop).
func redisSuccess() []contender {
	ctx := context.Background()
	mem := successImpls()
	ours := func(strict bool) contender {
		every := sampleInProcess
		if strict {
			every = 1
		}
		return contender{oursName(strict), every, func(tb testing.TB, env *redisEnv) (op, func(testing.TB), *countHook) {
			br, hook := newOurs(tb, env, newName("success"), strict, breaker.Config{})
			_ = br.Do(ctx, failDo)
			for range 3 {
				if err := br.Do(ctx, okDo); err != nil {
					tb.Fatalf("Do after one failure: %v", err)
				}
			}
			return func(int) error { return br.Do(ctx, okDo) }, wantOurs(br, breaker.StateClosed, 0), hook
		}}
	}
	return []contender{
		inProcess("gobreaker-memory", mem[0]),
		inProcess("ours-memory", mem[1]),
		ours(false),
		ours(true),
		{"gobreaker-redis", 1, func(tb testing.TB, env *redisEnv) (op, func(testing.TB), *countHook) {
			cb, hook := newGobreakerRedis(tb, env, gobreaker.Settings{Name: newName("success")})
			_, _ = cb.Execute(failGobreaker)
			if _, err := cb.Execute(okGobreaker); err != nil {
				tb.Fatalf("gobreaker Execute after one failure: %v", err)
			}
			errs := new(errCount)
			return func(int) error {
				_, err := cb.Execute(okGobreaker)
				if err != nil {
					errs.add(err)
				}
				return err
			}, wantGobreakerRedis(cb, gobreaker.StateClosed, errs), hook
		}},
		{"redis-ping", 1, func(tb testing.TB, env *redisEnv) (op, func(testing.TB), *countHook) {
			c, hook := env.client(tb)
			errs := new(errCount)
			return func(int) error {
				err := c.Ping(ctx).Err()
				if err != nil {
					errs.add(err)
				}
				return err
			}, errs.check, hook
		}},
	}
}

// redisFailure: the closed-state failure path; one call in failEvery
// succeeds, the others fail and are counted, and the circuit never trips.
func redisFailure() []contender {
	ctx := context.Background()
	ours := func(strict bool) contender {
		return contender{oursName(strict), 1, func(tb testing.TB, env *redisEnv) (op, func(testing.TB), *countHook) {
			br, hook := newOurs(tb, env, newName("failure"), strict, breaker.Config{FailureThreshold: neverTrips})
			_ = br.Do(ctx, failDo)
			return func(i int) error {
				fn := failDo
				if i%failEvery == failEvery-1 {
					fn = okDo
				}
				return br.Do(ctx, fn)
			}, wantOurs(br, breaker.StateClosed, 0), hook
		}}
	}
	return []contender{ours(false), ours(true)}
}

// redisOpen: the rejection of a call by an open circuit (threshold 1,
// timeout 1h, one failure).
func redisOpen() []contender {
	ctx := context.Background()
	ours := func(strict bool) contender {
		every := sampleInProcess
		if strict {
			every = 1
		}
		return contender{oursName(strict), every, func(tb testing.TB, env *redisEnv) (op, func(testing.TB), *countHook) {
			br, hook := newOurs(tb, env, newName("open"), strict, breaker.Config{FailureThreshold: 1, Timeout: time.Hour})
			_ = br.Do(ctx, failDo)
			for range 3 {
				if err := br.Do(ctx, okDo); !errors.Is(err, breaker.ErrOpen) {
					tb.Fatalf("Do after a failure: got %v, want %v", err, breaker.ErrOpen)
				}
			}
			return func(int) error { return br.Do(ctx, okDo) }, wantOurs(br, breaker.StateOpen, 1), hook
		}}
	}
	return []contender{ours(false), ours(true)}
}

// propagation measures, trip after trip, how long after the failing call
// that trips the circuit on replica A returns replica B, which only makes
// calls, rejects its first call. A and B are Breakers on two Stores with
// clients of their own (two replicas); strict makes both Stores strict.
// After each trip A resets the circuit and waits until B admits calls
// again. It records every delay in h (a B rejection that came before A's
// call returned counts as 0) and returns how many came before.
func propagation(tb testing.TB, env *redisEnv, strict bool, trips int, h *hist) (early int) {
	tb.Helper()
	ctx := context.Background()
	name := newName("propagation")
	var tripped atomic.Int64
	cfg := breaker.Config{FailureThreshold: 1, Timeout: time.Hour}
	cfgA := cfg
	cfgA.OnStateChange = func(_ string, _, to breaker.State) {
		if to == breaker.StateOpen {
			tripped.Add(1)
		}
	}
	a, _ := newOurs(tb, env, name, strict, cfgA)
	bb, _ := newOurs(tb, env, name, strict, cfg) // same name, same prefix: the same circuit

	ready := make(chan struct{})
	rejected := make(chan time.Time)
	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- replicaB(bb, ready, rejected, stop) }()
	defer func() {
		close(stop)
		if err := <-done; err != nil {
			tb.Errorf("%v", err)
		}
	}()
	const wait = 5 * time.Second
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for i := range trips {
		timer.Reset(wait)
		select {
		case <-ready:
		case <-timer.C:
			tb.Fatalf("trip %d: replica B still rejects %v after the reset", i, wait)
		}
		before := tripped.Load()
		_ = a.Do(ctx, failDo)
		returned := time.Now()
		if tripped.Load() != before+1 {
			tb.Fatalf("trip %d: replica A's failure did not trip the circuit", i)
		}
		timer.Reset(wait)
		select {
		case at := <-rejected:
			d := at.Sub(returned)
			if d < 0 {
				early++
			}
			h.record(d)
		case <-timer.C:
			tb.Fatalf("trip %d: replica B saw no rejection %v after the trip", i, wait)
		}
		if err := a.Reset(ctx); err != nil {
			tb.Fatalf("trip %d: Reset: %v", i, err)
		}
	}
	wantOurs(a, breaker.StateClosed, uint64(2*trips))(tb)
	return early
}

// replicaB makes calls, and only calls, until stop is closed: once it is
// admitted again after a trip it sends on ready, then it calls until it is
// rejected and sends the time of that first rejection on rejected.
func replicaB(br *breaker.Breaker, ready chan<- struct{}, rejected chan<- time.Time, stop <-chan struct{}) error {
	ctx := context.Background()
	stopped := func() bool {
		select {
		case <-stop:
			return true
		default:
			return false
		}
	}
	for {
		for {
			err := br.Do(ctx, okDo)
			if err == nil {
				break
			}
			if !errors.Is(err, breaker.ErrOpen) {
				return fmt.Errorf("replica B, waiting to be admitted: %w", err)
			}
			if stopped() {
				return nil
			}
		}
		select {
		case ready <- struct{}{}:
		case <-stop:
			return nil
		}
		for {
			err := br.Do(ctx, okDo)
			if errors.Is(err, breaker.ErrOpen) {
				at := time.Now()
				select {
				case rejected <- at:
				case <-stop:
					return nil
				}
				break
			}
			if err != nil {
				return fmt.Errorf("replica B, waiting for a rejection: %w", err)
			}
			if stopped() {
				return nil
			}
		}
	}
}

// benchPropagation: one op is one trip (and its reset); ns/op is the
// length of that cycle, p50-ns and p99-ns the propagation delay.
func benchPropagation(b *testing.B, env *redisEnv, strict bool) {
	h := new(hist)
	early := propagation(b, env, strict, b.N, h)
	b.ReportMetric(h.quantile(0.50), "p50-ns")
	b.ReportMetric(h.quantile(0.99), "p99-ns")
	b.ReportMetric(h.quantile(1), "max-ns")
	b.ReportMetric(float64(early)/float64(b.N), "early/op")
}

// memoryThreshold is the failure threshold of the memory figures.
const memoryThreshold = 5

// circuitMemory trips a new circuit (memoryThreshold failures on one
// replica) and returns the bytes MEMORY USAGE gives for its state keys
// (Store.Keys: hash, failure window, probe leases).
func circuitMemory(tb testing.TB, env *redisEnv, br *breaker.Breaker, st *redisstore.Store) int64 {
	tb.Helper()
	ctx := context.Background()
	for range memoryThreshold {
		_ = br.Do(ctx, failDo)
	}
	if err := br.Do(ctx, okDo); !errors.Is(err, breaker.ErrOpen) {
		tb.Fatalf("after %d failures: got %v, want %v", memoryThreshold, err, breaker.ErrOpen)
	}
	if s, err := br.Snapshot(ctx); err != nil || s.StoreErrors != 0 {
		// A store error makes a degraded episode: its local fallback trips
		// on its own, and Redis holds nothing to measure.
		tb.Fatalf("the trip met store errors (%d; snapshot error %v)", s.StoreErrors, err)
	}
	pipe := env.admin.Pipeline()
	var cmds []*redis.IntCmd
	for _, k := range st.Keys(br.Name()) {
		cmds = append(cmds, pipe.MemoryUsage(ctx, k, 0))
	}
	_, _ = pipe.Exec(ctx)
	var total int64
	for _, c := range cmds {
		n, err := c.Result()
		if errors.Is(err, redis.Nil) {
			continue // a key the circuit does not use
		}
		if err != nil {
			tb.Fatalf("MEMORY USAGE: %v", err)
		}
		total += n
	}
	if total == 0 {
		tb.Fatalf("circuit %q: no key in Redis after the trip", br.Name())
	}
	return total
}

// prefixMemory sums MEMORY USAGE over every key under prefix (SCAN).
func prefixMemory(ctx context.Context, env *redisEnv, prefix string) (int64, error) {
	var total int64
	iter := env.admin.Scan(ctx, 0, prefix+":*", 1000).Iterator()
	var keys []string
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		return 0, fmt.Errorf("SCAN %s:*: %w", prefix, err)
	}
	pipe := env.admin.Pipeline()
	cmds := make([]*redis.IntCmd, len(keys))
	for i, k := range keys {
		cmds[i] = pipe.MemoryUsage(ctx, k, 0)
	}
	_, _ = pipe.Exec(ctx)
	for _, c := range cmds {
		n, err := c.Result()
		if errors.Is(err, redis.Nil) {
			continue // expired since the SCAN
		}
		if err != nil {
			return 0, fmt.Errorf("MEMORY USAGE: %w", err)
		}
		total += n
	}
	return total, nil
}

// memoryStore returns a Store with a client and prefix of its own, and the
// Config of the memory figures: threshold memoryThreshold, timeout 1h,
// consecutive or (window) within a 1 minute window.
func memoryStore(tb testing.TB, env *redisEnv, window bool) (*redisstore.Store, breaker.Config) {
	c, _ := env.client(tb)
	// benchCallTimeout: with the default 50ms a loaded machine timed a
	// call out (4 runs in 300 under -race), and the Breaker decided the
	// next calls degraded, on its local fallback: Redis held no circuit.
	st := redisstore.New(c, redisstore.WithPrefix(newName("memory")), redisstore.WithCallTimeout(benchCallTimeout))
	tb.Cleanup(func() { _ = st.Close() })
	cfg := breaker.Config{Store: st, FailureThreshold: memoryThreshold, Timeout: time.Hour}
	if window {
		cfg.FailureWindow = time.Minute
	}
	return st, cfg
}

// benchMemory: one op trips one new circuit at threshold 5 (window mode:
// within a 1 minute window). Metrics: state-B/circuit (MEMORY USAGE
// summed over the circuit's state keys, Store.Keys), and over the whole
// run all-B/circuit (MEMORY USAGE summed over every key under the Store's
// prefix), keys/circuit (DBSIZE delta) and used-B/circuit (INFO
// used_memory delta). The last three include the reply keys that protect
// retried calls (one per call that changed the circuit, alive for
// WithReplyTTL, 1m), and used-B/circuit Redis's overhead per key (the
// keyspace and expiry tables).
func benchMemory(b *testing.B, env *redisEnv, window bool) {
	ctx := context.Background()
	st, cfg := memoryStore(b, env, window)
	keys0, err := env.admin.DBSize(ctx).Result()
	if err != nil {
		b.Fatalf("DBSIZE: %v", err)
	}
	used0 := env.usedMemory(b)
	var state int64
	for i := 0; b.Loop(); i++ {
		br, err := breaker.New(fmt.Sprintf("circuit-%d", i), cfg)
		if err != nil {
			b.Fatalf("breaker.New: %v", err)
		}
		state += circuitMemory(b, env, br, st)
	}
	keys1, err := env.admin.DBSize(ctx).Result()
	if err != nil {
		b.Fatalf("DBSIZE: %v", err)
	}
	b.StopTimer()
	all, err := prefixMemory(ctx, env, st.Prefix())
	if err != nil {
		b.Fatalf("%v", err)
	}
	n := float64(b.N)
	b.ReportMetric(float64(state)/n, "state-B/circuit")
	b.ReportMetric(float64(all)/n, "all-B/circuit")
	b.ReportMetric(float64(keys1-keys0)/n, "keys/circuit")
	b.ReportMetric(float64(env.usedMemory(b)-used0)/n, "used-B/circuit")
}
