package redisstore

import (
	"cmp"
	"context"
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
			var keys []string
			var next uint64
			err := s.bound(cctx, func(cctx context.Context) (err error) {
				keys, next, err = c.Scan(cctx, cursor, pattern, scanCount).Result()
				return err
			})
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
		if s.timedOut(ctx, err) {
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

// loadMany loads circuits in one pipeline (see evalMany).
func (s *Store) loadMany(ctx context.Context, names []string) ([]breaker.Snapshot, error) {
	keys := make([][]string, len(names))
	args := make([][]any, len(names))
	for i, name := range names {
		k := keysFor(s.prefix, name)
		keys[i], args[i] = k.state(), s.baseArgs(k, 0)
	}
	replies, errs := s.evalMany(ctx, loadScript, keys, args)
	out := make([]breaker.Snapshot, 0, len(names))
	for i, name := range names {
		if errs[i] != nil {
			return nil, s.failCall(ctx, "load", name, errs[i])
		}
		snap, _, err := s.snapshot(name, replies[i])
		if err != nil {
			return nil, err
		}
		out = append(out, snap)
	}
	return out, nil
}

// evalMany runs script once per keys[i], args[i], in one pipeline of
// EVALSHA (a single call without one), bounded by the call timeout. A call
// whose script the server lost (NOSCRIPT: restart, failover, SCRIPT FLUSH)
// runs again with Script.Run, which sends the script, under a call timeout
// of its own. Each call has its own
// reply or error, as go-redis gives it (see failCall).
func (s *Store) evalMany(ctx context.Context, script *redis.Script, keys [][]string, args [][]any) ([]any, []error) {
	cctx, cancel := s.callCtx(ctx)
	defer cancel()
	replies := make([]any, len(keys))
	errs := make([]error, len(keys))
	if len(keys) == 1 {
		var v any
		errs[0] = s.bound(cctx, func(cctx context.Context) (err error) {
			v, err = script.Run(cctx, s.client, keys[0], args[0]...).Result()
			return err
		})
		if errs[0] == nil {
			replies[0] = v
		}
		return replies, errs
	}
	pipe := s.client.Pipeline()
	cmds := make([]*redis.Cmd, len(keys))
	for i := range keys {
		cmds[i] = pipe.EvalSha(cctx, script.Hash(), keys[i], args[i]...)
	}
	err := s.bound(cctx, func(cctx context.Context) error {
		_, _ = pipe.Exec(cctx) // each command carries its own error
		return nil
	})
	if err != nil { // the pipeline is still running: its commands are not ours to read
		for i := range errs {
			errs[i] = err
		}
		return replies, errs
	}
	for i, cmd := range cmds {
		replies[i], errs[i] = cmd.Result()
		if redis.HasErrorPrefix(errs[i], "NOSCRIPT") {
			rctx, rcancel := s.callCtx(ctx) // a round trip of its own
			var v any
			errs[i] = s.bound(rctx, func(rctx context.Context) (err error) {
				v, err = script.Run(rctx, s.client, keys[i], args[i]...).Result()
				return err
			})
			if errs[i] == nil {
				replies[i] = v
			}
			rcancel()
		}
	}
	return replies, errs
}
