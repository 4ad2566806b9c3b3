package redisstore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/redis/go-redis/v9"

	"github.com/tripline/tripline/breaker"
)

// scanCount is the COUNT hint of each SCAN step, and the batch of circuits
// loaded in one pipeline.
const scanCount = 256

// List returns every circuit under the prefix, sorted by name; on Redis
// Cluster it scans every master (a *redis.Ring: every shard). Keys under
// the prefix whose names do not decode are not tripline's and are skipped.
// A circuit that expires during the scan may be missing or read as closed.
func (s *Store) List(ctx context.Context) ([]breaker.Snapshot, error) {
	if s.err != nil {
		return nil, s.err
	}
	var (
		mu    sync.Mutex
		names = map[string]bool{}
	)
	pattern := scanPattern(s.prefix)
	scan := func(ctx context.Context, c redis.UniversalClient) error {
		var cursor uint64
		for {
			cctx, cancel := s.callCtx(ctx)
			keys, next, err := c.Scan(cctx, cursor, pattern, scanCount).Result()
			cancel()
			if err != nil {
				return err
			}
			mu.Lock()
			for _, k := range keys {
				if name, ok := nameFromKey(s.prefix, k); ok {
					names[name] = true
				}
			}
			mu.Unlock()
			if next == 0 {
				return nil
			}
			cursor = next
		}
	}
	var err error
	switch c := s.client.(type) {
	case *redis.ClusterClient:
		err = c.ForEachMaster(ctx, func(ctx context.Context, n *redis.Client) error { return scan(ctx, n) })
	case *redis.Ring:
		err = c.ForEachShard(ctx, func(ctx context.Context, n *redis.Client) error { return scan(ctx, n) })
	default:
		err = scan(ctx, s.client)
	}
	if err != nil {
		if s.callTimeout > 0 && ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
			return nil, fmt.Errorf("redisstore: list %s: no reply within the call timeout (%s): %w", s.prefix, s.callTimeout, err)
		}
		return nil, fmt.Errorf("redisstore: list %s: %w", s.prefix, err)
	}
	sorted := make([]string, 0, len(names))
	for n := range names {
		sorted = append(sorted, n)
	}
	slices.Sort(sorted)
	out := make([]breaker.Snapshot, 0, len(sorted))
	for batch := range slices.Chunk(sorted, scanCount) {
		snaps, err := s.loadMany(ctx, batch)
		if err != nil {
			return nil, err
		}
		out = append(out, snaps...)
	}
	slices.SortFunc(out, func(a, b breaker.Snapshot) int { return cmp.Compare(a.Name, b.Name) })
	return out, nil
}

// loadMany loads circuits in one pipeline of EVALSHA; a circuit whose
// script the server lost (NOSCRIPT: restart, failover, SCRIPT FLUSH) is
// loaded again with Script.Run, which sends the script.
func (s *Store) loadMany(ctx context.Context, names []string) ([]breaker.Snapshot, error) {
	pipe := s.client.Pipeline()
	cmds := make([]*redis.Cmd, len(names))
	cctx, cancel := s.callCtx(ctx)
	for i, name := range names {
		k := keysFor(s.prefix, name)
		cmds[i] = pipe.EvalSha(cctx, loadScript.Hash(), []string{k.hash, k.window, k.leases}, s.baseArgs(k, 0)...)
	}
	_, _ = pipe.Exec(cctx) // each command carries its own error
	cancel()
	out := make([]breaker.Snapshot, 0, len(names))
	for i, name := range names {
		v, err := cmds[i].Result()
		if redis.HasErrorPrefix(err, "NOSCRIPT") {
			k := keysFor(s.prefix, name)
			cctx, cancel := s.callCtx(ctx)
			v, err = loadScript.Run(cctx, s.client, []string{k.hash, k.window, k.leases}, s.baseArgs(k, 0)...).Result()
			cancel()
		}
		if err != nil {
			return nil, s.failCall(ctx, "load", name, err)
		}
		snap, _, err := s.snapshot(name, v)
		if err != nil {
			return nil, err
		}
		out = append(out, snap)
	}
	return out, nil
}
