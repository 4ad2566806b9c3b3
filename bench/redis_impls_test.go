package bench

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/tripline/tripline/breaker"
	redisstore "github.com/tripline/tripline/store/redis"
)

// TestRedis checks the Redis benchmarks on a redis-server of its own (it
// fails, never skips, when redis-server is not on PATH): every contender's
// calls take the path its benchmark claims, with the round trips that path
// claims, and the propagation and memory measurements work.
func TestRedis(t *testing.T) {
	env := startRedis(t)
	t.Run("Impls", func(t *testing.T) { testRedisImpls(t, env) })
	t.Run("Propagation", func(t *testing.T) {
		for _, strict := range []bool{false, true} {
			t.Run(oursName(strict), func(t *testing.T) {
				h := new(hist)
				const trips = 20
				propagation(t, env, strict, trips, h)
				if h.n != trips {
					t.Fatalf("recorded %d delays, want %d", h.n, trips)
				}
				t.Logf("p50 %.0fns, p99 %.0fns over %d trips", h.quantile(0.5), h.quantile(0.99), trips)
			})
		}
	})
	t.Run("Memory", func(t *testing.T) {
		for _, window := range []bool{false, true} {
			t.Run(fmt.Sprint("window=", window), func(t *testing.T) {
				testMemory(t, env, window)
			})
		}
	})
}

// roundTrips says, for a path and contender, whether sent commands for
// calls calls (failed of them failed) are what the contender claims; ""
// when they are. stale is how many view refreshes the staleness bound
// allowed since the contender was made: a view older than MaxStaleness
// (1s) is refreshed by the next admission, so a slow run makes one round
// trip per second of its local-view contenders. In-process contenders have
// no counter and are not listed.
var roundTrips = map[string]func(calls, failed int, stale, sent int64) string{
	"Success/ours-redis": func(calls, _ int, stale, sent int64) string {
		return atMost(sent, int64(calls/100)+stale, "no round trip on a closed-state success (at most 1 in 100 calls), refreshes aside")
	},
	"Success/ours-redis-strict": func(calls, _ int, _, sent int64) string {
		return atLeast(sent, int64(calls), "a round trip per admission")
	},
	"Success/gobreaker-redis": func(calls, _ int, _, sent int64) string {
		// GET, SET NX, SET, EVALSHA; once more for the script's first
		// EVAL (NOSCRIPT) and for nothing else when uncontended.
		if msg := atLeast(sent, 4*int64(calls), "4 round trips per call"); msg != "" {
			return msg
		}
		return atMost(sent, 4*int64(calls)+1, "4 round trips per call")
	},
	"Success/redis-ping": func(calls, _ int, _, sent int64) string {
		if sent != int64(calls) {
			return fmt.Sprintf("sent %d commands for %d PINGs", sent, calls)
		}
		return ""
	},
	"Failure/ours-redis": func(calls, failed int, stale, sent int64) string {
		return atMost(sent, int64(failed+calls/100)+stale, "one round trip per failure, refreshes aside")
	},
	"Failure/ours-redis-strict": func(calls, _ int, _, sent int64) string {
		return atLeast(sent, int64(calls), "a round trip per admission")
	},
	"Open/ours-redis": func(_, _ int, stale, sent int64) string {
		return atMost(sent, stale, "no round trip for a rejection while open, refreshes aside")
	},
	"Open/ours-redis-strict": func(calls, _ int, _, sent int64) string {
		return atLeast(sent, int64(calls), "a round trip per admission")
	},
}

func atMost(sent, limit int64, claim string) string {
	if sent > limit {
		return fmt.Sprintf("sent %d commands, more than %d: the claim is %s", sent, limit, claim)
	}
	return ""
}

func atLeast(sent, limit int64, claim string) string {
	if sent < limit {
		return fmt.Sprintf("sent %d commands, fewer than %d: the claim is %s", sent, limit, claim)
	}
	return ""
}

func testRedisImpls(t *testing.T, env *redisEnv) {
	isNil := func(i int, err error) bool { return err == nil }
	isFailure := func(i int, err error) bool {
		if i%failEvery == failEvery-1 {
			return err == nil
		}
		return errors.Is(err, errFail)
	}
	isOpen := func(i int, err error) bool { return errors.Is(err, breaker.ErrOpen) }
	paths := []struct {
		name string
		cs   []contender
		want func(i int, err error) bool
	}{
		{"Success", redisSuccess(), isNil},
		{"Failure", redisFailure(), isFailure},
		{"Open", redisOpen(), isOpen},
	}
	const calls = 2 * failEvery
	for _, path := range paths {
		for _, c := range path.cs {
			t.Run(path.name+"/impl="+c.name, func(t *testing.T) {
				made := time.Now()
				call, check, hook := c.setup(t, env)
				key := path.name + "/" + c.name
				claim, listed := roundTrips[key]
				if listed != (hook != nil) {
					t.Fatalf("%s: a command counter (%v) but round trips listed (%v)", key, hook != nil, listed)
				}
				cmds0 := env.commandCalls(t)
				var sent0 int64
				if hook != nil {
					sent0 = hook.sent()
				}
				failed := 0
				for i := range calls {
					err := call(i)
					if !path.want(i, err) {
						t.Fatalf("call %d returned %v, not what the %s path expects", i, err, path.name)
					}
					if err != nil && !errors.Is(err, breaker.ErrOpen) {
						failed++
					}
				}
				cmds := env.commandCalls(t) - cmds0
				var sent int64
				if hook != nil {
					sent = hook.sent() - sent0
				}
				check(t)
				if hook == nil {
					if cmds != 0 {
						t.Errorf("an in-process contender: Redis ran %d commands during its calls", cmds)
					}
					return
				}
				// Every view of the contender was made after made.
				stale := int64(time.Since(made) / redisstore.DefaultMaxStaleness)
				if msg := claim(calls, failed, stale, sent); msg != "" {
					t.Errorf("%d calls (%d failed): %s", calls, failed, msg)
				}
				if cmds < sent {
					t.Errorf("INFO commandstats counts %d commands, fewer than the %d the client sent", cmds, sent)
				}
				t.Logf("%d calls: %d round trips, %d commands run by Redis", calls, sent, cmds)
			})
		}
	}
}

func testMemory(t *testing.T, env *redisEnv, window bool) {
	st, cfg := memoryStore(t, env, window)
	br, err := breaker.New("circuit", cfg)
	if err != nil {
		t.Fatalf("breaker.New: %v", err)
	}
	n := circuitMemory(t, env, br, st)
	t.Logf("%d bytes in the state keys %v", n, st.Keys(br.Name()))
	if n > 64<<10 {
		t.Errorf("MEMORY USAGE says %d bytes for one circuit: not a plausible figure", n)
	}
}
