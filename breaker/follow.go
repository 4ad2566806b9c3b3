package breaker

import (
	"context"
	"runtime"
	"slices"
	"sync"
	"weak"
)

// Followed is a transition a Store reports on its own, outside its reply
// to the call that made it.
type Followed struct {
	Transition
	// Cause is what made it: "timeout" (open to half-open), "outcome", or
	// an operator's command ("reset", "force-open", "force-close"). Empty
	// when the store does not know (Made is false).
	Cause string
	// Made is true for a transition made by a call of this store whose
	// reply was lost (the call returned an error; the store found out
	// later that it ran): it is reported to one Breaker, which reports it
	// as its own. False: a change of state the store learned of (from
	// another replica, an operator, or a call of one of its own Breakers),
	// reported to every Breaker of the circuit.
	Made bool
}

// Follower is implemented by a Store that tells Breakers of transitions
// outside its replies to their calls: those other replicas made, which a
// replica learns from a published event or from a reply that shows a
// newer state (Made false), and those made by a call whose reply was lost
// (Made true). New registers every Breaker with its Store's Follow; the
// Breaker reports the first kind through OnStateSeen and the second
// through OnStateChange, so each is reported once. For Store implementers.
type Follower interface {
	// Follow registers fn for the circuit called name, until stop is
	// called. The store calls fn from a goroutine of its own or from
	// within a call of this store, never under a lock fn could need, one
	// report at a time per circuit: with a Made transition once, for the
	// first fn that takes it (fn returns false when its Breaker is gone);
	// with any other change of state it learns of, once for every fn, in
	// the order of generations (an older one is dropped).
	Follow(name string, fn func(Followed) bool) (stop func())
}

// follow registers b with a store that reports transitions. The store
// holds b weakly, so a Breaker no longer used is collected, and its
// registration goes with it.
func (b *Breaker) follow(f Follower) {
	wb := weak.Make(b)
	stop := f.Follow(b.name, func(t Followed) bool {
		b := wb.Value()
		if b == nil {
			return false
		}
		b.followed(t)
		return true
	})
	runtime.AddCleanup(b, func(stop func()) { stop() }, stop)
}

// followed takes a transition the store reported.
func (b *Breaker) followed(t Followed) {
	if t.Made {
		b.notify(context.Background(), t.Transition, t.Cause, false)
		return
	}
	if b.seen != nil && t.Changed() {
		b.seen.report(t.Transition)
	}
}

// seenGate passes the changes of state the store reports to OnStateSeen,
// except those this Breaker made itself, which OnStateChange reports. The
// store reports a change when it learns of it, which for a transition
// this Breaker makes is before the call that made it returns (from the
// reply, or from a published event that came first). So a report waits
// until the calls that were in flight when it came have returned, and
// goes only if none of them made it. Calls that start later are not
// waited for: they join the other of two epochs.
type seenGate struct {
	mu     sync.Mutex
	fn     func(from, to State)
	cur    int    // the epoch new calls join
	active [2]int // calls in flight, by epoch
	held   []heldSeen
	made   []uint64 // generations made by calls that ended while reports were held
}

type heldSeen struct {
	t     Transition
	epoch int // the report waits until this epoch has no call in flight
}

// begin marks a store call in flight; end takes what begin returned.
func (g *seenGate) begin() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.active[g.cur]++
	return g.cur
}

// end marks a store call done, with the transition it made (if any).
func (g *seenGate) end(epoch int, made Transition) {
	g.mu.Lock()
	g.active[epoch]--
	if len(g.held) > 0 && made.Changed() {
		g.made = append(g.made, made.Generation)
	}
	ready := g.settle()
	g.mu.Unlock()
	g.deliver(ready)
}

// report passes t on once the calls in flight now have returned.
func (g *seenGate) report(t Transition) {
	g.mu.Lock()
	g.held = append(g.held, heldSeen{t: t, epoch: g.cur})
	ready := g.settle()
	g.mu.Unlock()
	g.deliver(ready)
}

// settle takes the held reports whose epoch has no call in flight, oldest
// first, without those a call of this Breaker made; then, if the newest
// report waits on the epoch new calls join, moves new calls to the other
// epoch once it is empty, so no report waits for ever under load.
func (g *seenGate) settle() []Transition {
	var ready []Transition
	n := 0
	for _, h := range g.held {
		if g.active[h.epoch] != 0 {
			break
		}
		n++
		if !slices.Contains(g.made, h.t.Generation) {
			ready = append(ready, h.t)
		}
	}
	g.held = g.held[n:]
	if len(g.held) == 0 {
		g.held, g.made = nil, g.made[:0]
		return ready
	}
	if g.held[len(g.held)-1].epoch == g.cur && g.active[1-g.cur] == 0 {
		g.cur = 1 - g.cur
	}
	return ready
}

func (g *seenGate) deliver(ready []Transition) {
	for _, t := range ready {
		g.fn(t.From, t.To)
	}
}

// Followers keeps the functions registered with Follow, by circuit name,
// for Store implementers: a Store implements Follower with its Follow and
// calls Seen and Made where it learns of a change. Each circuit's reports
// are delivered one at a time, in the order they are given, on the
// goroutine of the first caller that finds none being delivered (a report
// given during a delivery, by a function that calls the Breaker, waits
// its turn). A change older than one already reported as seen is dropped,
// so the last report is the newest state. The zero value is ready to use.
type Followers struct {
	mu    sync.Mutex
	names map[string]*followed
}

// followed is one circuit's functions and reports.
type followed struct {
	fns      []*followFn
	queue    []Followed
	busy     bool   // a goroutine is delivering the queue
	lastSeen uint64 // the newest generation given to Seen or Made
}

// Follow registers fn for the circuit called name (see Follower). fn
// reports false when it can take no report (its Breaker is gone).
func (fs *Followers) Follow(name string, fn func(Followed) bool) (stop func()) {
	f := &followFn{fn: fn}
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if fs.names == nil {
		fs.names = make(map[string]*followed)
	}
	e := fs.names[name]
	if e == nil {
		e = &followed{}
		fs.names[name] = e
	}
	e.fns = append(slices.Clone(e.fns), f) // never changed in place: give reads it unlocked
	return func() {
		fs.mu.Lock()
		defer fs.mu.Unlock()
		e := fs.names[name]
		if e == nil {
			return
		}
		e.fns = slices.DeleteFunc(slices.Clone(e.fns), func(g *followFn) bool { return g == f })
		if len(e.fns) == 0 && !e.busy {
			delete(fs.names, name)
		}
	}
}

type followFn struct{ fn func(Followed) bool }

// Seen gives a change of state the store learned of to every function of
// the circuit.
func (fs *Followers) Seen(name string, t Transition) {
	fs.give(name, Followed{Transition: t})
}

// Made gives a transition made by a call whose reply was lost to one
// function of the circuit (the first that takes it).
func (fs *Followers) Made(name string, t Transition, cause string) {
	fs.give(name, Followed{Transition: t, Cause: cause, Made: true})
}

func (fs *Followers) give(name string, f Followed) {
	fs.mu.Lock()
	e := fs.names[name]
	if e == nil || (!f.Made && f.Generation <= e.lastSeen) {
		fs.mu.Unlock()
		return
	}
	e.lastSeen = max(e.lastSeen, f.Generation)
	e.queue = append(e.queue, f)
	if e.busy {
		fs.mu.Unlock()
		return
	}
	e.busy = true
	for len(e.queue) > 0 {
		next, fns := e.queue[0], e.fns
		e.queue = e.queue[1:]
		fs.mu.Unlock()
		for _, f := range fns {
			if f.fn(next) && next.Made {
				break
			}
		}
		fs.mu.Lock()
	}
	e.busy, e.queue = false, nil
	if len(e.fns) == 0 {
		delete(fs.names, name)
	}
	fs.mu.Unlock()
}
