package redisstore_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

	"github.com/tripline/tripline/breaker"
	"github.com/tripline/tripline/store/memory"
	redisstore "github.com/tripline/tripline/store/redis"
)

// TestFollowsMemoryStore drives the Redis scripts (on miniredis) and the
// reference state machine (the memory store) with the same random calls,
// clock moves and commands, and requires the same answer to every call.
// The replicas ask Redis on every call (WithStrict). Each call takes one of
// two policies, as replicas in a rolling deploy would: both stores must
// count under each and report PolicyDiffers alike.
func TestFollowsMemoryStore(t *testing.T) {
	m := miniredis.RunT(t)
	m.ClockTTL(true)
	rapid.Check(t, func(t *rapid.T) {
		ctx := context.Background()
		now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
		m.FlushAll()
		m.SetTime(now)
		mem := memory.New(memory.WithClock(func() time.Time { return now }))
		client := redis.NewClient(&redis.Options{Addr: m.Addr()})
		defer client.Close()
		replicas := []*redisstore.Store{
			redisstore.New(client, redisstore.WithStrictExact(), redisstore.WithCallTimeout(testCallTimeout)),
			redisstore.New(client, redisstore.WithStrictExact(), redisstore.WithCallTimeout(testCallTimeout)),
		}
		defer func() {
			for _, r := range replicas {
				_ = r.Close()
			}
		}()

		ms := func(vs ...time.Duration) *rapid.Generator[time.Duration] { return rapid.SampledFrom(vs) }
		drawPolicy := func(label string) breaker.Policy {
			return breaker.Policy{
				FailureThreshold: rapid.IntRange(1, 4).Draw(t, label+"threshold"),
				FailureWindow:    ms(0, 0, 50*time.Millisecond, 200*time.Millisecond).Draw(t, label+"window"),
				Timeout:          ms(10*time.Millisecond, 100*time.Millisecond).Draw(t, label+"timeout"),
				SuccessThreshold: rapid.IntRange(1, 3).Draw(t, label+"successes"),
				HalfOpenMaxCalls: rapid.IntRange(1, 3).Draw(t, label+"probes"),
				ProbeTimeout:     ms(20*time.Millisecond, 500*time.Millisecond).Draw(t, label+"probeTimeout"),
			}
		}
		// The other policy keeps the window. The window key's TTL follows
		// the window of the failure that wrote it, so once a wider window
		// is used Redis may count fewer failures than memory: a difference
		// between replicas with other windows that this test leaves out.
		policies := []breaker.Policy{drawPolicy(""), drawPolicy("other ")}
		policies[1].FailureWindow = policies[0].FailureWindow
		if rapid.Bool().Draw(t, "one policy") {
			policies = policies[:1]
		}
		policy := func(t *rapid.T) breaker.Policy { return rapid.SampledFrom(policies).Draw(t, "policy") }
		names := []string{"a", "b{:} ü"}

		type ticket struct {
			name       string
			memGen     uint64
			memProbe   uint64
			redisGen   uint64
			redisProbe uint64
		}
		var tickets []ticket

		t.Repeat(map[string]func(*rapid.T){
			"admit": func(t *rapid.T) {
				name := rapid.SampledFrom(names).Draw(t, "name")
				r := rapid.SampledFrom(replicas).Draw(t, "replica")
				p := policy(t)
				want, werr := mem.Admit(ctx, name, p)
				got, gerr := r.Admit(ctx, name, p)
				require.NoError(t, werr)
				require.NoError(t, gerr)
				assert.Equal(t, want.Probe != 0, got.Probe != 0, "probe held")
				wp, gp := want.Probe, got.Probe
				want.Probe, got.Probe = 0, 0
				require.Equal(t, want, got)
				if want.Allowed {
					tickets = append(tickets, ticket{name, want.Generation, wp, got.Generation, gp})
				}
			},
			"record": func(t *rapid.T) {
				if len(tickets) == 0 {
					t.Skip("no call in flight")
				}
				i := rapid.IntRange(0, len(tickets)-1).Draw(t, "ticket")
				tk := tickets[i]
				tickets = append(tickets[:i], tickets[i+1:]...)
				kind := rapid.SampledFrom([]breaker.OutcomeKind{breaker.OutcomeSuccess, breaker.OutcomeFailure}).Draw(t, "kind")
				r := rapid.SampledFrom(replicas).Draw(t, "replica")
				p := policy(t)
				want, werr := mem.Record(ctx, tk.name, p, breaker.Outcome{Kind: kind, Generation: tk.memGen, Probe: tk.memProbe})
				got, gerr := r.Record(ctx, tk.name, p, breaker.Outcome{Kind: kind, Generation: tk.redisGen, Probe: tk.redisProbe})
				require.NoError(t, werr)
				require.NoError(t, gerr)
				require.Equal(t, want, got)
			},
			"stale": func(t *rapid.T) {
				name := rapid.SampledFrom(names).Draw(t, "name")
				gen := uint64(rapid.IntRange(0, 12).Draw(t, "gen"))
				kind := rapid.SampledFrom([]breaker.OutcomeKind{breaker.OutcomeSuccess, breaker.OutcomeFailure}).Draw(t, "kind")
				o := breaker.Outcome{Kind: kind, Generation: gen, Probe: 1 << 40}
				p := policy(t)
				want, werr := mem.Record(ctx, name, p, o)
				got, gerr := replicas[0].Record(ctx, name, p, o)
				require.NoError(t, werr)
				require.NoError(t, gerr)
				require.Equal(t, want, got)
			},
			"apply": func(t *rapid.T) {
				name := rapid.SampledFrom(names).Draw(t, "name")
				c := breaker.Command{
					Kind:     rapid.SampledFrom([]breaker.CommandKind{breaker.CommandReset, breaker.CommandForceOpen, breaker.CommandForceClose}).Draw(t, "command"),
					TTL:      ms(0, 30*time.Millisecond, 300*time.Millisecond).Draw(t, "ttl"),
					Actor:    "ops",
					Reason:   rapid.SampledFrom([]string{"", "deploy", "a b\nc"}).Draw(t, "reason"),
					IfExists: rapid.Bool().Draw(t, "ifExists"),
				}
				want, werr := mem.Apply(ctx, name, c)
				got, gerr := replicas[1].Apply(ctx, name, c)
				if werr != nil {
					require.ErrorIs(t, gerr, werr)
					return
				}
				require.NoError(t, gerr)
				require.Equal(t, want, got)
			},
			"advance": func(t *rapid.T) {
				now = now.Add(time.Duration(rapid.IntRange(0, 120).Draw(t, "ms")) * time.Millisecond)
				m.SetTime(now)
			},
			"": func(t *rapid.T) {
				for _, name := range names {
					want, werr := mem.Load(ctx, name)
					got, gerr := replicas[0].Load(ctx, name)
					require.NoError(t, werr)
					require.NoError(t, gerr)
					require.Equal(t, normalize(want), normalize(got))
				}
			},
		})
	})
}

// normalize puts a snapshot's times in UTC so Equal compares instants.
func normalize(s breaker.Snapshot) breaker.Snapshot {
	utc := func(t time.Time) time.Time {
		if t.IsZero() {
			return t
		}
		return t.UTC()
	}
	s.LastFailure, s.OpenedAt, s.RetryAt = utc(s.LastFailure), utc(s.OpenedAt), utc(s.RetryAt)
	if s.Override != nil {
		o := *s.Override
		o.Until, o.At = utc(o.Until), utc(o.At)
		s.Override = &o
	}
	return s
}

var _ = errors.Is
