package bench

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/tripline/tripline/internal/redisserver"
)

// redisEnv is one redis-server, started by the benchmark or test itself on
// a free loopback port (never 6379), that every contender of the run
// shares. It is stopped when the test or benchmark that started it ends.
type redisEnv struct {
	srv   *redisserver.Server
	admin *redis.Client // INFO, MEMORY USAGE, DBSIZE: never a contender's
}

// startRedis starts the server; it fails tb (never skips) when redis-server
// is not on PATH.
func startRedis(tb testing.TB) *redisEnv {
	tb.Helper()
	srv := redisserver.StartSingle(tb)
	env := &redisEnv{srv: srv, admin: redis.NewClient(&redis.Options{Addr: srv.Addr()})}
	tb.Cleanup(func() { _ = env.admin.Close() })
	return env
}

// client returns a new go-redis client to the server, with go-redis's
// defaults (a pool of 10 connections per GOMAXPROCS) except
// ContextTimeoutEnabled (so that a ctx deadline, redisstore's call timeout
// among them, bounds the round trip, as redisstore's documentation asks),
// counting the commands it sends; it is closed when tb ends. Every
// contender's client is made so.
func (e *redisEnv) client(tb testing.TB) (*redis.Client, *countHook) {
	c := redis.NewClient(&redis.Options{Addr: e.srv.Addr(), ContextTimeoutEnabled: true})
	h := &countHook{}
	c.AddHook(h)
	tb.Cleanup(func() { _ = c.Close() })
	return c, h
}

// countHook counts the commands a client sends to Redis (round trips; a
// script call is one command, a pipeline counts each of its commands).
// The commands go-redis sends on its own when it opens a connection
// (HELLO, AUTH, CLIENT SETINFO, SELECT; they pass through hooks too) and
// pub/sub commands are not counted.
type countHook struct{ n atomic.Int64 }

// counted says whether cmd is one of the client's calls, not connection
// set-up.
func counted(cmd redis.Cmder) bool {
	switch cmd.Name() {
	case "hello", "auth", "client", "select":
		return false
	}
	return true
}

func (h *countHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *countHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if counted(cmd) {
			h.n.Add(1)
		}
		return next(ctx, cmd)
	}
}

func (h *countHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, cmd := range cmds {
			if counted(cmd) {
				h.n.Add(1)
			}
		}
		return next(ctx, cmds)
	}
}

// sent returns the commands counted so far.
func (h *countHook) sent() int64 { return h.n.Load() }

// commandStats reads INFO commandstats: for each command, its fields
// (calls, usec, ...) as numbers.
func (e *redisEnv) commandStats(tb testing.TB) map[string]map[string]int64 {
	tb.Helper()
	v, err := e.admin.Info(context.Background(), "commandstats").Result()
	if err != nil {
		tb.Fatalf("INFO commandstats: %v", err)
	}
	out := map[string]map[string]int64{}
	for _, line := range strings.Split(v, "\r\n") {
		rest, ok := strings.CutPrefix(line, "cmdstat_")
		if !ok {
			continue
		}
		name, stats, _ := strings.Cut(rest, ":")
		fields := map[string]int64{}
		for _, kv := range strings.Split(stats, ",") {
			k, num, _ := strings.Cut(kv, "=")
			if k != "calls" && k != "usec" {
				continue // the others are not integers (usec_per_call)
			}
			n, err := strconv.ParseInt(num, 10, 64)
			if err != nil {
				tb.Fatalf("INFO commandstats: %q: %v", line, err)
			}
			fields[k] = n
		}
		if _, ok := fields["calls"]; !ok {
			tb.Fatalf("INFO commandstats: cannot read %q", line)
		}
		out[name] = fields
	}
	return out
}

// commandCalls returns the calls summed over every command Redis ran, the
// commands run inside scripts included, except the ones a connection
// sends about itself (INFO, HELLO, AUTH, CLIENT ...): those are the
// measurement's own and go-redis's connection set-up.
func (e *redisEnv) commandCalls(tb testing.TB) int64 {
	tb.Helper()
	var total int64
	for name, fields := range e.commandStats(tb) {
		switch {
		case name == "info", name == "hello", name == "auth", strings.HasPrefix(name, "client|"):
			continue
		}
		total += fields["calls"]
	}
	return total
}

// usedMemory returns INFO memory's used_memory in bytes.
func (e *redisEnv) usedMemory(tb testing.TB) int64 {
	tb.Helper()
	v, err := e.admin.Info(context.Background(), "memory").Result()
	if err != nil {
		tb.Fatalf("INFO memory: %v", err)
	}
	for _, line := range strings.Split(v, "\r\n") {
		if num, ok := strings.CutPrefix(line, "used_memory:"); ok {
			n, err := strconv.ParseInt(num, 10, 64)
			if err != nil {
				tb.Fatalf("INFO memory: %q: %v", line, err)
			}
			return n
		}
	}
	tb.Fatalf("INFO memory: no used_memory line")
	return 0
}

// circuitSeq makes every circuit name and key prefix of a run distinct, so
// that contenders never meet in Redis and no FLUSHALL is needed.
var circuitSeq atomic.Int64

// newName returns a circuit name (and prefix) that no other setup uses.
func newName(kind string) string {
	return fmt.Sprintf("bench-%s-%d", kind, circuitSeq.Add(1))
}
