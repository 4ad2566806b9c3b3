package breaker

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tripline/tripline/internal/memhook"
)

// memStore is the in-process Store: the default for a Breaker without one,
// and the implementation behind store/memory. It is the reference the Redis
// scripts follow.
type memStore struct {
	now       func() time.Time
	circuits  sync.Map // string -> *memCircuit; read without a lock
	probeSeq  atomic.Uint64
	followers Followers // Breakers sharing the store hear of each other's transitions
}

// Follow implements Follower: fn hears of every transition of the
// circuit, made by any Breaker of this store.
func (s *memStore) Follow(name string, fn func(Followed) bool) (stop func()) {
	return s.followers.Follow(name, fn)
}

// Apply implements Store.
func (s *memStore) Apply(ctx context.Context, name string, cmd Command) (Result, error) {
	r, err := s.apply(name, cmd)
	if r.Transition.Changed() {
		s.followers.Seen(name, r.Transition)
	}
	return r, err
}

type memCircuit struct {
	// hot is what the closed-state success path needs to know, published
	// when the lock is released (unlock): generation<<2 | hotClosed |
	// hotNoFailures. Admit of a closed circuit and Record of a success that
	// would change nothing read it and take no lock.
	hot atomic.Uint64
	// lastPolicy is the policy of the last Admit or Record that took the
	// lock (Load counts failures in its window), readable without the
	// lock: a success or a closed admission under another policy takes the
	// lock to record it, as the Redis scripts write theirs. nil until then.
	lastPolicy  atomic.Pointer[Policy]
	mu          sync.Mutex
	state       State
	generation  uint64
	failures    int           // consecutive mode
	window      failureWindow // window mode
	successes   int
	leases      []lease
	lastFailure time.Time
	openedAt    time.Time
	retryAt     time.Time // zero while forced open without expiry
	override    *Override
}

type lease struct {
	id      uint64
	expires time.Time
}

func init() {
	memhook.New = func(now func() time.Time) any { return newMemStore(now) }
}

func newDefaultStore() Store { return newMemStore(nil) }

func newMemStore(now func() time.Time) *memStore {
	if now == nil {
		now = time.Now
	}
	return &memStore{now: now}
}

func (s *memStore) lookup(name string) *memCircuit {
	if c, ok := s.circuits.Load(name); ok {
		return c.(*memCircuit)
	}
	return nil
}

func (s *memStore) lookupOrCreate(name string) *memCircuit {
	if c := s.lookup(name); c != nil {
		return c
	}
	c, _ := s.circuits.LoadOrStore(name, &memCircuit{})
	return c.(*memCircuit)
}

const (
	hotClosed     = 1 << 0 // closed (forced closed or not): Admit admits
	hotNoFailures = 1 << 1 // no consecutive failures: a success changes nothing
)

// unlock publishes hot and releases the lock.
func (c *memCircuit) unlock() {
	h := c.generation << 2
	if c.state == StateClosed {
		h |= hotClosed
	}
	if c.failures == 0 {
		h |= hotNoFailures
	}
	c.hot.Store(h)
	c.mu.Unlock()
}

// Admit implements Store. A closed circuit under the same policy is
// answered without a lock.
func (s *memStore) Admit(_ context.Context, name string, p Policy) (Admission, error) {
	if err := p.Validate(); err != nil {
		return Admission{}, err
	}
	c := s.lookup(name)
	if c == nil {
		return Admission{Allowed: true, State: StateClosed}, nil
	}
	if h := c.hot.Load(); h&hotClosed != 0 && c.samePolicy(p) {
		return Admission{Allowed: true, State: StateClosed, Generation: h >> 2}, nil
	}
	a, err := s.admitLocked(c, p)
	if a.Transition.Changed() {
		s.followers.Seen(name, a.Transition)
	}
	return a, err
}

// admitLocked is Admit's path under the circuit's lock; transitions are
// reported by Admit once the lock is released.
func (s *memStore) admitLocked(c *memCircuit, p Policy) (Admission, error) {
	c.mu.Lock()
	defer c.unlock()
	differs := c.usePolicy(p)
	if c.state == StateClosed {
		// Closed admits every call, forced closed or not: no clock needed.
		return Admission{Allowed: true, State: StateClosed, Generation: c.generation, PolicyDiffers: differs}, nil
	}
	// The clock is read under the lock, so a circuit's times never go back.
	now := s.now()
	c.expireOverride(now)
	a := Admission{PolicyDiffers: differs}
	if c.state == StateOpen {
		a.State, a.Generation = StateOpen, c.generation
		if o := c.override; o != nil && o.Mode == OverrideForceOpen {
			a.RetryAfter = until(now, o.Until)
			return a, nil
		}
		if now.Before(c.retryAt) {
			a.RetryAfter = c.retryAt.Sub(now)
			return a, nil
		}
		a.Transition = c.transition(StateHalfOpen)
	}
	// Half-open: lease a probe permit if a slot is free.
	c.dropLapsed(now)
	a.State, a.Generation = StateHalfOpen, c.generation
	if len(c.leases) >= p.HalfOpenMaxCalls {
		first := c.leases[0].expires
		for _, l := range c.leases[1:] {
			if l.expires.Before(first) {
				first = l.expires
			}
		}
		a.RetryAfter = first.Sub(now)
		return a, nil
	}
	id := s.probeSeq.Add(1)
	c.leases = append(c.leases, lease{id: id, expires: now.Add(p.ProbeTimeout)})
	a.Allowed, a.Probe = true, id
	return a, nil
}

// Record implements Store. A closed-state success that changes nothing is
// answered without a lock.
func (s *memStore) Record(_ context.Context, name string, p Policy, o Outcome) (Result, error) {
	if err := p.Validate(); err != nil {
		return Result{}, err
	}
	if o.Kind != OutcomeSuccess && o.Kind != OutcomeFailure {
		return Result{}, fmt.Errorf("tripline: unknown outcome kind %d", o.Kind)
	}
	c := s.lookup(name)
	if c == nil {
		if o.Generation != 0 || o.Kind == OutcomeSuccess {
			// A success on a circuit with no state changes nothing.
			return Result{Ignored: o.Generation != 0, State: StateClosed}, nil
		}
		c = s.lookupOrCreate(name)
	}
	if o.Kind == OutcomeSuccess && c.hot.Load() == o.Generation<<2|hotClosed|hotNoFailures && c.samePolicy(p) {
		return Result{State: StateClosed, Generation: o.Generation}, nil
	}
	r, err := s.recordLocked(c, p, o)
	if r.Transition.Changed() {
		s.followers.Seen(name, r.Transition)
	}
	return r, err
}

// recordLocked is Record's path under the circuit's lock (see admitLocked).
func (s *memStore) recordLocked(c *memCircuit, p Policy, o Outcome) (Result, error) {
	c.mu.Lock()
	defer c.unlock()
	r := Result{State: c.state, Generation: c.generation, PolicyDiffers: c.usePolicy(p)}
	if o.Generation != c.generation {
		r.Ignored = true
		return r, nil
	}
	if c.state == StateClosed && o.Kind == OutcomeSuccess {
		c.failures = 0 // window mode: successes erase nothing
		return r, nil
	}
	now := s.now()
	c.expireOverride(now)
	switch c.state {
	case StateClosed:
		c.lastFailure = now
		if c.countFailure(now, p) < p.FailureThreshold {
			return r, nil
		}
		if ov := c.override; ov != nil && ov.Mode == OverrideForceClose {
			return r, nil // counted, but a forced-closed circuit does not trip
		}
		r.Transition = c.open(now, p.Timeout)
	case StateHalfOpen:
		if !c.release(o.Probe, now) {
			r.Ignored = true
			return r, nil
		}
		if o.Kind == OutcomeFailure {
			c.lastFailure = now
			r.Transition = c.open(now, p.Timeout)
		} else if c.successes++; c.successes >= p.SuccessThreshold {
			r.Transition = c.transition(StateClosed)
		}
	default:
		// Open: no call is admitted in an open generation.
		r.Ignored = true
		return r, nil
	}
	r.State, r.Generation = c.state, c.generation
	return r, nil
}

// apply carries out a command (see admit).
func (s *memStore) apply(name string, cmd Command) (Result, error) {
	if cmd.TTL < 0 {
		return Result{}, fmt.Errorf("tripline: negative override TTL %s", cmd.TTL)
	}
	var mode OverrideMode
	switch cmd.Kind {
	case CommandReset:
	case CommandForceOpen:
		mode = OverrideForceOpen
	case CommandForceClose:
		mode = OverrideForceClose
	default:
		return Result{}, fmt.Errorf("tripline: unknown command kind %d", cmd.Kind)
	}
	var c *memCircuit
	if cmd.IfExists {
		if c = s.lookup(name); c == nil {
			return Result{}, ErrUnknownCircuit
		}
	} else {
		c = s.lookupOrCreate(name)
	}
	c.mu.Lock()
	defer c.unlock()
	now := s.now()
	to := StateClosed
	if mode == OverrideForceOpen {
		to = StateOpen
	}
	r := Result{Transition: c.transition(to)}
	if mode != 0 {
		ov := &Override{Mode: mode, Actor: cmd.Actor, Reason: cmd.Reason, At: now}
		if cmd.TTL > 0 {
			ov.Until = now.Add(cmd.TTL)
		}
		c.override = ov
		if mode == OverrideForceOpen {
			c.openedAt, c.retryAt = now, ov.Until
		}
	}
	r.State, r.Generation = c.state, c.generation
	return r, nil
}

// Load implements Store.
func (s *memStore) Load(_ context.Context, name string) (Snapshot, error) {
	c := s.lookup(name)
	if c == nil {
		return Snapshot{Name: name}, nil
	}
	c.mu.Lock()
	defer c.unlock()
	now := s.now()
	snap := Snapshot{
		Name:        name,
		State:       c.state,
		Failures:    c.failures,
		Successes:   c.successes,
		LastFailure: c.lastFailure,
		OpenedAt:    c.openedAt,
		RetryAt:     c.retryAt,
		Generation:  c.generation,
	}
	if lp := c.lastPolicy.Load(); lp != nil && lp.FailureWindow > 0 {
		snap.Failures = c.window.count(now.Add(-lp.FailureWindow).UnixNano(), now.UnixNano())
	}
	for _, l := range c.leases {
		if now.Before(l.expires) {
			snap.Probes++
		}
	}
	if ov := c.override; ov != nil && (ov.Until.IsZero() || now.Before(ov.Until)) {
		cp := *ov
		snap.Override = &cp
	}
	return snap, nil
}

// samePolicy reports whether p is the circuit's last policy; it takes no
// lock.
func (c *memCircuit) samePolicy(p Policy) bool {
	lp := c.lastPolicy.Load()
	return lp != nil && *lp == p
}

// usePolicy makes p the circuit's last policy (under the lock) and reports
// whether the circuit had another one: a Breaker with other settings wrote
// it last (Admission.PolicyDiffers). It allocates only when the policy
// changes.
func (c *memCircuit) usePolicy(p Policy) (differs bool) {
	lp := c.lastPolicy.Load()
	if lp != nil && *lp == p {
		return false
	}
	np := p
	c.lastPolicy.Store(&np)
	return lp != nil
}

// transition moves the circuit to a new generation in state to, clearing
// every counter, lease and override (Apply sets its override after) and
// RetryAt (open sets it after). OpenedAt survives into half-open, where it
// still says when the circuit last opened; closing clears it and
// LastFailure too.
func (c *memCircuit) transition(to State) Transition {
	t := Transition{From: c.state, To: to, Generation: c.generation + 1}
	c.state, c.generation = to, t.Generation
	c.failures, c.successes, c.leases = 0, 0, c.leases[:0]
	c.window.clear()
	c.override = nil
	c.retryAt = time.Time{}
	if to == StateClosed {
		c.openedAt, c.lastFailure = time.Time{}, time.Time{}
	}
	return t
}

func (c *memCircuit) open(now time.Time, timeout time.Duration) Transition {
	t := c.transition(StateOpen)
	c.openedAt, c.retryAt = now, now.Add(timeout)
	return t
}

// expireOverride drops an override whose time is up. A forced-open circuit
// then is an open circuit whose RetryAt (the override's end) has passed.
func (c *memCircuit) expireOverride(now time.Time) {
	if ov := c.override; ov != nil && !ov.Until.IsZero() && !now.Before(ov.Until) {
		c.override = nil
	}
}

// countFailure counts a failure at now and returns the failures that count
// towards the threshold: in window mode those within the trailing window
// ending at now, of which only the newest FailureThreshold are kept (more
// never decide anything).
func (c *memCircuit) countFailure(now time.Time, p Policy) int {
	if p.FailureWindow == 0 {
		c.failures++
		return c.failures
	}
	return c.window.add(now.UnixNano(), now.Add(-p.FailureWindow).UnixNano(), p.FailureThreshold)
}

func (c *memCircuit) dropLapsed(now time.Time) {
	kept := c.leases[:0]
	for _, l := range c.leases {
		if now.Before(l.expires) {
			kept = append(kept, l)
		}
	}
	c.leases = kept
}

// release frees the probe permit id and reports whether it was held.
func (c *memCircuit) release(id uint64, now time.Time) bool {
	c.dropLapsed(now)
	for i, l := range c.leases {
		if l.id == id && id != 0 {
			c.leases = append(c.leases[:i], c.leases[i+1:]...)
			return true
		}
	}
	return false
}

func until(now, t time.Time) time.Duration {
	if t.IsZero() {
		return 0
	}
	return t.Sub(now)
}
