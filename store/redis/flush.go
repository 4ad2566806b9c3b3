package redisstore

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/tripline/tripline/breaker"
)

// heldReset is a reset that a replica held back for a closed-state success
// (consecutive mode), as a record call carries it. It clears only the
// failures counted up to known, the failure sequence number the replica
// had learned when the success came (see record.lua): a failure counted
// after the success, by another replica, is never cleared by it.
type heldReset struct {
	ok    bool
	known uint64
}

// queueReset holds back the reset that a closed-state success of generation
// gen causes, for the next flush: one write per circuit per flush interval
// at most, however many successes come. known is the failure sequence
// number the success's view had learned.
func (s *Store) queueReset(c *circuit, p breaker.Policy, gen, known uint64) {
	if pp := c.resetPolicy.Load(); pp == nil || *pp != p {
		np := p
		c.resetPolicy.Store(&np)
	}
	raise(&c.resetSeq, known)
	if c.pending.Swap(gen+1) != 0 {
		return // already queued
	}
	// A sweep may have dropped c while its caller held it: put it back, so
	// that the circuit's next failure finds this reset ("reset first").
	s.circuits.LoadOrStore(c.name, c)
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	s.dirty = append(s.dirty, c)
	if s.timer == nil && !s.closed.Load() {
		s.bg.Add(1)
		s.timer = time.AfterFunc(s.flushEvery, s.flushTick)
	}
}

// flushTick sends the resets queued since the timer was set. It runs on
// the timer's goroutine; no goroutine waits while nothing is queued.
func (s *Store) flushTick() {
	defer s.bg.Done()
	s.flushMu.Lock()
	list := s.dirty
	s.dirty, s.timer = nil, nil
	s.flushMu.Unlock()
	if err := s.flush(context.Background(), list); err != nil {
		s.logger.LogAttrs(context.Background(), slog.LevelWarn, "redisstore: background reset failed", slog.Any("error", err))
	}
}

// flushAll stops the timer and sends every queued reset (Close).
func (s *Store) flushAll() error {
	s.flushMu.Lock()
	t, list := s.timer, s.dirty
	s.timer, s.dirty = nil, nil
	s.flushMu.Unlock()
	if t != nil && t.Stop() {
		s.bg.Done() // flushTick will not run
	}
	return s.flush(context.Background(), list)
}

// raise sets a to v if v is larger. The successes a held-back reset stands
// for all came before it is sent, so it may clear up to the largest failure
// sequence number any of them had learned.
func raise(a *atomic.Uint64, v uint64) {
	for old := a.Load(); v > old; old = a.Load() {
		if a.CompareAndSwap(old, v) {
			return
		}
	}
}

// resetItem is one circuit's reset in a flush.
type resetItem struct {
	c     *circuit
	gen   uint64
	known uint64 // see heldReset
}

// flush sends the pending reset of each circuit in list (those still
// pending), in one pipeline: each is the record script with a success of
// the generation the reset belongs to, so Redis ignores it if the circuit
// has moved on. A circuit's lock is held until its reply is learned, so a
// failure on it waits for the reset (its order on this replica is kept).
// One flush runs at a time.
func (s *Store) flush(ctx context.Context, list []*circuit) error {
	s.flushing.Lock()
	defer s.flushing.Unlock()
	var batch []resetItem
	defer func() {
		for _, it := range batch {
			it.c.sending.Store(0)
			it.c.mu.Unlock()
		}
	}()
	seen := make(map[*circuit]bool, len(list))
	for _, c := range list {
		// A circuit is queued again when a failure took its pending reset
		// (beforeFailure) and a success queued a new one before this flush:
		// lock it once.
		if seen[c] {
			continue
		}
		seen[c] = true
		c.mu.Lock()
		// sending is set before pending is cleared: a success that finds
		// neither set would queue the same reset again (recordLocal).
		c.sending.Store(c.pending.Load())
		g := c.pending.Swap(0)
		known := c.resetSeq.Swap(0)
		if g == 0 {
			c.sending.Store(0)
			c.mu.Unlock()
			continue
		}
		c.sending.Store(g)
		if v := c.view.Load(); v != nil && v.gen > g-1 {
			c.sending.Store(0)
			c.mu.Unlock() // the circuit has moved on: Redis would ignore it
			continue
		}
		c.ownFailure.Store(false)
		batch = append(batch, resetItem{c: c, gen: g - 1, known: known})
	}
	if len(batch) == 0 {
		return nil
	}
	keys := make([][]string, len(batch))
	args := make([][]any, len(batch))
	for i, it := range batch {
		keys[i] = it.c.keys.list(s.callID())
		o := breaker.Outcome{Kind: breaker.OutcomeSuccess, Generation: it.gen}
		args[i] = s.recordArgs(it.c, *it.c.resetPolicy.Load(), o, heldReset{ok: true, known: it.known})
	}
	at := s.mark()
	replies, errs := s.evalMany(ctx, recordScript, keys, args)
	for i, it := range batch {
		if errs[i] != nil {
			errs[i] = s.failCall(ctx, "reset", it.c.name, errs[i])
			it.c.ownFailure.Store(true) // the next success tries again
			continue
		}
		text, err := s.text("reset", it.c.name, replies[i])
		if err != nil {
			errs[i] = err
			continue
		}
		// PolicyDiffers is dropped: a background reset has no Breaker to
		// tell, and the circuit's next call that reaches Redis tells its own.
		_, f, err := s.recordReply(it.c.name, text)
		if err != nil {
			errs[i] = err
			continue
		}
		s.learn(it.c, f, at)
	}
	return errors.Join(errs...)
}

// Close stops the store's background work: the subscription that keeps the
// local views true, and the timer of the held-back resets, which it sends
// first (bounded by the call timeout). It waits for both to end. The Store
// still answers afterwards, as a strict one (WithStrict). Close does not
// close the client. Calling it again does nothing.
func (s *Store) Close() error {
	if !s.closed.CompareAndSwap(false, true) {
		return nil
	}
	close(s.done)
	s.endLife()
	s.psMu.Lock()
	ps, cancel := s.ps, s.cancelSub
	s.psMu.Unlock()
	if cancel != nil {
		cancel()
	}
	if ps != nil {
		_ = ps.Close()
	}
	var err error
	if s.err == nil {
		err = s.flushAll()
	}
	s.settles.mu.Lock()
	s.settles.closed = true // after this, no settle loop starts: Wait may begin
	s.settles.mu.Unlock()
	s.bg.Wait()
	return err
}
