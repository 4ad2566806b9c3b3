package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/tripline/tripline/breaker"
	"github.com/tripline/tripline/internal/redact"
	redisstore "github.com/tripline/tripline/store/redis"
)

// result is what a run of the whole demo saw.
type result struct {
	elapsed     time.Duration
	backend     string
	circuit     string
	sched       schedule
	transitions []transition       // every transition, from the replica that made it
	published   []redisstore.Event // every transition the store published (Watch)
	names       []string           // the replicas, in order
	replicas    map[string]stats
	final       breaker.Snapshot
}

// trips counts the closed -> open transitions.
func (r *result) trips() int {
	n := 0
	for _, t := range r.transitions {
		if t.from == breaker.StateClosed && t.to == breaker.StateOpen {
			n++
		}
	}
	return n
}

// print writes the summary.
func (r *result) print(w io.Writer) {
	var calls, ok, failed, rejected, probes int
	var storeErrs, degradedCalls uint64
	for _, name := range r.names {
		s := r.replicas[name]
		calls, ok, failed, rejected = calls+s.Calls, ok+s.OK, failed+s.Failed, rejected+s.Rejected
		probes, storeErrs, degradedCalls = probes+s.Probes, storeErrs+s.StoreErrors, degradedCalls+s.DegradedCalls
	}
	fmt.Fprintf(w, "\nsummary after %s (%s, upstream schedule %s):\n", r.elapsed.Round(100*time.Millisecond), r.backend, r.sched)
	fmt.Fprintf(w, "  %d replicas made %d calls to the upstream (%d ok, %d failed); the circuit rejected %d more without calling\n",
		len(r.names), calls, ok, failed, rejected)
	fmt.Fprintf(w, "  fleet-wide: %s (closed -> open), %s, %s; the store published %d\n",
		plural(r.trips(), "trip"), plural(probes, "probe"), plural(len(r.transitions), "transition"), len(r.published))
	if storeErrs > 0 {
		fmt.Fprintf(w, "  store errors: %d; calls decided locally while degraded: %d\n", storeErrs, degradedCalls)
	}
	for _, name := range r.names {
		s := r.replicas[name]
		saw := "no"
		if s.SawOpen {
			saw = "yes"
		}
		// Under 80 characters: calls are ok plus failed, and the line above
		// gives the total.
		fmt.Fprintf(w, "  %-10s ok %3d  failed %2d  rejected %3d  probes %d  trips %d  saw open: %s\n",
			name, s.OK, s.Failed, s.Rejected, s.Probes, s.Trips, saw)
	}
	fmt.Fprintf(w, "  circuit %q is %s, generation %d\n", r.circuit, r.final.State, r.final.Generation)
	if failed == 0 {
		fmt.Fprintln(w, r.sched.noOutageNote())
	}
}

// noOutageNote explains a run in which no call failed: it ended before the
// upstream's first outage, as a short --duration with the default schedule
// does.
func (s schedule) noOutageNote() string {
	var start time.Duration
	for _, p := range s {
		if !p.up {
			// Long enough for the trip, the outage, and a probe after it.
			end := start + p.dur + 3*time.Second
			return fmt.Sprintf("  the upstream never failed: its first outage starts at %s (try --duration %s)", start, end)
		}
		start += p.dur
	}
	return "  the upstream never failed: its --schedule has no down phase"
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// runAll runs the upstream, the replicas and the display in this process
// until ctx is done. scr says whether out can show the live table.
func runAll(ctx context.Context, cfg *config, out io.Writer, scr screen) (*result, error) {
	redisURL, backend := cfg.redisURL, "Redis at "+redact.URL(cfg.redisURL)
	storeOpts := demoStoreOptions(cfg)
	if redisURL == "" {
		mr := miniredis.NewMiniRedis()
		if err := mr.StartAddr("127.0.0.1:0"); err != nil {
			return nil, fmt.Errorf("start embedded miniredis: %w", err)
		}
		defer mr.Close()
		redisURL, backend = "redis://"+mr.Addr(), "embedded miniredis"
	}
	opts, err := parseRedisURL(redisURL)
	if err != nil {
		return nil, err
	}

	up, err := startUpstream(cfg.upstreamAddr, cfg.sched)
	if err != nil {
		return nil, err
	}
	defer up.close()
	since := func() time.Duration { return time.Since(up.start) }

	// The observer reads and watches the circuit for the display; it is
	// not one of the replicas.
	obsClient := redis.NewClient(opts)
	defer obsClient.Close()
	observer := redisstore.New(obsClient, storeOpts...)
	defer observer.Close()
	if cfg.redisURL != "" {
		// A real Redis may hold the circuit from an earlier run.
		_, err := observer.Apply(ctx, cfg.circuit, breaker.Command{
			Kind: breaker.CommandReset, Actor: "demo", Reason: "demo start", IfExists: true,
		})
		if err != nil && !errors.Is(err, breaker.ErrUnknownCircuit) {
			return nil, fmt.Errorf("reset circuit %s: %w", cfg.circuit, err)
		}
	}
	watchCtx, stopWatch := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWatch()
	events, err := observer.Watch(watchCtx, cfg.circuit)
	if err != nil {
		return nil, fmt.Errorf("watch circuit %s: %w", cfg.circuit, err)
	}

	res := &result{backend: backend, circuit: cfg.circuit, sched: cfg.sched, replicas: map[string]stats{}}
	d := newDisplay(out, cfg, backend, since, scr)
	var mu sync.Mutex // guards res.transitions
	onMove := func(t transition) {
		mu.Lock()
		res.transitions = append(res.transitions, t)
		mu.Unlock()
	}
	var published sync.WaitGroup
	published.Go(func() {
		for ev := range events {
			mu.Lock()
			res.published = append(res.published, ev)
			mu.Unlock()
			switch ev.Cause {
			case "reset", "force-open", "force-close":
				// Not a replica's doing: an operator (cbctl) steers the circuit.
				d.log(fmt.Sprintf("%-10s %s -> %s  (%s from outside the demo, e.g. cbctl; generation %d)",
					"operator", ev.From, ev.To, ev.Cause, ev.Generation))
			}
		}
	})

	var reps []*replica
	for i := range cfg.replicas {
		name := fmt.Sprintf("replica-%d", i+1)
		client := redis.NewClient(opts) // each replica its own client, as separate processes would
		defer client.Close()
		store := redisstore.New(client, storeOpts...)
		defer store.Close() // before its client (defers run last in, first out)
		r, err := newReplica(name, up.url(), store, cfg.breakerConfig, since, d.log, onMove)
		if err != nil {
			return nil, err
		}
		reps = append(reps, r)
		res.names = append(res.names, name)
	}
	d.replicas = reps
	d.observer = observer

	var wg sync.WaitGroup
	for _, r := range reps {
		wg.Go(func() { r.run(ctx, cfg.interval) })
	}
	d.run(ctx)
	wg.Wait()
	res.elapsed = since()

	// Every transition is published once; wait (briefly) for the last ones
	// to arrive before the subscription ends.
	deadline := time.Now().Add(2 * time.Second)
	for {
		mu.Lock()
		done := len(res.published) >= len(res.transitions)
		mu.Unlock()
		if done || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	stopWatch()
	published.Wait()

	for _, r := range reps {
		res.replicas[r.name] = r.snapshot()
	}
	final, err := observer.Load(context.WithoutCancel(ctx), cfg.circuit)
	if err != nil {
		return nil, fmt.Errorf("load circuit %s: %w", cfg.circuit, err)
	}
	res.final = final
	d.finish()
	return res, nil
}

// runUpstream serves the flaky upstream until ctx is done.
func runUpstream(ctx context.Context, cfg *config, out io.Writer) error {
	up, err := startUpstream(cfg.upstreamAddr, cfg.sched)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "upstream listening on %s, schedule %s\n", up.ln.Addr(), cfg.sched)
	var last *phase
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		p, start, _ := cfg.sched.at(time.Since(up.start))
		if last == nil || *last != p {
			fmt.Fprintf(out, "%7.2fs  upstream   %s\n", start.Seconds(), phaseText(p))
			last = &p
		}
		select {
		case <-ctx.Done():
			return up.close()
		case <-tick.C:
		}
	}
}

func phaseText(p phase) string {
	if p.up {
		return "up: answers 200"
	}
	return "down: fails every call with 503"
}

// runReplica runs one replica until ctx is done.
func runReplica(ctx context.Context, cfg *config, out io.Writer) error {
	opts, err := parseRedisURL(cfg.redisURL)
	if err != nil {
		return err
	}
	client := redis.NewClient(opts)
	defer client.Close()
	store := redisstore.New(client, demoStoreOptions(cfg)...)
	defer store.Close()
	start := time.Now()
	since := func() time.Duration { return time.Since(start) }
	var mu sync.Mutex
	log := func(line string) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(out, "%7.2fs  %s\n", since().Seconds(), line)
	}
	r, err := newReplica(cfg.name, cfg.upstreamURL, store, cfg.breakerConfig, since, log, nil)
	if err != nil {
		return err
	}
	log(fmt.Sprintf("%-10s calling %s through circuit %q (prefix %q) every %s", cfg.name, cfg.upstreamURL, cfg.circuit, cfg.prefix, cfg.interval))
	r.run(ctx, cfg.interval)
	s := r.snapshot()
	log(fmt.Sprintf("%-10s stopped: calls %d, ok %d, failed %d, rejected %d, probes %d, trips %d",
		cfg.name, s.Calls, s.OK, s.Failed, s.Rejected, s.Probes, s.Trips))
	return nil
}

// parseRedisURL parses --redis or REDIS_URL. Its error says nothing of the
// URL: go-redis's would quote it, password and all.
// demoStoreOptions are the options of every store of the demo. The call
// timeout is 1s, not the default 50ms: the demo runs wherever it is
// started, beside builds and tests on small machines, and the embedded
// miniredis runs Lua in Go, one script at a time, far slower than Redis. A
// first call that pays for a connection and a script load would otherwise
// start the demo degraded; a Redis that is really gone still shows it.
func demoStoreOptions(cfg *config) []redisstore.Option {
	return []redisstore.Option{redisstore.WithPrefix(cfg.prefix), redisstore.WithCallTimeout(time.Second)}
}

func parseRedisURL(raw string) (*redis.Options, error) {
	opts, err := redis.ParseURL(raw)
	if err != nil {
		return nil, errors.New("--redis (or REDIS_URL) is not a valid redis:// or rediss:// URL " +
			"(write special characters of the password as %XX)")
	}
	// The store's call timeout (50ms) bounds a round trip only if the
	// client honours context deadlines.
	opts.ContextTimeoutEnabled = true
	return opts, nil
}
