//go:build integration

package integration

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tripline/tripline/breaker"
	"github.com/tripline/tripline/internal/redisserver"
	redisstore "github.com/tripline/tripline/store/redis"
)

// backend is one kind of Redis deployment the fleet tests run on.
type backend struct {
	name      string
	newClient func(t *testing.T) redis.UniversalClient
}

// backends starts a single node and a 3-master Cluster for t.
func backends(t *testing.T) []backend {
	t.Helper()
	srv := redisserver.StartSingle(t)
	cl := redisserver.StartCluster(t, 3, 0)
	return []backend{
		{"single", func(t *testing.T) redis.UniversalClient { return newClient(t, srv.Addr()) }},
		{"cluster", func(t *testing.T) redis.UniversalClient { return newClusterClient(t, cl.Addrs()) }},
	}
}

// fleet is n replicas of one service: each its own client, Store and
// Breaker on the same circuit. OnStateChange calls are counted fleet-wide.
type fleet struct {
	clients  []redis.UniversalClient
	breakers []*breaker.Breaker
	prefix   string
	mu       sync.Mutex
	changes  map[[2]breaker.State]int
}

func newFleet(t *testing.T, be backend, n int, cfg breaker.Config, wrap func(breaker.Store) breaker.Store) *fleet {
	t.Helper()
	f := &fleet{prefix: newPrefix(t), changes: map[[2]breaker.State]int{}}
	for range n {
		c := be.newClient(t)
		var st breaker.Store = strictStore(t, c, redisstore.WithPrefix(f.prefix))
		if wrap != nil {
			st = wrap(st)
		}
		cfg := cfg
		cfg.Store = st
		cfg.OnStateChange = func(_ string, from, to breaker.State) {
			f.mu.Lock()
			f.changes[[2]breaker.State{from, to}]++
			f.mu.Unlock()
		}
		b, err := breaker.New("fleet", cfg)
		require.NoError(t, err)
		f.clients = append(f.clients, c)
		f.breakers = append(f.breakers, b)
	}
	return f
}

func (f *fleet) changeCount() (total int, byKind map[[2]breaker.State]int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	byKind = map[[2]breaker.State]int{}
	for k, v := range f.changes {
		byKind[k] = v
		total += v
	}
	return total, byKind
}

var errBoom = errors.New("boom")

// TestRedisFleetSeesTrip: a trip made by one replica is seen by every other
// at its next call.
func TestRedisFleetSeesTrip(t *testing.T) {
	for _, be := range backends(t) {
		t.Run(be.name, func(t *testing.T) {
			ctx := context.Background()
			f := newFleet(t, be, 4, breaker.Config{FailureThreshold: 3, Timeout: time.Minute}, nil)
			for _, b := range f.breakers {
				require.NoError(t, b.Do(ctx, func(context.Context) error { return nil }))
			}
			for range 3 {
				require.ErrorIs(t, f.breakers[0].Do(ctx, func(context.Context) error { return errBoom }), errBoom)
			}
			for i, b := range f.breakers {
				ranOne := false
				err := b.Do(ctx, func(context.Context) error { ranOne = true; return nil })
				var open *breaker.OpenError
				require.ErrorAs(t, err, &open, "replica %d", i)
				assert.False(t, ranOne, "replica %d ran a call on an open circuit", i)
				assert.Greater(t, open.RetryAfter, 50*time.Second)
			}
			total, _ := f.changeCount()
			assert.Equal(t, 1, total)
			requireEveryKeyExpires(t, f.clients[0], f.prefix)
		})
	}
}

// TestRedisFleetTripsOnce: 4 replicas x 16 goroutines, every call fails,
// threshold 5. The circuit trips exactly once, OnStateChange fires exactly
// once in the whole fleet, and at most threshold + 63 calls run.
func TestRedisFleetTripsOnce(t *testing.T) {
	const replicas, perReplica, threshold = 4, 16, 5
	for _, be := range backends(t) {
		t.Run(be.name, func(t *testing.T) {
			ctx := context.Background()
			for round := range 5 {
				f := newFleet(t, be, replicas, breaker.Config{FailureThreshold: threshold, Timeout: time.Minute}, nil)
				ran := failTogether(t, ctx, f.breakers, perReplica)
				total, byKind := f.changeCount()
				assert.Equal(t, 1, total, "round %d: OnStateChange calls fleet-wide: %v", round, byKind)
				assert.Equal(t, 1, byKind[[2]breaker.State{breaker.StateClosed, breaker.StateOpen}], "round %d", round)
				assert.LessOrEqual(t, ran, int64(threshold+replicas*perReplica-1), "round %d: calls run", round)
				assert.GreaterOrEqual(t, ran, int64(threshold), "round %d", round)
				snap, err := f.breakers[0].Snapshot(ctx)
				require.NoError(t, err)
				assert.Equal(t, breaker.StateOpen, snap.State)
				assert.EqualValues(t, 1, snap.Generation, "round %d: tripped exactly once", round)
				t.Logf("round %d: %d calls ran (bound %d)", round, ran, threshold+replicas*perReplica-1)
				requireEveryKeyExpires(t, f.clients[0], f.prefix)
			}
		})
	}
}

// probeCounter counts the probes that run at once across the fleet, from
// the moment Admit granted a permit until the outcome is handed back: per
// half-open generation (what the Store contract bounds: a transition
// clears every permit), and across generations (a probe of an earlier
// round that outlives its round's reopening and the next Timeout).
type probeCounter struct {
	mu        sync.Mutex
	inFlight  map[uint64]int // generation -> probes running
	maxPerGen int
	total     int // running, any generation
	maxTotal  int
	probes    int
}

func (c *probeCounter) start(gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.inFlight[gen]++
	c.maxPerGen = max(c.maxPerGen, c.inFlight[gen])
	c.total++
	c.maxTotal = max(c.maxTotal, c.total)
	c.probes++
}

func (c *probeCounter) end(gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.inFlight[gen]--
	c.total--
}

type countingStore struct {
	breaker.Store
	c *probeCounter
}

func (s countingStore) Admit(ctx context.Context, name string, p breaker.Policy) (breaker.Admission, error) {
	a, err := s.Store.Admit(ctx, name, p)
	if err == nil && a.Allowed && a.Probe != 0 {
		s.c.start(a.Generation)
	}
	return a, err
}

func (s countingStore) Record(ctx context.Context, name string, p breaker.Policy, o breaker.Outcome) (breaker.Result, error) {
	if o.Probe != 0 {
		s.c.end(o.Generation)
	}
	return s.Store.Record(ctx, name, p, o)
}

// TestRedisFleetHalfOpenRace: 50 replicas hammer one circuit that keeps
// tripping (threshold 1, half the calls fail) and reopening (Timeout 20ms):
// over many half-open rounds, never more than HalfOpenMaxCalls probes run
// at once fleet-wide.
func TestRedisFleetHalfOpenRace(t *testing.T) {
	const replicas, maxProbes, rounds = 50, 3, 30
	for _, be := range backends(t) {
		t.Run(be.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			counter := &probeCounter{inFlight: map[uint64]int{}}
			f := newFleet(t, be, replicas, breaker.Config{
				FailureThreshold: 1,
				Timeout:          20 * time.Millisecond,
				SuccessThreshold: 2,
				HalfOpenMaxCalls: maxProbes,
				ProbeTimeout:     time.Minute, // no permit lapses: every slot is held until its outcome
			}, func(st breaker.Store) breaker.Store { return countingStore{st, counter} })
			halfOpens := func() int {
				_, byKind := f.changeCount()
				return byKind[[2]breaker.State{breaker.StateOpen, breaker.StateHalfOpen}]
			}
			var wg sync.WaitGroup
			for i, b := range f.breakers {
				c := f.clients[i]
				wg.Go(func() {
					for ctx.Err() == nil && halfOpens() < rounds {
						_ = b.Do(ctx, func(ctx context.Context) error {
							// Work: one round trip to Redis, then fail half the time.
							if err := c.Ping(ctx).Err(); err != nil {
								return err
							}
							if rand.IntN(2) == 0 {
								return errBoom
							}
							return nil
						})
					}
				})
			}
			wg.Wait()
			require.NoError(t, ctx.Err(), "too few half-open rounds in time: %d", halfOpens())
			_, byKind := f.changeCount()
			t.Logf("%d half-open rounds, %d probes, at most %d at once in one generation, %d across generations; transitions %v",
				halfOpens(), counter.probes, counter.maxPerGen, counter.maxTotal, byKind)
			assert.LessOrEqual(t, counter.maxPerGen, maxProbes, "probes at once in one half-open generation")
			assert.GreaterOrEqual(t, halfOpens(), rounds)
			assert.Zero(t, counter.total)
			requireEveryKeyExpires(t, f.clients[0], f.prefix)
		})
	}
}

// failTogether starts perBreaker goroutines on every breaker at once; each
// calls a function that always fails until its breaker rejects it with
// ErrOpen. It returns how many calls ran, fleet-wide.
func failTogether(t *testing.T, ctx context.Context, bs []*breaker.Breaker, perBreaker int) int64 {
	t.Helper()
	var ran atomic.Int64
	start := make(chan struct{})
	var wg sync.WaitGroup
	for _, b := range bs {
		for range perBreaker {
			wg.Go(func() {
				<-start
				for {
					err := b.Do(ctx, func(context.Context) error { ran.Add(1); return errBoom })
					if errors.Is(err, breaker.ErrOpen) {
						return
					}
					if !errors.Is(err, errBoom) {
						t.Errorf("unexpected error %v", err)
						return
					}
				}
			})
		}
	}
	close(start)
	wg.Wait()
	return ran.Load()
}
