package redisstore_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

	"github.com/tripline/tripline/breaker"
	redisstore "github.com/tripline/tripline/store/redis"
)

// TestLocalViewsNeverTripLater (issue 17, item 5) checks the promise of
// local views in consecutive mode: a circuit may trip earlier than a strict
// store would let it, never later. Three replicas with local views (their
// resets held back until asked: WithFlushInterval 1h) fail and succeed
// calls in a random order, and send their held-back resets (Load) at
// random points. The model is strict counting: a success clears the count,
// a failure adds one. After every step, while the circuit is closed, the
// count in Redis must be at least the model's, so the circuit trips no
// later than the model says (a success's reset never clears a failure
// counted after the success).
func TestLocalViewsNeverTripLater(t *testing.T) {
	f := newFakeRedis(t)
	replicas := make([]*redisstore.Store, 3)
	for i := range replicas {
		replicas[i] = f.store(t, redisstore.WithFlushInterval(time.Hour))
	}
	for _, s := range replicas {
		warm(t, s, "never-later", policy(2)) // the subscription is live from here on
	}
	ctx := context.Background()
	checks := 0
	rapid.Check(t, func(t *rapid.T) {
		checks++
		p := policy(rapid.IntRange(2, 6).Draw(t, "threshold"))
		p.Timeout = time.Hour
		var (
			name     string
			episodes int
			count    int // strict counting
		)
		// A new circuit (after a trip) starts each episode.
		begin := func(t *rapid.T) {
			episodes++
			name = "never-later-" + strconv.Itoa(checks) + "-" + strconv.Itoa(episodes)
			count = 0
			for _, s := range replicas {
				_, err := s.Admit(ctx, name, p) // a fresh view of the circuit
				require.NoError(t, err)
			}
		}
		begin(t)
		replica := func(t *rapid.T) *redisstore.Store {
			return replicas[rapid.IntRange(0, len(replicas)-1).Draw(t, "replica")]
		}
		call := func(t *rapid.T, kind breaker.OutcomeKind) {
			s := replica(t)
			a, err := s.Admit(ctx, name, p)
			require.NoError(t, err)
			require.True(t, a.Allowed, "a closed circuit admits: %+v", a)
			r, err := s.Record(ctx, name, p, breaker.Outcome{Kind: kind, Generation: a.Generation})
			require.NoError(t, err)
			if kind == breaker.OutcomeFailure {
				count++
			} else {
				count = 0
			}
			if r.State != breaker.StateClosed {
				begin(t) // tripped, at most as late as strict counting (checked after each step)
			}
		}
		t.Repeat(map[string]func(*rapid.T){
			"fail":    func(t *rapid.T) { call(t, breaker.OutcomeFailure) },
			"succeed": func(t *rapid.T) { call(t, breaker.OutcomeSuccess) },
			"send held resets": func(t *rapid.T) {
				_, err := replica(t).Load(ctx, name)
				require.NoError(t, err)
			},
			"": func(t *rapid.T) {
				require.Less(t, count, p.FailureThreshold, "strict counting trips: the circuit must have tripped")
				got := 0
				if v := f.HGet(replicas[0].Keys(name)[0], "f"); v != "" {
					var err error
					got, err = strconv.Atoi(v)
					require.NoError(t, err, "failures in Redis")
				}
				require.GreaterOrEqual(t, got, count, "Redis counts fewer consecutive failures than strict counting")
			},
		})
	})
}
