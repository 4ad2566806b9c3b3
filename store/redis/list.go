package redisstore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/redis/go-redis/v9"

	"github.com/tripline/tripline/breaker"
)

// scanCount is the COUNT hint of each SCAN step, and the batch of circuits
// loaded in one pipeline.
const scanCount = 256

// Entry is one circuit of List.
type Entry struct {
	breaker.Snapshot
	// Err is set when the circuit's data cannot be read: it matches
	// ErrCorrupt, and the Snapshot holds only the Name. Apply with
	// CommandReset repairs such a circuit.
	Err error
}

// List returns every circuit under the prefix, sorted by name; on Redis
// Cluster it scans every master (a *redis.Ring: every shard). Keys under
// the prefix whose names do not decode are not tripline's and are skipped.
// A circuit that expires during the scan may be missing or read as closed.
// List fails only when Redis does: a circuit holding data that tripline did
// not write is listed with its error (Entry.Err), and the others are read
// as usual, so one damaged circuit hides none of the rest.
func (s *Store) List(ctx context.Context) ([]Entry, error) {
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
	if err := s.forEachNode(ctx, true, scan); err != nil {
		return nil, s.failList(ctx, "list", err)
	}
	sorted := make([]string, 0, len(names))
	for n := range names {
		sorted = append(sorted, n)
	}
	slices.Sort(sorted)
	out := make([]Entry, 0, len(sorted))
	for batch := range slices.Chunk(sorted, scanCount) {
		entries, err := s.loadMany(ctx, batch)
		if err != nil {
			return nil, err
		}
		out = append(out, entries...)
	}
	slices.SortFunc(out, func(a, b Entry) int { return cmp.Compare(a.Name, b.Name) })
	return out, nil
}

// forEachNode runs fn on every node that may hold the prefix's keys
// (masters only) or subscriptions to its channel (every node: a client
// with ReadOnly subscribes on a replica): each master or node of a Cluster,
// each shard of a Ring, else the client itself. fn may run concurrently.
func (s *Store) forEachNode(ctx context.Context, mastersOnly bool, fn func(context.Context, redis.UniversalClient) error) error {
	switch c := s.client.(type) {
	case *redis.ClusterClient:
		each := c.ForEachShard
		if mastersOnly {
			each = c.ForEachMaster
		}
		return each(ctx, func(ctx context.Context, n *redis.Client) error { return fn(ctx, n) })
	case *redis.Ring:
		return c.ForEachShard(ctx, func(ctx context.Context, n *redis.Client) error { return fn(ctx, n) })
	}
	return fn(ctx, s.client)
}

// failList wraps the error of a call that is about the prefix, not one
// circuit.
func (s *Store) failList(ctx context.Context, op string, err error) error {
	if s.timedOut(ctx, err) {
		return fmt.Errorf("redisstore: %s %s: no reply within the call timeout (%s): %w", op, s.prefix, s.callTimeout, err)
	}
	return fmt.Errorf("redisstore: %s %s: %w", op, s.prefix, err)
}

// loadMany loads circuits in one pipeline (see evalMany). A circuit whose
// data cannot be read gets its error in its Entry; any other error fails
// the whole call.
func (s *Store) loadMany(ctx context.Context, names []string) ([]Entry, error) {
	keys := make([][]string, len(names))
	args := make([][]any, len(names))
	for i, name := range names {
		k := keysFor(s.prefix, name)
		keys[i], args[i] = k.state(), s.baseArgs(k, 0)
	}
	replies, errs := s.evalMany(ctx, loadScript, keys, args)
	out := make([]Entry, 0, len(names))
	for i, name := range names {
		var (
			snap breaker.Snapshot
			err  = errs[i]
		)
		if err != nil {
			err = s.failCall(ctx, "load", name, err)
		} else {
			snap, _, err = s.snapshot(name, replies[i])
		}
		switch {
		case errors.Is(err, ErrCorrupt):
			out = append(out, Entry{Snapshot: breaker.Snapshot{Name: name}, Err: err})
		case err != nil:
			return nil, err
		default:
			out = append(out, Entry{Snapshot: snap})
		}
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
	return s.evalWithin(cctx, func() (context.Context, context.CancelFunc) { return s.callCtx(ctx) }, script, keys, args)
}

// evalWithin is evalMany under cctx, with rerun giving the ctx of a call
// that runs again after NOSCRIPT.
func (s *Store) evalWithin(cctx context.Context, rerun func() (context.Context, context.CancelFunc), script *redis.Script, keys [][]string, args [][]any) ([]any, []error) {
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
			rctx, rcancel := rerun() // a round trip of its own
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

// Subscribers returns how many subscriptions follow the prefix's channel
// (PUBSUB NUMSUB), summed over every node of a Cluster: the Stores with
// local views that have made a call (a WithStrict Store never subscribes)
// and watchers (Watch, cbctl watch). Operators use it to tell a prefix in
// use, whose healthy circuits write nothing, from a wrong one.
func (s *Store) Subscribers(ctx context.Context) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	var total atomic.Int64
	err := s.forEachNode(ctx, false, func(ctx context.Context, c redis.UniversalClient) error {
		cctx, cancel := s.callCtx(ctx)
		defer cancel()
		n, err := c.PubSubNumSub(cctx, s.channel).Result()
		total.Add(n[s.channel])
		return err
	})
	if err != nil {
		return 0, s.failList(ctx, "count followers of", err)
	}
	return int(total.Load()), nil
}

// storedScanSteps bounds AnyStored: SCAN steps per node, of storedScanCount
// keys each (about 100,000 keys a node).
const (
	storedScanSteps = 100
	storedScanCount = 1000
)

// AnyStored reports whether Redis holds any circuit under the prefix. It
// looks at about 100,000 keys per node at most (SCAN): complete is false
// when it stopped there without finding one, so found false is then only
// "none seen so far". Operators use it with Subscribers.
func (s *Store) AnyStored(ctx context.Context) (found, complete bool, err error) {
	if s.err != nil {
		return false, false, s.err
	}
	var seen, partial atomic.Bool
	pattern := scanPattern(s.prefix)
	err = s.forEachNode(ctx, true, func(ctx context.Context, c redis.UniversalClient) error {
		var cursor uint64
		for range storedScanSteps {
			if seen.Load() {
				return nil
			}
			cctx, cancel := s.callCtx(ctx)
			keys, next, err := c.Scan(cctx, cursor, pattern, storedScanCount).Result()
			cancel()
			if err != nil {
				return err
			}
			for _, k := range keys {
				if _, ok := nameFromKey(s.prefix, k); ok {
					seen.Store(true)
					return nil
				}
			}
			if next == 0 {
				return nil
			}
			cursor = next
		}
		partial.Store(true)
		return nil
	})
	if err != nil {
		return false, false, s.failList(ctx, "scan", err)
	}
	return seen.Load(), seen.Load() || !partial.Load(), nil
}
