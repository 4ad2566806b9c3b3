//go:build integration

package integration

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tripline/tripline/breaker"
	"github.com/tripline/tripline/internal/redisserver"
	"github.com/tripline/tripline/scripts/lua"
	redisstore "github.com/tripline/tripline/store/redis"
	"github.com/tripline/tripline/store/storetest"
)

// prefixSeq makes every store test's prefix unique within the run.
var prefixSeq atomic.Uint64

func newPrefix(t *testing.T) string {
	return fmt.Sprintf("itest%d-%d", time.Now().UnixNano()%1e6, prefixSeq.Add(1))
}

// newClient returns a client on a single server, closed when t ends.
func newClient(t *testing.T, addr string) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// newClusterClient returns a cluster client, closed when t ends.
func newClusterClient(t *testing.T, addrs []string) *redis.ClusterClient {
	t.Helper()
	c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// requireEveryKeyExpires scans every master (or the single server) and
// requires a TTL on every key under prefix, and at least one such key; it
// returns the number of keys.
func requireEveryKeyExpires(t *testing.T, c redis.UniversalClient, prefix string) int {
	t.Helper()
	ctx := context.Background()
	var n atomic.Int64 // ForEachMaster runs check on every master at once
	check := func(ctx context.Context, c *redis.Client) error {
		it := c.Scan(ctx, 0, prefix+":*", 1000).Iterator()
		for it.Next(ctx) {
			ttl, err := c.PTTL(ctx, it.Val()).Result()
			if err != nil {
				return err
			}
			if ttl == -2*time.Nanosecond { // gone since the scan
				continue
			}
			assert.Positive(t, ttl, "key %q has no TTL", it.Val())
			n.Add(1)
		}
		return it.Err()
	}
	switch c := c.(type) {
	case *redis.ClusterClient:
		require.NoError(t, c.ForEachMaster(ctx, check))
	case *redis.Client:
		require.NoError(t, check(ctx, c))
	default:
		t.Fatalf("unexpected client %T", c)
	}
	return int(n.Load())
}

func TestRedisStoreConformanceSingle(t *testing.T) {
	srv := redisserver.StartSingle(t)
	storetest.Run(t, func(t *testing.T) storetest.Harness {
		prefix := newPrefix(t)
		c := newClient(t, srv.Addr())
		t.Cleanup(func() { requireEveryKeyExpires(t, c, prefix) })
		return storetest.Harness{
			Store: strictStore(t, c, redisstore.WithPrefix(prefix)),
			NewReplica: func(t *testing.T) breaker.Store {
				return strictStore(t, newClient(t, srv.Addr()), redisstore.WithPrefix(prefix))
			},
			Advance:  time.Sleep,
			RealTime: true,
		}
	})
}

func TestRedisStoreConformanceCluster(t *testing.T) {
	cl := redisserver.StartCluster(t, 3, 0)
	storetest.Run(t, func(t *testing.T) storetest.Harness {
		prefix := newPrefix(t)
		c := newClusterClient(t, cl.Addrs())
		t.Cleanup(func() { requireEveryKeyExpires(t, c, prefix) })
		return storetest.Harness{
			Store: strictStore(t, c, redisstore.WithPrefix(prefix)),
			NewReplica: func(t *testing.T) breaker.Store {
				return strictStore(t, newClusterClient(t, cl.Addrs()), redisstore.WithPrefix(prefix))
			},
			Advance:  time.Sleep,
			RealTime: true,
		}
	})
}

// deployment is a single node or a Cluster, with its nodes for commands
// sent to each (SCRIPT FLUSH, INFO).
type deployment struct {
	name   string
	client func(t *testing.T) redis.UniversalClient
	nodes  func() []*redisserver.Server
}

func deployments(t *testing.T) []deployment {
	t.Helper()
	srv := redisserver.StartSingle(t)
	cl := redisserver.StartCluster(t, 3, 0)
	return []deployment{
		{"single", func(t *testing.T) redis.UniversalClient { return newClient(t, srv.Addr()) },
			func() []*redisserver.Server { return []*redisserver.Server{srv} }},
		{"cluster", func(t *testing.T) redis.UniversalClient { return newClusterClient(t, cl.Addrs()) },
			cl.Nodes},
	}
}

func onEveryNode(t *testing.T, d deployment, args ...string) {
	t.Helper()
	for _, n := range d.nodes() {
		_, err := n.Do(context.Background(), args...)
		require.NoError(t, err, "%s on %s", args, n)
	}
}

// scriptSHAs pins the SHA1 of every script, as store/redis's unit test
// does; a change to a .lua file must update both, deliberately.
var scriptSHAs = map[string]string{
	"admit":  "4f9a9d2e2092d0b9aa6db0237287186f4322b3a1",
	"record": "c62ef1665abf49fdbafbd4a5099fe6628c82a219",
	"apply":  "7c6b968e1ce2f348f7a9f7ce120e2e588dce32c5",
	"load":   "f671b4c586edc0a1b4e660519c1479fd47ae9df5",
	"settle": "b2f421621ebc1ae79e10ec98c46f7e4665023194",
}

// TestRedisScriptSHAs: real Redis (every node of a Cluster) gives each
// script the pinned SHA1, the one go-redis sends with EVALSHA.
func TestRedisScriptSHAs(t *testing.T) {
	srcs := map[string]string{"admit": lua.Admit, "record": lua.Record, "apply": lua.Apply, "load": lua.Load, "settle": lua.Settle}
	for _, d := range deployments(t) {
		t.Run(d.name, func(t *testing.T) {
			for _, n := range d.nodes() {
				for name, src := range srcs {
					got, err := n.Do(context.Background(), "SCRIPT", "LOAD", src)
					require.NoError(t, err, "%s on %s", name, n)
					assert.Equal(t, scriptSHAs[name], got, "%s on %s", name, n)
					assert.Equal(t, scriptSHAs[name], redis.NewScript(src).Hash(), name)
				}
			}
		})
	}
}

// TestRedisNoScript: with the script cache flushed before every call (a
// restart, a failover, SCRIPT FLUSH), every path still works.
func TestRedisNoScript(t *testing.T) {
	for _, d := range deployments(t) {
		t.Run(d.name, func(t *testing.T) {
			ctx := context.Background()
			prefix := newPrefix(t)
			s := strictStore(t, d.client(t), redisstore.WithPrefix(prefix))
			p := breaker.Policy{FailureThreshold: 1, Timeout: 50 * time.Millisecond, SuccessThreshold: 1,
				HalfOpenMaxCalls: 1, ProbeTimeout: time.Second}
			flush := func() { onEveryNode(t, d, "SCRIPT", "FLUSH") }

			flush()
			a, err := s.Admit(ctx, "c", p)
			require.NoError(t, err)
			require.True(t, a.Allowed)
			flush()
			r, err := s.Record(ctx, "c", p, breaker.Outcome{Kind: breaker.OutcomeFailure})
			require.NoError(t, err)
			require.Equal(t, breaker.StateOpen, r.State)
			flush()
			snap, err := s.Load(ctx, "c")
			require.NoError(t, err)
			require.Equal(t, breaker.StateOpen, snap.State)
			time.Sleep(p.Timeout + 20*time.Millisecond) // Redis TIME must pass the open timeout
			flush()
			a, err = s.Admit(ctx, "c", p)
			require.NoError(t, err)
			require.True(t, a.Allowed)
			require.Equal(t, breaker.StateHalfOpen, a.State)
			flush()
			_, err = s.Apply(ctx, "c", breaker.Command{Kind: breaker.CommandForceOpen, Actor: "ops"})
			require.NoError(t, err)
			flush()
			list, err := s.List(ctx)
			require.NoError(t, err)
			require.Len(t, list, 1)
			assert.Equal(t, "ops", list[0].Override.Actor)
		})
	}
}

// TestRedisMalformedData: data no script wrote gives ErrCorrupt (with
// real Redis's error text), nothing panics, and a Reset repairs it.
func TestRedisMalformedData(t *testing.T) {
	for _, d := range deployments(t) {
		t.Run(d.name, func(t *testing.T) {
			ctx := context.Background()
			c := d.client(t)
			prefix := newPrefix(t)
			s := strictStore(t, c, redisstore.WithPrefix(prefix))
			p := breaker.Policy{FailureThreshold: 3, Timeout: time.Second, SuccessThreshold: 1, HalfOpenMaxCalls: 1, ProbeTimeout: time.Second}
			for _, bad := range []func(){
				func() { c.HSet(ctx, s.Keys("c")[0], "g", "1e3") },
				func() { c.HSet(ctx, s.Keys("c")[0], "st", "9") },
				func() { c.Del(ctx, s.Keys("c")[0]); c.Set(ctx, s.Keys("c")[0], "x", time.Minute) },
			} {
				_, err := s.Record(ctx, "c", p, breaker.Outcome{Kind: breaker.OutcomeFailure})
				require.NoError(t, err)
				bad()
				_, err = s.Admit(ctx, "c", p)
				require.ErrorIs(t, err, redisstore.ErrCorrupt)
				assert.Contains(t, err.Error(), `redisstore: admit circuit "c": malformed circuit data`)
				t.Logf("%v", err)
				_, err = s.Load(ctx, "c")
				require.ErrorIs(t, err, redisstore.ErrCorrupt)
				_, err = s.Apply(ctx, "c", breaker.Command{Kind: breaker.CommandForceClose})
				require.ErrorIs(t, err, redisstore.ErrCorrupt)
				_, err = s.Apply(ctx, "c", breaker.Command{Kind: breaker.CommandReset})
				require.NoError(t, err, "reset repairs")
				snap, err := s.Load(ctx, "c")
				require.NoError(t, err)
				assert.Equal(t, breaker.StateClosed, snap.State)
			}
			requireEveryKeyExpires(t, c, prefix)
		})
	}
}

// replayHook runs every script call twice while armed, as go-redis does
// when it retries a command whose reply was lost.
type replayHook struct{ armed atomic.Bool }

func (h *replayHook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *replayHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}
func (h *replayHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if err := next(ctx, cmd); err != nil || !h.armed.Load() || (cmd.Name() != "evalsha" && cmd.Name() != "eval") {
			return err
		}
		return next(ctx, cmd)
	}
}

// TestRedisRetriedCalls: a script call run twice with the same call id
// counts once, leases one probe and reports its transition both times.
func TestRedisRetriedCalls(t *testing.T) {
	for _, d := range deployments(t) {
		t.Run(d.name, func(t *testing.T) {
			ctx := context.Background()
			c := d.client(t)
			h := &replayHook{}
			c.AddHook(h)
			prefix := newPrefix(t)
			s := strictStore(t, c, redisstore.WithPrefix(prefix))
			p := breaker.Policy{FailureThreshold: 2, Timeout: 50 * time.Millisecond, SuccessThreshold: 1, HalfOpenMaxCalls: 2, ProbeTimeout: time.Minute}
			fail := breaker.Outcome{Kind: breaker.OutcomeFailure}

			h.armed.Store(true)
			r, err := s.Record(ctx, "c", p, fail)
			require.NoError(t, err)
			assert.Equal(t, breaker.StateClosed, r.State, "one failure, threshold 2: counted once")
			r, err = s.Record(ctx, "c", p, fail)
			require.NoError(t, err)
			assert.Equal(t, breaker.Transition{From: breaker.StateClosed, To: breaker.StateOpen, Generation: 1}, r.Transition)
			time.Sleep(p.Timeout + 20*time.Millisecond)
			a, err := s.Admit(ctx, "c", p)
			require.NoError(t, err)
			assert.Equal(t, breaker.Transition{From: breaker.StateOpen, To: breaker.StateHalfOpen, Generation: 2}, a.Transition)
			h.armed.Store(false)
			snap, err := s.Load(ctx, "c")
			require.NoError(t, err)
			assert.Equal(t, 1, snap.Probes)
			assert.EqualValues(t, 2, snap.Generation)
			requireEveryKeyExpires(t, c, prefix)
		})
	}
}

// TestRedisClusterListAndWatch: circuits spread over every master are all
// listed, and a watcher connected anywhere sees every transition.
func TestRedisClusterListAndWatch(t *testing.T) {
	cl := redisserver.StartCluster(t, 3, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	prefix := newPrefix(t)
	s := strictStore(t, newClusterClient(t, cl.Addrs()), redisstore.WithPrefix(prefix))
	w := strictStore(t, newClusterClient(t, cl.Addrs()), redisstore.WithPrefix(prefix))
	events, err := w.Watch(ctx)
	require.NoError(t, err)

	const n = 60
	masters := map[string]bool{}
	var want []string
	for i := range n {
		name := fmt.Sprintf("circuit-%02d {:}", i)
		want = append(want, name)
		masters[cl.MasterForKey(s.Keys(name)[0]).Addr()] = true
		_, err := s.Apply(ctx, name, breaker.Command{Kind: breaker.CommandForceOpen, Actor: "ops"})
		require.NoError(t, err)
	}
	require.Len(t, masters, 3, "the circuits must spread over every master")
	list, err := s.List(ctx)
	require.NoError(t, err)
	var got []string
	for _, snap := range list {
		got = append(got, snap.Name)
	}
	assert.Equal(t, want, got)

	seen := map[string]bool{}
	for len(seen) < n {
		select {
		case ev := <-events:
			seen[ev.Name] = true
			assert.Equal(t, "force-open", ev.Cause)
		case <-ctx.Done():
			t.Fatalf("saw %d of %d transitions", len(seen), n)
		}
	}
	cancel()
	for range events {
	}
	requireEveryKeyExpires(t, newClusterClient(t, cl.Addrs()), prefix)
}

// commandCalls reads INFO commandstats from every node and sums the calls
// per command ("evalsha", "hmget", ...).
func commandCalls(t *testing.T, d deployment) map[string]int64 {
	t.Helper()
	calls := map[string]int64{}
	for _, n := range d.nodes() {
		v, err := n.Do(context.Background(), "INFO", "commandstats")
		require.NoError(t, err)
		for _, line := range strings.Split(v.(string), "\r\n") {
			name, rest, ok := strings.Cut(strings.TrimPrefix(line, "cmdstat_"), ":calls=")
			if !ok || !strings.HasPrefix(line, "cmdstat_") {
				continue
			}
			num, _, _ := strings.Cut(rest, ",")
			c, err := strconv.ParseInt(num, 10, 64)
			require.NoError(t, err, line)
			calls[name] += c
		}
	}
	return calls
}

// TestRedisRoundTrips measures, from INFO commandstats deltas on the
// servers, the commands clients sent (round trips) and the commands the
// scripts ran inside Redis, per Breaker call on each path of a strict
// store.
func TestRedisRoundTrips(t *testing.T) {
	for _, d := range deployments(t) {
		t.Run(d.name, func(t *testing.T) {
			ctx := context.Background()
			prefix := newPrefix(t)
			newBreaker := func(name string, cfg breaker.Config) *breaker.Breaker {
				cfg.Store = strictStore(t, d.client(t), redisstore.WithPrefix(prefix))
				b, err := breaker.New(name, cfg)
				require.NoError(t, err)
				return b
			}
			ok := func(context.Context) error { return nil }
			fail := func(context.Context) error { return errBoom }
			healthy := newBreaker("healthy", breaker.Config{FailureThreshold: 1000})
			failing := newBreaker("failing", breaker.Config{FailureThreshold: 1000})
			open := newBreaker("open", breaker.Config{FailureThreshold: 1, Timeout: time.Hour})
			probing := newBreaker("probing", breaker.Config{FailureThreshold: 1, Timeout: 20 * time.Millisecond})
			// Warm up: every script in every node's cache, the circuits in
			// their states.
			for _, b := range []*breaker.Breaker{healthy, failing, open, probing} {
				_ = b.Do(ctx, fail)
				_ = b.Do(ctx, ok)
				_, err := b.Snapshot(ctx)
				require.NoError(t, err)
			}
			const n = 20
			for _, p := range []struct {
				name   string
				before func() // not measured
				call   func() error
				trips  int64
			}{
				{"closed success", nil, func() error { return healthy.Do(ctx, ok) }, 1}, // nothing to reset: the success is not sent
				{"closed failure", nil, func() error { return failing.Do(ctx, fail) }, 2},
				{"open rejection", nil, func() error { return open.Do(ctx, ok) }, 1},
				{"half-open probe", func() { time.Sleep(30 * time.Millisecond) }, func() error { return probing.Do(ctx, fail) }, 2},
			} {
				var trips, inside int64
				var elapsed time.Duration
				for range n {
					if p.before != nil {
						p.before()
					}
					before := commandCalls(t, d)
					start := time.Now()
					_ = p.call()
					elapsed += time.Since(start)
					after := commandCalls(t, d)
					for cmd, c := range after {
						delta := c - before[cmd]
						switch cmd {
						case "evalsha", "eval":
							trips += delta
						case "info", "auth", "hello", "client|setinfo", "client|setname":
							// the measuring connection's own commands
						default:
							inside += delta
						}
					}
				}
				assert.Equal(t, p.trips*n, trips, "%s: round trips for %d calls", p.name, n)
				t.Logf("%-16s %.1f round trips/call (EVALSHA), %.1f commands run inside the scripts/call, %v/call",
					p.name, float64(trips)/n, float64(inside)/n, elapsed/n)
			}
		})
	}
}

// TestRedisNoClientTime: the store sends no time of the client's to Redis:
// no argument of any script call is within a year of now in seconds,
// milliseconds, microseconds or nanoseconds. Every decision is made on
// Redis TIME, so clock skew between replicas changes nothing.
func TestRedisNoClientTime(t *testing.T) {
	srv := redisserver.StartSingle(t)
	c := newClient(t, srv.Addr())
	h := &argsHook{}
	c.AddHook(h)
	ctx := context.Background()
	b, err := breaker.New("skew", breaker.Config{Store: strictStore(t, c, redisstore.WithPrefix(newPrefix(t))),
		FailureThreshold: 1, Timeout: 30 * time.Millisecond, FailureWindow: time.Second})
	require.NoError(t, err)
	_ = b.Do(ctx, func(context.Context) error { return errBoom })
	_ = b.Do(ctx, func(context.Context) error { return nil })
	time.Sleep(40 * time.Millisecond)
	_ = b.Do(ctx, func(context.Context) error { return nil })
	require.NoError(t, b.ForceOpen(ctx, time.Minute))
	_, err = b.Snapshot(ctx)
	require.NoError(t, err)

	now := time.Now()
	year := 365 * 24 * time.Hour
	h.mu.Lock()
	defer h.mu.Unlock()
	require.NotEmpty(t, h.args)
	for _, a := range h.args {
		v, err := strconv.ParseInt(fmt.Sprint(a), 10, 64)
		if err != nil {
			continue
		}
		for _, unit := range []time.Duration{time.Second, time.Millisecond, time.Microsecond, time.Nanosecond} {
			lo, hi := now.Add(-year).UnixNano()/int64(unit), now.Add(year).UnixNano()/int64(unit)
			assert.False(t, v >= lo && v <= hi, "argument %d looks like a client time in %s", v, unit)
		}
	}
}

// argsHook keeps the arguments of every script call.
type argsHook struct {
	mu   sync.Mutex
	args []any
}

func (h *argsHook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *argsHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}
func (h *argsHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if cmd.Name() == "evalsha" || cmd.Name() == "eval" {
			h.mu.Lock()
			h.args = append(h.args, cmd.Args()[1:]...)
			h.mu.Unlock()
		}
		return next(ctx, cmd)
	}
}

// strictStore makes a Store that asks Redis on every call: these tests check
// the scripts on real Redis, not the local views (integration/localview_*
// does). Its call timeout allows for a loaded CI machine under -race. It is
// closed when the test ends.
func strictStore(t *testing.T, c redis.UniversalClient, opts ...redisstore.Option) *redisstore.Store {
	s := redisstore.New(c, append([]redisstore.Option{redisstore.WithStrict(), redisstore.WithCallTimeout(2 * time.Second)}, opts...)...)
	t.Cleanup(func() { _ = s.Close() })
	return s
}
