package redisstore

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tripline/tripline/breaker"
)

// A write call (admit, record, apply) whose reply the store did not read
// may still run in Redis: a request that timed out stays in the server's
// queue, and a stalled server runs it when it wakes. An admission that
// runs then may lease the fleet's only probe permit to a caller that has
// gone, or move the circuit to half-open with no replica told of it.
//
// So the store settles such a call in the background, with the same call
// id: the settle script either finds the call's reply memo (the call ran
// and changed something: a probe lease it took is released, and the
// transition it made is reported to the circuit's Breaker through
// breaker.Follower) or leaves a tombstone in the memo's place, which makes
// the call change nothing if it runs later. A settle is retried until it
// gets an answer, for as long as the memo would live (WithReplyTTL). The
// settle requests queue behind the abandoned call on a stalled server,
// so the slot is held for about as long as the server stalls.

// abandoned is a write call whose reply was not read.
type abandoned struct {
	c        *circuit // nil for a circuit the store keeps no view of
	op, name string
	leases   string // the circuit's probe leases key
	memo     string // the call's reply memo key
	held     uint64 // the probe permit a record reported on
	cause    string // what the transition it may have made is called
	until    time.Duration
}

// settleBackoff is the first wait between two tries to settle; it doubles
// up to settleBackoffMax.
const (
	settleBackoff    = 5 * time.Millisecond
	settleBackoffMax = time.Second
)

// settler runs the settles of one Store, on one goroutine while any are
// queued.
type settler struct {
	mu      sync.Mutex
	queue   []abandoned
	running bool
	closed  bool // Close has begun: no new loop starts
}

// unanswered reports whether err leaves a call's outcome unknown: the
// request may have reached Redis, but no reply was read (a timeout, a
// canceled ctx, a dropped connection). A reply from Redis, even an error,
// means the call ran or was refused; a failed dial, an exhausted pool or
// a closed client means it was never sent.
func unanswered(err error) bool {
	var rerr redis.Error
	if errors.As(err, &rerr) || errors.Is(err, redis.ErrPoolTimeout) || errors.Is(err, redis.ErrClosed) {
		return false
	}
	var oerr *net.OpError
	return !errors.As(err, &oerr) || oerr.Op != "dial"
}

// maxSettles bounds the calls waiting to be settled; past it a call is
// not settled (logged): a probe lease it may take lapses after
// ProbeTimeout, as it did before settles existed.
const maxSettles = 10_000

// settleLater queues the settle of a write call whose reply was not read.
// The call's hold on the circuit (runText) passes to the settle.
func (s *Store) settleLater(c *circuit, op, name string, keys []string, lost lostCall) {
	a := abandoned{c: c, op: op, name: name, leases: keys[2], memo: keys[3], held: lost.probe, cause: lost.cause,
		until: s.now() + time.Duration(s.replyMS)*time.Millisecond}
	st := &s.settles
	st.mu.Lock()
	defer st.mu.Unlock()
	switch {
	case st.closed:
		s.settleGiveUp(a, errors.New("the store is closed"))
		return
	case len(st.queue) >= maxSettles:
		s.settleGiveUp(a, errors.New("too many calls waiting to be settled"))
		return
	}
	st.queue = append(st.queue, a)
	if !st.running {
		st.running = true
		s.bg.Add(1)
		go s.settleLoop()
	}
}

// settleLoop settles what is queued, in one pipeline a round, until
// nothing is left. A round waits for Redis as long as the memos live: on a
// stalled server its request queues behind the calls it settles, so it
// runs as soon as they have. After Close it makes one last try, bounded by
// the call timeout.
func (s *Store) settleLoop() {
	defer s.bg.Done()
	wait := settleBackoff
	for {
		st := &s.settles
		st.mu.Lock()
		list := st.queue
		st.queue = nil
		if len(list) == 0 {
			st.running = false
			st.mu.Unlock()
			return
		}
		st.mu.Unlock()
		ctx, cancel := context.WithTimeout(s.life, s.settleWait(list))
		left := s.settle(ctx, list)
		cancel()
		if len(left) == 0 {
			wait = settleBackoff
			continue
		}
		st.mu.Lock()
		st.queue = append(left, st.queue...)
		st.mu.Unlock()
		timer := time.NewTimer(wait)
		select {
		case <-s.done: // Close: one last try for all that is queued
			timer.Stop()
			st.mu.Lock()
			list, st.queue, st.running = st.queue, nil, false
			st.mu.Unlock()
			ctx, cancel := s.callCtx(context.Background())
			for _, a := range s.settle(ctx, list) {
				s.settleGiveUp(a, errors.New("the store is closed"))
			}
			cancel()
			return
		case <-timer.C:
		}
		wait = min(2*wait, settleBackoffMax)
	}
}

// settleWait is how long a round may wait for Redis: until the first memo
// of list expires, and at least the call timeout.
func (s *Store) settleWait(list []abandoned) time.Duration {
	now := s.now()
	wait := list[0].until - now
	for _, a := range list[1:] {
		wait = min(wait, a.until-now)
	}
	return max(wait, s.callTimeout, time.Millisecond)
}

// settle runs the settle script for each call of list under ctx and
// returns those that got no answer and may still be tried.
func (s *Store) settle(ctx context.Context, list []abandoned) []abandoned {
	keys := make([][]string, len(list))
	args := make([][]any, len(list))
	for i, a := range list {
		keys[i] = []string{a.leases, a.memo}
		args[i] = []any{s.replyMS, exact(a.held)}
	}
	replies, errs := s.evalWithin(ctx, func() (context.Context, context.CancelFunc) { return s.callCtx(ctx) },
		settleScript, keys, args)
	var left []abandoned
	now := s.now()
	for i, a := range list {
		if errs[i] != nil {
			if unanswered(errs[i]) && now < a.until { // after Close too: its last try takes them
				left = append(left, a)
				continue
			}
			s.settleGiveUp(a, errs[i])
			continue
		}
		s.settled(a, replies[i])
	}
	return left
}

// settled reports the transition an abandoned call made, if any.
func (s *Store) settled(a abandoned, reply any) {
	text, _ := reply.(string)
	memo, ran := strings.CutPrefix(text, "1 ")
	if !ran {
		if text != "0" {
			s.logger.LogAttrs(context.Background(), slog.LevelWarn, "redisstore: unexpected settle reply",
				slog.String("circuit", a.name), slog.String("op", a.op), slog.String("reply", text))
		}
		s.resolve(a.c, a.name, breaker.Transition{}, "", true)
		return
	}
	t, err := s.memoTransition(a.op, a.name, memo)
	if err != nil {
		s.logger.LogAttrs(context.Background(), slog.LevelWarn, "redisstore: unexpected reply memo",
			slog.String("circuit", a.name), slog.String("op", a.op), slog.String("memo", memo), slog.Any("error", err))
	}
	s.resolve(a.c, a.name, t, a.cause, true)
}

// hold makes the changes of state the view learns of wait while a call
// of the circuit is unresolved: on its way, or being settled. c may be nil
// (a circuit the store keeps no view of).
func (c *circuit) hold() {
	if c != nil {
		c.seenMu.Lock()
		c.unsettled++
		c.seenMu.Unlock()
	}
}

// resolve ends a call's hold (see hold) with the transition it made, if
// any. One reported in the call's reply is the caller's to report; one
// found by a settle (late) is reported here as made. The changes held
// while the circuit had unresolved calls go out once none is left, in the
// order of generations, without the ones its calls made.
func (s *Store) resolve(c *circuit, name string, made breaker.Transition, cause string, late bool) {
	var out []heldChange
	if c != nil {
		c.seenMu.Lock()
		c.unsettled--
		if made.Generation != 0 {
			c.lastMade = made.Generation
			c.held = slices.DeleteFunc(c.held, func(h heldChange) bool { return h.t.Generation == made.Generation })
			if late {
				c.held = append(c.held, heldChange{t: made, made: true, cause: cause})
			}
		}
		if c.unsettled == 0 {
			out, c.held = c.held, nil
		}
		c.seenMu.Unlock()
	} else if late && made.Generation != 0 {
		out = []heldChange{{t: made, made: true, cause: cause}}
	}
	slices.SortStableFunc(out, func(x, y heldChange) int { return cmp.Compare(x.t.Generation, y.t.Generation) })
	for _, h := range out {
		if h.made {
			s.followers.Made(name, h.t, h.cause)
		} else {
			s.followers.Seen(name, h.t)
		}
	}
}

// settling reports whether calls of the circuit are being settled.
func (c *circuit) settling() bool {
	c.seenMu.Lock()
	defer c.seenMu.Unlock()
	return c.unsettled > 0
}

// lostCall is what a write call's settle needs besides its keys: the
// probe permit a record reports on (0: none), and what a transition the
// call made is called ("timeout", "outcome", or the command).
type lostCall struct {
	probe uint64
	cause string
}

// memoTransition reads the transition from a write script's reply (or its
// memo), with the decoder of that script's replies.
func (s *Store) memoTransition(op, name, memo string) (breaker.Transition, error) {
	switch op {
	case "admit":
		a, _, err := s.admitReply(name, memo)
		return a.Transition, err
	case "record":
		r, _, err := s.recordReply(name, memo)
		return r.Transition, err
	}
	var f [6]int64
	r, err := s.result(op, name, memo, f[:])
	return r.Transition, err
}

// settleGiveUp logs a call that could not be settled (if it runs later, a
// probe lease it takes lapses after ProbeTimeout) and ends its settle.
func (s *Store) settleGiveUp(a abandoned, err error) {
	s.logger.LogAttrs(context.Background(), slog.LevelWarn,
		"redisstore: could not settle a call whose reply was lost; a probe permit it took lapses after ProbeTimeout",
		slog.String("circuit", a.name), slog.String("op", a.op), slog.Any("error", err))
	s.resolve(a.c, a.name, breaker.Transition{}, "", true)
}

// Follow implements breaker.Follower: fn receives the transitions that
// calls of this store made on the circuit but whose replies were lost
// (see above), once each, and every change of state of the circuit the
// store's view learns of, from replies and published events (view.go).
func (s *Store) Follow(name string, fn func(breaker.Followed) bool) (stop func()) {
	return s.followers.Follow(name, fn)
}

var _ breaker.Follower = (*Store)(nil)
