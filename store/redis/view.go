package redisstore

import (
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tripline/tripline/breaker"
)

// circuit is what a Store keeps for one circuit name: its keys, built once,
// and its local view.
type circuit struct {
	name string
	keys circuitKeys
	born time.Duration        // local time it was made
	view atomic.Pointer[view] // nil until Redis or an event says something

	// pending is the generation + 1 of a reset (a closed-state success in
	// consecutive mode) held back to be sent by the next flush; 0: none.
	// A circuit whose pending is non-zero is in Store.dirty or being
	// flushed.
	pending atomic.Uint64
	// ownFailure is set when this Store sends a failure in closed state, and
	// cleared when a reset goes out after it: a success must then be sent.
	ownFailure atomic.Bool
	// sending is the generation + 1 of a reset being sent (0: none): it
	// covers the successes that come while it is on its way.
	sending atomic.Uint64
	// resetPolicy is the policy the pending reset is sent with.
	resetPolicy atomic.Pointer[breaker.Policy]
	// resetSeq is the failure sequence number the pending reset clears up
	// to (see heldReset).
	resetSeq atomic.Uint64
	// mu orders a reset and a failure of this circuit: a failure waits for a
	// reset being sent, or takes the pending one with it ("reset first").
	mu sync.Mutex
	// flight is the admission of this circuit on its way to Redis, if any:
	// the store's other admissions of it wait for its reply (flight.go).
	flight atomic.Pointer[flight]

	// The changes of state the view learns of wait here while a call of
	// this circuit whose reply was lost is being settled: that call may
	// have made one of them, which is then reported as made (settle.go).
	seenMu    sync.Mutex
	unsettled int
	held      []heldChange
	lastMade  uint64 // the generation a settled call was found to have made
}

// heldChange is a change of state waiting for the circuit's settles.
type heldChange struct {
	t     breaker.Transition
	made  bool
	cause string
}

// view is what a replica knows of a circuit, and since when. It is never
// changed once stored: a new one replaces it.
type view struct {
	state breaker.State
	gen   uint64
	// failures: the circuit had consecutive failures counted when last
	// heard of, so a success must reset them.
	failures bool
	// failSeq is the circuit's failure sequence number, as last heard of
	// (0 when unknown): a success's held-back reset clears up to it.
	failSeq uint64
	// hold: forced open without expiry; rejected until the view is stale.
	hold bool
	// deadline (open, not hold): the local time from which a probe may be
	// due; the view rejects calls until then.
	deadline time.Duration
	// at is the local time the view was true at: when the request whose
	// reply it comes from was sent, or when the event arrived.
	at time.Duration
	// epoch is the subscription epoch it was learned in (0: never fresh).
	epoch uint64
	// seq orders views: it is taken when the view is stored.
	seq uint64
	// asked is the order of the request whose reply the view comes from
	// (0 for an event): strict stores order views by it (see learn).
	asked uint64
}

// fact is what a reply says about a circuit.
type fact struct {
	state    breaker.State
	gen      uint64
	failures bool          // consecutive failures are counted
	override int64         // 0 none, 1 force-open, 2 force-close
	retry    time.Duration // open: time left until a probe is due
	unsure   bool          // known state and generation only: keep it, never trust it
	seq      uint64        // the circuit's failure sequence number
}

// asked is when a request was sent: local time, order and epoch.
type asked struct {
	at    time.Duration
	seq   uint64
	epoch uint64
}

// mark is taken just before a request is sent to Redis.
func (s *Store) mark() asked {
	return asked{at: s.now(), seq: s.seq.Add(1), epoch: s.epoch.Load()}
}

// local reports whether the store decides from local views: not strict,
// not closed.
func (s *Store) local() bool { return !s.strict && !s.closed.Load() }

// keys returns the keys of a circuit, cached if the circuit is known.
func (s *Store) keys(name string) circuitKeys {
	if cv, ok := s.circuits.Load(name); ok {
		return cv.(*circuit).keys
	}
	return keysFor(s.prefix, name)
}

// circuit returns the circuit called name, made on first use. The first
// circuit starts the subscription that keeps the views true.
func (s *Store) circuit(name string) *circuit {
	if cv, ok := s.circuits.Load(name); ok {
		return cv.(*circuit)
	}
	now := s.now()
	c := &circuit{name: name, keys: keysFor(s.prefix, name), born: now}
	cv, loaded := s.circuits.LoadOrStore(name, c)
	if !loaded {
		if s.local() {
			s.startOnce.Do(s.startSubscriber)
		}
		if s.nCircuits.Add(1) >= s.sweepAt.Load() {
			s.sweep(now, c)
		}
	}
	return cv.(*circuit)
}

// Circuits whose view has learned nothing for viewIdle (or twice the
// staleness bound, if that is longer) are dropped, so a Store used with ever
// new names (a circuit per host, per tenant) does not grow without end; and
// once there are more than the store's bound (WithMaxViews), the least
// recently learned are dropped too, down to about 7/8 of the bound. A sweep
// runs when the number of circuits has doubled since the last one (and there
// are at least minSweep), or passes the bound: its cost is spread over the
// circuits made since. A circuit in use learns at least once per staleness
// bound (its admissions ask Redis once the view is stale), so "least
// recently learned" is "least recently used" to within that bound, and the
// calls answered from a view write nothing. A circuit that is dropped is
// made again at its next call, which asks Redis.
const (
	viewIdle    = 10 * time.Minute
	minSweep    = 1024
	sweepSample = 1024 // learn times a sweep over the bound sorts
)

// sweep drops the circuits idle at local time now, then the least recently
// learned while there are more than the bound; never made, the circuit its
// caller is making.
func (s *Store) sweep(now time.Duration, made *circuit) {
	if !s.sweeping.TryLock() {
		return
	}
	defer s.sweeping.Unlock()
	idle := max(viewIdle, 2*s.maxStale)
	kept := make([]aged, 0, min(s.nCircuits.Load(), int64(s.maxViews)+1))
	s.circuits.Range(func(_, cv any) bool {
		c := cv.(*circuit)
		last := c.learned()
		if c == made {
			last = math.MaxInt64 // the newest, whatever the clock's resolution
		}
		if now-last < idle || !s.drop(c) {
			kept = append(kept, aged{c, last})
		}
		return true
	})
	n := len(kept)
	if n > s.maxViews {
		n -= s.dropOldest(kept, n-(s.maxViews-s.maxViews/8))
	}
	s.nCircuits.Store(int64(n))
	s.sweepAt.Store(min(max(2*int64(n), minSweep), int64(s.maxViews)+1))
}

// aged is a circuit and when it last learned, as a sweep saw it.
type aged struct {
	c    *circuit
	last time.Duration
}

// learned is the local time the circuit was made or its view last learned
// something, whichever is later.
func (c *circuit) learned() time.Duration {
	if v := c.view.Load(); v != nil {
		return max(c.born, v.at)
	}
	return c.born
}

// dropOldest drops about n of the circuits in kept (n < len(kept)), the
// least recently learned: those that learned before a cutoff, then as many
// at the cutoff as it takes. The cutoff is read from a sample of about
// sweepSample learn times, not from a sort of them all: kept is in the
// map's order, which has nothing to do with learn times, so every step-th
// entry makes a fair sample. A circuit that learned since the sweep saw it
// is kept. It returns how many it dropped.
func (s *Store) dropOldest(kept []aged, n int) int {
	step := max(len(kept)/sweepSample, 1)
	sample := make([]time.Duration, 0, len(kept)/step+1)
	for i := 0; i < len(kept); i += step {
		sample = append(sample, kept[i].last)
	}
	slices.Sort(sample)
	cutoff := sample[n*len(sample)/len(kept)]
	dropped := 0
	for _, e := range kept {
		if dropped < n && e.last < cutoff && e.c.learned() == e.last && s.drop(e.c) {
			dropped++
		}
	}
	for _, e := range kept {
		if dropped < n && e.last == cutoff && e.c.learned() == e.last && s.drop(e.c) {
			dropped++
		}
	}
	return dropped
}

// drop takes circuit c out of the store, unless a reset of it is queued or
// being sent, or an admission of it is in flight, and reports whether it
// did.
func (s *Store) drop(c *circuit) bool {
	if c.pending.Load() != 0 || c.sending.Load() != 0 || c.flight.Load() != nil || c.settling() {
		return false
	}
	if !s.circuits.CompareAndDelete(c.name, c) {
		return false // made again meanwhile: that one is another circuit
	}
	if c.pending.Load() != 0 || c.sending.Load() != 0 {
		// A caller that held the circuit queued a reset meanwhile: keep it
		// (queueReset puts it back too, if it comes later).
		s.circuits.LoadOrStore(c.name, c)
		return false
	}
	return true
}

// fresh reports whether v may decide a call at local time now: learned
// while the subscription was live and has stayed so since, and younger
// than the staleness bound.
func (s *Store) fresh(v *view, now time.Duration) bool {
	return v.epoch&1 == 1 && v.epoch == s.epoch.Load() && now-v.at < s.maxStale
}

// admitLocal answers an admission from a fresh view: closed admits, open
// rejects until its retry time (forced open without expiry: until the view
// is stale). Anything else goes to Redis.
func (s *Store) admitLocal(c *circuit) (breaker.Admission, bool) {
	if !s.local() {
		return breaker.Admission{}, false
	}
	v := c.view.Load()
	if v == nil {
		return breaker.Admission{}, false
	}
	now := s.now()
	if !s.fresh(v, now) {
		return breaker.Admission{}, false
	}
	switch {
	case v.state == breaker.StateClosed:
		return breaker.Admission{Allowed: true, State: breaker.StateClosed, Generation: v.gen}, true
	case v.state == breaker.StateOpen && v.hold:
		return breaker.Admission{State: breaker.StateOpen, Generation: v.gen}, true
	case v.state == breaker.StateOpen && now < v.deadline:
		return breaker.Admission{State: breaker.StateOpen, Generation: v.gen, RetryAfter: v.deadline - now}, true
	}
	return breaker.Admission{}, false
}

// recordLocal answers from the view a closed-state success of the view's
// generation, and a success of an earlier generation (Redis, at least at
// the view's generation, would ignore it). In consecutive mode, if failures
// may be counted, it holds the reset back for the next flush. The view
// need not be fresh: a success never changes the state, and what it resets
// is decided by what this replica knows of the failures either way (an
// admission refreshes that at least once per staleness bound).
func (s *Store) recordLocal(c *circuit, p breaker.Policy, o breaker.Outcome) (breaker.Result, bool) {
	if o.Kind != breaker.OutcomeSuccess || o.Probe != 0 {
		return breaker.Result{}, false
	}
	v := c.view.Load()
	if v == nil {
		return breaker.Result{}, false
	}
	if s.strict {
		if s.sendAll {
			return breaker.Result{}, false
		}
		return strictNoop(v, p, o)
	}
	if !s.local() {
		return breaker.Result{}, false
	}
	if o.Generation < v.gen {
		// Admitted before a transition this replica has heard of: Redis is
		// at least at v.gen and ignores the outcome, and a success changes
		// nothing anyway.
		return breaker.Result{Ignored: true, State: v.state, Generation: v.gen}, true
	}
	if v.state != breaker.StateClosed || v.gen != o.Generation {
		return breaker.Result{}, false
	}
	r := breaker.Result{State: breaker.StateClosed, Generation: v.gen}
	if p.FailureWindow != 0 || !(v.failures || c.ownFailure.Load()) {
		return r, true // nothing to reset
	}
	if c.pending.Load() == v.gen+1 || c.sending.Load() == v.gen+1 {
		// A reset of this generation is queued or on its way, and stands
		// for this success too: a queued one may clear up to what this
		// success's view had learned.
		raise(&c.resetSeq, v.failSeq)
		return r, true
	}
	// A reset that was on its way has landed; what it taught the view is
	// there now.
	if w := c.view.Load(); w != v && (w.gen != v.gen || !w.failures) && !c.ownFailure.Load() {
		return r, true
	}
	s.queueReset(c, p, v.gen, v.failSeq)
	return r, true
}

// strictNoop answers, in strict mode, a closed-state success that would
// change nothing in Redis: the reply to the request this Store sent last
// (the call's own admission, or a request sent after it: learn keeps views
// in the order their requests were sent, and drops an older generation)
// said the circuit was closed at the call's generation with no consecutive
// failure counted (or the circuit counts in a window, where successes erase
// nothing). Redis answered that request after the call began, so the
// success takes effect as of that answer, within the call, and its reset
// had nothing to do then: a failure counted later (by another replica,
// while the call ran) is kept, as if the success had been sent and had
// landed first.
func strictNoop(v *view, p breaker.Policy, o breaker.Outcome) (breaker.Result, bool) {
	if v.state != breaker.StateClosed || v.gen != o.Generation || (p.FailureWindow == 0 && v.failures) {
		return breaker.Result{}, false
	}
	return breaker.Result{State: breaker.StateClosed, Generation: v.gen}, true
}

// beforeFailure prepares a failure about to be sent in consecutive mode: it
// takes a reset held back for the same generation with it (reset first),
// after any reset being sent, so this replica's outcomes count in the order
// it saw them.
func (s *Store) beforeFailure(c *circuit, p breaker.Policy, o breaker.Outcome) heldReset {
	if o.Kind != breaker.OutcomeFailure || p.FailureWindow != 0 || o.Probe != 0 || s.strict {
		return heldReset{}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	reset := heldReset{ok: c.pending.Swap(0) == o.Generation+1}
	if known := c.resetSeq.Swap(0); reset.ok {
		reset.known = known
	}
	if v := c.view.Load(); v == nil || v.state == breaker.StateClosed {
		c.ownFailure.Store(true)
	}
	return reset
}

// learn stores what a reply said, as of the request's mark. A reply
// replaces the view if it is of a later generation, or if its request was
// sent after the view was stored (so it also follows a circuit that Redis
// lost and restarted at generation 0); an older reply that arrives late is
// dropped.
func (s *Store) learn(c *circuit, f fact, a asked) {
	nv := &view{state: f.state, gen: f.gen, failures: f.failures, failSeq: f.seq, at: a.at, epoch: a.epoch, asked: a.seq}
	if f.unsure {
		// Only state and generation are known: failures may be counted.
		nv.epoch, nv.failures = 0, true
	}
	if f.state == breaker.StateOpen {
		if f.override == 1 && f.retry == 0 {
			nv.hold = true
		} else {
			nv.deadline = a.at + f.retry
		}
	}
	for {
		old := c.view.Load()
		// A strict store (no events) keeps the reply to the request sent
		// last: strictNoop relies on the view coming from a request sent
		// no earlier than the call's own admission. With local views, a
		// reply to a request sent before the view was stored must not undo
		// an event it may predate.
		if old != nil && f.gen <= old.gen {
			bound := old.seq
			if s.strict {
				bound = old.asked
			}
			if a.seq < bound {
				return
			}
		}
		nv.seq = s.seq.Add(1)
		if c.view.CompareAndSwap(old, nv) {
			s.moved(c, old, nv)
			return
		}
	}
}

// moved tells the circuit's Breakers (breaker.Follower) that the view's
// state changed: a replica's idea of the shared state follows the fleet,
// whoever made the change. A circuit first heard of counts as closed.
func (s *Store) moved(c *circuit, old, nv *view) {
	from := breaker.StateClosed
	if old != nil {
		from = old.state
	}
	if from == nv.state {
		return
	}
	t := breaker.Transition{From: from, To: nv.state, Generation: nv.gen}
	c.seenMu.Lock()
	switch {
	case t.Generation == c.lastMade:
		c.seenMu.Unlock() // reported as made when its call was settled
		return
	case c.unsettled > 0:
		c.held = append(c.held, heldChange{t: t})
		c.seenMu.Unlock()
		return
	}
	c.seenMu.Unlock()
	s.followers.Seen(c.name, t)
}

// hear stores what an event said, if it is newer than the view: events
// only move a view forward.
func (s *Store) hear(ev Event) {
	cv, ok := s.circuits.Load(ev.Name)
	if !ok {
		return // a circuit this replica does not use
	}
	c := cv.(*circuit)
	now := s.now()
	nv := &view{state: ev.To, gen: ev.Generation, at: now, epoch: s.epoch.Load()}
	if ev.To == breaker.StateOpen {
		if ev.RetryAt.IsZero() {
			nv.hold = true // forced open without expiry
		} else {
			// Both times are Redis's; the event's delay on the way is not
			// known, so the deadline is late by that much at most.
			nv.deadline = now + max(ev.RetryAt.Sub(ev.At), 0)
		}
	}
	for {
		old := c.view.Load()
		if old != nil && ev.Generation <= old.gen {
			return
		}
		nv.seq = s.seq.Add(1)
		if c.view.CompareAndSwap(old, nv) {
			s.moved(c, old, nv)
			return
		}
	}
}
