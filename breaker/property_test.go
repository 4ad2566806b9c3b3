package breaker_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/tripline/tripline/breaker"
)

// TestTransitionsReportedOnce drives two replicas of one circuit with random
// calls, outcomes, clock moves and operator commands, and checks after each
// step that:
//   - every generation the store started was reported exactly once: by one
//     OnStateChange call on one replica, or (a command that kept the state)
//     by one "command applied" log line;
//   - the OnStateChange calls, across replicas, form one chain of states;
//   - fn ran exactly when the call was admitted;
//   - no more probes than HalfOpenMaxCalls hold a permit.
func TestTransitionsReportedOnce(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		e := newEnv()
		logs := &logBuffer{}
		type change struct{ from, to breaker.State }
		var changes []change
		hook := func(_ string, from, to breaker.State) { changes = append(changes, change{from, to}) }
		cfg := breaker.Config{
			Store:            e.store,
			FailureThreshold: rapid.IntRange(1, 3).Draw(rt, "failureThreshold"),
			SuccessThreshold: rapid.IntRange(1, 3).Draw(rt, "successThreshold"),
			HalfOpenMaxCalls: rapid.IntRange(1, 3).Draw(rt, "halfOpenMaxCalls"),
			Timeout:          10 * time.Second,
			ProbeTimeout:     5 * time.Second,
			OnStateChange:    hook,
			Logger:           logs.logger(),
		}
		if rapid.Bool().Draw(rt, "window") {
			cfg.FailureWindow = 20 * time.Second
		}
		var replicas []*breaker.Breaker
		for range 2 {
			b, err := breaker.New("svc", cfg)
			if err != nil {
				rt.Fatal(err)
			}
			replicas = append(replicas, b)
		}
		ctx := context.Background()
		var pending []func(error) // Allow calls not yet reported

		steps := rapid.IntRange(1, 60).Draw(rt, "steps")
		for i := range steps {
			b := replicas[rapid.IntRange(0, 1).Draw(rt, fmt.Sprintf("replica%d", i))]
			switch op := rapid.IntRange(0, 8).Draw(rt, fmt.Sprintf("op%d", i)); op {
			case 0, 1, 2: // a call that succeeds or fails
				fail := op == 0 || op == 1
				ran := false
				err := b.Do(ctx, func(context.Context) error {
					ran = true
					if fail {
						return errBoom
					}
					return nil
				})
				if errors.Is(err, breaker.ErrOpen) == ran {
					rt.Fatalf("step %d: Do returned %v, fn ran: %t", i, err, ran)
				}
			case 3: // a call held open (two-step)
				if done, err := b.Allow(ctx); err == nil {
					pending = append(pending, done)
				} else if !errors.Is(err, breaker.ErrOpen) {
					rt.Fatal(err)
				}
			case 4: // a held call reports, perhaps late
				if len(pending) > 0 {
					k := rapid.IntRange(0, len(pending)-1).Draw(rt, fmt.Sprintf("pending%d", i))
					var err error
					if rapid.Bool().Draw(rt, fmt.Sprintf("pendingFails%d", i)) {
						err = errBoom
					}
					pending[k](err)
					pending = append(pending[:k], pending[k+1:]...)
				}
			case 5:
				e.clock.Advance(time.Duration(rapid.IntRange(1, 12).Draw(rt, fmt.Sprintf("advance%d", i))) * time.Second)
			case 6:
				if err := b.Reset(ctx); err != nil {
					rt.Fatal(err)
				}
			case 7:
				ttl := time.Duration(rapid.IntRange(0, 15).Draw(rt, fmt.Sprintf("ttl%d", i))) * time.Second
				if err := b.ForceOpen(ctx, ttl); err != nil {
					rt.Fatal(err)
				}
			case 8:
				ttl := time.Duration(rapid.IntRange(0, 15).Draw(rt, fmt.Sprintf("ttl%d", i))) * time.Second
				if err := b.ForceClose(ctx, ttl); err != nil {
					rt.Fatal(err)
				}
			}

			s, err := b.Snapshot(ctx)
			if err != nil {
				rt.Fatal(err)
			}
			commands := 0
			for _, r := range logs.records(t) {
				if r["msg"] == "tripline: circuit command applied" {
					commands++
				}
			}
			if got := uint64(len(changes) + commands); got != s.Generation {
				rt.Fatalf("step %d: generation %d, but %d state changes and %d commands reported", i, s.Generation, len(changes), commands)
			}
			for k, c := range changes {
				if c.from == c.to {
					rt.Fatalf("OnStateChange called without a change: %v", c)
				}
				if k > 0 && changes[k-1].to != c.from {
					rt.Fatalf("state changes do not chain: %v then %v", changes[k-1], c)
				}
			}
			if n := len(changes); n > 0 && changes[n-1].to != s.State {
				rt.Fatalf("step %d: last change went to %s, circuit is %s", i, changes[n-1].to, s.State)
			}
			if s.Probes > cfg.HalfOpenMaxCalls {
				rt.Fatalf("step %d: %d probes hold permits, limit %d", i, s.Probes, cfg.HalfOpenMaxCalls)
			}
		}
	})
}
