package storetest

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

	"github.com/tripline/tripline/breaker"
)

// RunModel checks a store against a model of the circuit breaker: about
// two hundred lines of plain Go in this file (admit, record, apply, expect),
// written from the package breaker documentation and the breaker.Store
// contract, that share no code with any store. It is a pgregory.net/rapid state-machine test: each check draws a
// Policy and runs a random sequence of steps on two circuits through three
// replicas (Harness.Store and two from Harness.NewReplica):
//
//   - calls admitted and recorded at once, or admitted and left in flight to
//     be recorded later (or never), with random outcomes;
//   - outcomes with any generation and probe id (stale, lapsed, unknown);
//   - bursts of concurrent admissions from several replicas;
//   - Reset, ForceOpen and ForceClose, with and without TTL and IfExists;
//   - clock moves, random ones and ones that land on a deadline (the end of
//     the open timeout, of a probe permit, of an override, of a failure's
//     window) or a millisecond either side of it;
//   - the same calls and commands through breaker.Breaker (Allow, Reset,
//     ForceOpen, ForceClose, Snapshot), whose OnStateChange calls are
//     checked too.
//
// Every answer must be the one the model predicts: Admission, Result and
// error exactly (probe ids aside, which the model only requires to be
// non-zero and never reused on a circuit), and after every step Load of one
// of the circuits (each in turn), with every field and time of the
// Snapshot. On top of that
// equality it checks, with a message of its own:
//
//   - at most HalfOpenMaxCalls probe permits are held;
//   - generations never go back, and every transition starts the next one;
//   - no transition the model does not predict (none without its cause),
//     and each one reported to exactly one caller;
//   - a Reset always ends in closed with every counter cleared.
//
// newHarness is called once. Its store must run on a fake clock (RealTime
// false), moved only by Harness.Advance: the model predicts times exactly.
// Every check uses circuits of its own, so the store need not be emptied
// between checks; the clock moves by a few seconds per check at most, far
// less than any idle expiry. Advance must move whole milliseconds exactly.
//
// The number of checks is rapid's (-rapid.checks, default 100; a fifth of
// that with -short), or the one ModelChecks gives.
func RunModel(t *testing.T, newHarness func(t *testing.T) Harness, opts ...ModelOption) {
	t.Helper()
	var o modelOptions
	for _, opt := range opts {
		opt(&o)
	}
	if o.checks > 0 {
		setChecks(t, o.checks)
	}
	h := newHarness(t)
	require.NotNil(t, h.Store, "Harness.Store")
	require.NotNil(t, h.Advance, "Harness.Advance")
	require.False(t, h.RealTime, "RunModel needs a store on a fake clock: the model predicts times exactly")
	replicas := []breaker.Store{h.Store}
	for range 2 {
		st := h.Store
		if h.NewReplica != nil {
			st = h.NewReplica(t)
			require.NotNil(t, st, "Harness.NewReplica returned nil")
		}
		replicas = append(replicas, st)
	}
	checks := 0
	rapid.Check(t, func(rt *rapid.T) {
		checks++
		r := newModelRun(t.Context(), rt, h, replicas, checks)
		rt.Repeat(r.actions())
	})
}

// ModelOption tunes RunModel.
type ModelOption func(*modelOptions)

type modelOptions struct {
	checks int
}

// ModelChecks makes RunModel run n checks (a fifth of that with -short)
// when neither -rapid.checks nor RAPID_CHECKS says how many: for a store
// whose calls are slow (miniredis runs its Lua about a hundred times slower
// than the memory store). It sets rapid's flag for the length of the test,
// so the test must not be parallel.
func ModelChecks(n int) ModelOption {
	return func(o *modelOptions) { o.checks = n }
}

// setChecks sets -rapid.checks to n until t ends, unless it was given.
func setChecks(t *testing.T, n int) {
	t.Helper()
	if _, ok := os.LookupEnv("RAPID_CHECKS"); ok {
		return
	}
	given := false
	flag.Visit(func(f *flag.Flag) { given = given || f.Name == "rapid.checks" })
	f := flag.Lookup("rapid.checks")
	require.NotNil(t, f, "rapid registers -rapid.checks")
	if given {
		return
	}
	old := f.Value.String()
	require.NoError(t, f.Value.Set(strconv.Itoa(n)), "-rapid.checks")
	t.Cleanup(func() { _ = f.Value.Set(old) })
}

// unset is the model's zero time: no time recorded.
const unset time.Duration = math.MinInt64

// The model's times are offsets from the store's time at the start of the
// check (the model's now is 0 then), which it learns from the Override.At of
// a circuit it forces open.

// circuit is the model of one circuit.
type circuit struct {
	name        string
	exists      bool // the store holds state for it: a failure was recorded or a command applied
	state       breaker.State
	gen         uint64
	failures    int             // consecutive mode
	failTimes   []time.Duration // window mode: every failure since the circuit was cleared
	successes   int
	leases      []*lease
	lastFailure time.Duration
	openedAt    time.Duration
	retryAt     time.Duration
	ov          *override

	probeIDs map[uint64]bool // every probe id the store has granted on this circuit
	seenGen  uint64          // the highest generation any answer has shown
	breakers []*breaker.Breaker
}

type lease struct {
	id      uint64 // 0 for a permit held by a Breaker, which keeps its id to itself
	expires time.Duration
}

type override struct {
	mode          breaker.OverrideMode
	at, until     time.Duration // until unset: no expiry
	actor, reason string
}

// ticket is a call admitted and not yet recorded.
type ticket struct {
	c     *circuit
	gen   uint64
	probe uint64      // from the Admission
	lease *lease      // the permit the call holds, nil if none
	done  func(error) // set for a call a Breaker admitted
}

// modelRun is one check: the model, the store and the calls in flight.
type modelRun struct {
	ctx      context.Context
	t        *rapid.T
	h        Harness
	replicas []breaker.Store
	p        breaker.Policy
	base     time.Time // the store's time when the model's now was 0
	now      time.Duration
	circuits []*circuit
	tickets  []*ticket
	steps    int

	mu      sync.Mutex
	changes []string // OnStateChange calls not yet checked
}

func newModelRun(ctx context.Context, t *rapid.T, h Harness, replicas []breaker.Store, check int) *modelRun {
	ms := func(label string, vs ...int) time.Duration {
		return time.Duration(rapid.SampledFrom(vs).Draw(t, label+" (ms)")) * time.Millisecond
	}
	r := &modelRun{ctx: ctx, t: t, h: h, replicas: replicas}
	r.p = breaker.Policy{
		FailureThreshold: rapid.IntRange(1, 4).Draw(t, "FailureThreshold"),
		FailureWindow:    ms("FailureWindow", 0, 0, 30, 200),
		Timeout:          ms("Timeout", 10, 100),
		SuccessThreshold: rapid.IntRange(1, 3).Draw(t, "SuccessThreshold"),
		HalfOpenMaxCalls: rapid.IntRange(1, 3).Draw(t, "HalfOpenMaxCalls"),
		ProbeTimeout:     ms("ProbeTimeout", 20, 50, 500),
	}
	prefix := "storetest:model:" + strconv.Itoa(check) + ":"

	// The store's clock: the time at which it sets an override.
	clock := prefix + "clock"
	_, err := h.Store.Apply(ctx, clock, breaker.Command{Kind: breaker.CommandForceOpen, Actor: "storetest"})
	require.NoError(t, err, "Apply")
	snap, err := h.Store.Load(ctx, clock)
	require.NoError(t, err, "Load")
	require.NotNil(t, snap.Override, "Load of a forced-open circuit shows no override")
	r.base = snap.Override.At

	for _, name := range []string{"a", "b{x}:ü"} {
		c := &circuit{
			name:        prefix + name,
			lastFailure: unset,
			openedAt:    unset,
			retryAt:     unset,
			probeIDs:    map[uint64]bool{},
		}
		for _, st := range replicas {
			b, err := breaker.New(c.name, breaker.Config{
				FailureThreshold: r.p.FailureThreshold,
				FailureWindow:    r.p.FailureWindow,
				Timeout:          r.p.Timeout,
				SuccessThreshold: r.p.SuccessThreshold,
				HalfOpenMaxCalls: r.p.HalfOpenMaxCalls,
				ProbeTimeout:     r.p.ProbeTimeout,
				Store:            st,
				OnStateChange:    r.onStateChange,
			})
			require.NoError(t, err, "breaker.New")
			require.Equal(t, r.p, b.Policy(), "Breaker.Policy")
			c.breakers = append(c.breakers, b)
		}
		r.circuits = append(r.circuits, c)
	}
	return r
}

func (r *modelRun) onStateChange(name string, from, to breaker.State) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.changes = append(r.changes, fmt.Sprintf("%s: %s -> %s", name, from, to))
}

// The model: each method changes the model as the store must change, and
// returns the answer the store must give.

// transition moves c to a new generation in state to, clearing every counter,
// permit and override; closing clears LastFailure and OpenedAt too.
func (c *circuit) transition(to breaker.State) breaker.Transition {
	t := breaker.Transition{From: c.state, To: to, Generation: c.gen + 1}
	c.state, c.gen = to, c.gen+1
	c.failures, c.failTimes, c.successes, c.leases, c.ov = 0, nil, 0, nil, nil
	c.retryAt = unset
	if to == breaker.StateClosed {
		c.lastFailure, c.openedAt = unset, unset
	}
	return t
}

// open trips c at now: open for a full Timeout.
func (r *modelRun) open(c *circuit) breaker.Transition {
	t := c.transition(breaker.StateOpen)
	c.openedAt, c.retryAt = r.now, r.now+r.p.Timeout
	return t
}

// overrideHolds reports whether c's override is in force now.
func (r *modelRun) overrideHolds(c *circuit, mode breaker.OverrideMode) bool {
	return c.ov != nil && c.ov.mode == mode && (c.ov.until == unset || r.now < c.ov.until)
}

// live returns the permits held now.
func (r *modelRun) live(c *circuit) []*lease {
	var held []*lease
	for _, l := range c.leases {
		if r.now < l.expires {
			held = append(held, l)
		}
	}
	return held
}

// inWindow counts the failures within the trailing window ending now.
func (r *modelRun) inWindow(c *circuit) int {
	n := 0
	for _, at := range c.failTimes {
		if r.now-at < r.p.FailureWindow {
			n++
		}
	}
	// A store keeps the newest FailureThreshold failures only (see
	// breaker.MaxFailureThreshold): more never decide anything.
	return min(n, r.p.FailureThreshold)
}

// admit is Store.Admit. When the call gets a probe permit, the model holds
// it in the returned lease; the Admission's Probe is left 0.
func (r *modelRun) admit(c *circuit) (breaker.Admission, *lease) {
	if c.state == breaker.StateClosed {
		return breaker.Admission{Allowed: true, State: breaker.StateClosed, Generation: c.gen}, nil
	}
	var a breaker.Admission
	if c.state == breaker.StateOpen {
		if r.overrideHolds(c, breaker.OverrideForceOpen) {
			a := breaker.Admission{State: breaker.StateOpen, Generation: c.gen}
			if c.ov.until != unset {
				a.RetryAfter = c.ov.until - r.now
			}
			return a, nil
		}
		if r.now < c.retryAt {
			return breaker.Admission{State: breaker.StateOpen, Generation: c.gen, RetryAfter: c.retryAt - r.now}, nil
		}
		a.Transition = c.transition(breaker.StateHalfOpen)
	}
	a.State, a.Generation = breaker.StateHalfOpen, c.gen
	if held := r.live(c); len(held) >= r.p.HalfOpenMaxCalls {
		first := held[0].expires
		for _, l := range held {
			first = min(first, l.expires)
		}
		a.RetryAfter = first - r.now
		return a, nil
	}
	l := &lease{expires: r.now + r.p.ProbeTimeout}
	c.leases = append(r.live(c), l)
	a.Allowed = true
	return a, l
}

// record is Store.Record of an outcome of kind in generation gen that holds
// the permit l, or (l nil) the permit with id probe.
func (r *modelRun) record(c *circuit, kind breaker.OutcomeKind, gen, probe uint64, l *lease) breaker.Result {
	if !c.exists {
		if gen != 0 || kind == breaker.OutcomeSuccess {
			return breaker.Result{Ignored: gen != 0, State: breaker.StateClosed}
		}
		c.exists = true // a failure is state
	}
	res := breaker.Result{State: c.state, Generation: c.gen}
	if gen != c.gen {
		res.Ignored = true
		return res
	}
	switch c.state {
	case breaker.StateClosed:
		if kind == breaker.OutcomeSuccess {
			c.failures = 0 // window mode: successes erase nothing
			return res
		}
		c.lastFailure = r.now
		var count int
		if r.p.FailureWindow == 0 {
			c.failures++
			count = c.failures
		} else {
			c.failTimes = append(c.failTimes, r.now)
			count = r.inWindow(c)
		}
		if count < r.p.FailureThreshold || r.overrideHolds(c, breaker.OverrideForceClose) {
			return res
		}
		res.Transition = r.open(c)
	case breaker.StateHalfOpen:
		i := slices.IndexFunc(c.leases, func(x *lease) bool {
			return r.now < x.expires && (x == l || (l == nil && probe != 0 && x.id == probe))
		})
		if i < 0 {
			res.Ignored = true // a lapsed or unknown permit
			return res
		}
		c.leases = slices.Delete(c.leases, i, i+1)
		if kind == breaker.OutcomeFailure {
			c.lastFailure = r.now
			res.Transition = r.open(c)
		} else if c.successes++; c.successes >= r.p.SuccessThreshold {
			res.Transition = c.transition(breaker.StateClosed)
		}
	default: // open: no call is admitted in an open generation
		res.Ignored = true
		return res
	}
	res.State, res.Generation = c.state, c.gen
	return res
}

// apply is Store.Apply.
func (r *modelRun) apply(c *circuit, cmd breaker.Command) (breaker.Result, error) {
	if cmd.IfExists && !c.exists {
		return breaker.Result{}, breaker.ErrUnknownCircuit
	}
	c.exists = true
	to := breaker.StateClosed
	if cmd.Kind == breaker.CommandForceOpen {
		to = breaker.StateOpen
	}
	res := breaker.Result{Transition: c.transition(to)}
	if cmd.Kind != breaker.CommandReset {
		ov := &override{mode: breaker.OverrideForceClose, at: r.now, until: unset, actor: cmd.Actor, reason: cmd.Reason}
		if cmd.TTL > 0 {
			ov.until = r.now + cmd.TTL
		}
		if cmd.Kind == breaker.CommandForceOpen {
			ov.mode = breaker.OverrideForceOpen
			c.openedAt, c.retryAt = r.now, ov.until
		}
		c.ov = ov
	}
	res.State, res.Generation = c.state, c.gen
	return res, nil
}

// view is a Snapshot with its times as offsets from the start of the check,
// so that a difference reads "+150ms" rather than two timestamps.
type view struct {
	State       breaker.State
	Generation  uint64
	Failures    int
	Successes   int
	Probes      int
	LastFailure string
	OpenedAt    string
	RetryAt     string
	Override    string
}

func at(d time.Duration) string {
	if d == unset {
		return "-"
	}
	return "+" + d.String()
}

func (r *modelRun) offset(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return at(t.Sub(r.base))
}

// expect is what Load must return for c now.
func (r *modelRun) expect(c *circuit) view {
	v := view{
		State:       c.state,
		Generation:  c.gen,
		Failures:    c.failures,
		Successes:   c.successes,
		Probes:      len(r.live(c)),
		LastFailure: at(c.lastFailure),
		OpenedAt:    at(c.openedAt),
		RetryAt:     at(c.retryAt),
	}
	if r.p.FailureWindow > 0 {
		v.Failures = r.inWindow(c)
	}
	if ov := c.ov; ov != nil && (ov.until == unset || r.now < ov.until) {
		v.Override = fmt.Sprintf("%s at %s until %s by %q for %q", ov.mode, at(ov.at), at(ov.until), ov.actor, ov.reason)
	}
	return v
}

func (r *modelRun) view(s breaker.Snapshot) view {
	v := view{
		State:       s.State,
		Generation:  s.Generation,
		Failures:    s.Failures,
		Successes:   s.Successes,
		Probes:      s.Probes,
		LastFailure: r.offset(s.LastFailure),
		OpenedAt:    r.offset(s.OpenedAt),
		RetryAt:     r.offset(s.RetryAt),
	}
	if ov := s.Override; ov != nil {
		v.Override = fmt.Sprintf("%s at %s until %s by %q for %q", ov.Mode, r.offset(ov.At), r.offset(ov.Until), ov.Actor, ov.Reason)
	}
	return v
}

// Checks shared by every step.

// checkGeneration checks that an answer's generation is not older than any
// seen before on c (equality with the model's is checked with the answer).
func (r *modelRun) checkGeneration(c *circuit, gen uint64, what string) {
	r.t.Helper()
	require.GreaterOrEqual(r.t, gen, c.seenGen, "%s: %s: the generation went back", c.name, what)
	c.seenGen = gen
}

// checkTransition checks a transition an answer reported against the one
// the model predicts (zero: none). prev is the generation before the call.
func (r *modelRun) checkTransition(c *circuit, prev uint64, want, got breaker.Transition, what string) {
	r.t.Helper()
	if got != (breaker.Transition{}) {
		require.NotEqual(r.t, breaker.Transition{}, want,
			"%s: %s reported a transition without a cause: %+v", c.name, what, got)
		require.Equal(r.t, prev+1, got.Generation, "%s: %s: a transition must start the next generation", c.name, what)
	}
	require.Equal(r.t, want, got, "%s: %s: transition", c.name, what)
}

func (r *modelRun) checkAdmission(c *circuit, prev uint64, want, got breaker.Admission, l *lease) {
	r.t.Helper()
	r.checkTransition(c, prev, want.Transition, got.Transition, "Admit")
	r.checkGeneration(c, got.Generation, "Admit")
	if l != nil {
		require.NotZero(r.t, got.Probe, "%s: a half-open admission must hold a probe permit: %+v", c.name, got)
		require.False(r.t, c.probeIDs[got.Probe], "%s: probe id %d granted twice", c.name, got.Probe)
		c.probeIDs[got.Probe] = true
		l.id = got.Probe
	} else {
		require.Zero(r.t, got.Probe, "%s: a call without a permit has a probe id: %+v", c.name, got)
	}
	got.Probe = 0
	require.Equal(r.t, want, got, "%s: Admit", c.name)
}

func (r *modelRun) checkResult(c *circuit, prev uint64, want, got breaker.Result, what string) {
	r.t.Helper()
	r.checkTransition(c, prev, want.Transition, got.Transition, what)
	r.checkGeneration(c, got.Generation, what)
	require.Equal(r.t, want, got, "%s: %s", c.name, what)
}

// checkChanges checks that OnStateChange was called for t, and only for t,
// since the last check.
func (r *modelRun) checkChanges(c *circuit, t breaker.Transition) {
	r.t.Helper()
	var want []string
	if t.Changed() {
		want = append(want, fmt.Sprintf("%s: %s -> %s", c.name, t.From, t.To))
	}
	r.mu.Lock()
	got := r.changes
	r.changes = nil
	r.mu.Unlock()
	require.Equal(r.t, want, got, "OnStateChange calls")
}

// load checks Load of c on st against the model.
func (r *modelRun) load(c *circuit, st breaker.Store) {
	r.t.Helper()
	snap, err := st.Load(r.ctx, c.name)
	require.NoError(r.t, err, "Load")
	require.Equal(r.t, c.name, snap.Name, "Snapshot.Name")
	require.LessOrEqual(r.t, snap.Probes, r.p.HalfOpenMaxCalls, "%s: more probe permits held than HalfOpenMaxCalls", c.name)
	r.checkGeneration(c, snap.Generation, "Load")
	require.Equal(r.t, r.expect(c), r.view(snap), "%s: Load at %s", c.name, at(r.now))
}

// The steps.

func (r *modelRun) drawCircuit(t *rapid.T) *circuit {
	return r.circuits[rapid.IntRange(0, len(r.circuits)-1).Draw(t, "circuit")]
}

func (r *modelRun) drawReplica(t *rapid.T) (int, breaker.Store) {
	i := rapid.IntRange(0, len(r.replicas)-1).Draw(t, "replica")
	return i, r.replicas[i]
}

var errBoom = errors.New("boom")

func (r *modelRun) drawKind(t *rapid.T) breaker.OutcomeKind {
	if rapid.SampledFrom([]string{"success", "failure"}).Draw(t, "outcome") == "failure" {
		return breaker.OutcomeFailure
	}
	return breaker.OutcomeSuccess
}

var commandKinds = map[string]breaker.CommandKind{
	"reset": breaker.CommandReset, "force-open": breaker.CommandForceOpen, "force-close": breaker.CommandForceClose,
}

func (r *modelRun) drawCommand(t *rapid.T) breaker.Command {
	return breaker.Command{
		Kind:     commandKinds[rapid.SampledFrom([]string{"reset", "force-open", "force-close"}).Draw(t, "command")],
		TTL:      time.Duration(rapid.SampledFrom([]int{0, 0, 5, 50, 300}).Draw(t, "TTL (ms)")) * time.Millisecond,
		Actor:    rapid.SampledFrom([]string{"", "ops"}).Draw(t, "actor"),
		Reason:   rapid.SampledFrom([]string{"", "deploy", "a b\nc"}).Draw(t, "reason"),
		IfExists: rapid.Bool().Draw(t, "ifExists"),
	}
}

// admitOn admits one call on st and checks the answer; it returns the
// ticket of an admitted call.
func (r *modelRun) admitOn(c *circuit, st breaker.Store) *ticket {
	r.t.Helper()
	prev := c.gen
	want, l := r.admit(c)
	got, err := st.Admit(r.ctx, c.name, r.p)
	require.NoError(r.t, err, "Admit")
	r.checkAdmission(c, prev, want, got, l)
	if !got.Allowed {
		return nil
	}
	return &ticket{c: c, gen: got.Generation, probe: l.idOrZero(), lease: l}
}

func (l *lease) idOrZero() uint64 {
	if l == nil {
		return 0
	}
	return l.id
}

// recordOn records the outcome of tk on st and checks the answer.
func (r *modelRun) recordOn(tk *ticket, st breaker.Store, kind breaker.OutcomeKind) {
	r.t.Helper()
	c := tk.c
	prev := c.gen
	want := r.record(c, kind, tk.gen, tk.probe, tk.lease)
	got, err := st.Record(r.ctx, c.name, r.p, breaker.Outcome{Kind: kind, Generation: tk.gen, Probe: tk.probe})
	require.NoError(r.t, err, "Record")
	r.checkResult(c, prev, want, got, "Record")
}

func (r *modelRun) applyOn(c *circuit, st breaker.Store, cmd breaker.Command) {
	r.t.Helper()
	prev := c.gen
	want, werr := r.apply(c, cmd)
	got, err := st.Apply(r.ctx, c.name, cmd)
	if werr != nil {
		require.ErrorIs(r.t, err, werr, "Apply %+v", cmd)
		require.Equal(r.t, breaker.Result{}, got, "Apply that failed")
		return
	}
	require.NoError(r.t, err, "Apply %+v", cmd)
	r.checkResult(c, prev, want, got, "Apply "+cmd.Kind.String())
	if cmd.Kind == breaker.CommandReset {
		require.Equal(r.t, breaker.StateClosed, got.State, "%s: a Reset must end in closed", c.name)
		r.load(c, st)
	}
}

// advance moves the clock by d.
func (r *modelRun) advance(d time.Duration) {
	r.h.Advance(d)
	r.now += d
}

// deadlines lists the times ahead at which something changes on its own.
func (r *modelRun) deadlines() []time.Duration {
	var ds []time.Duration
	add := func(d time.Duration) {
		if d != unset && d > r.now {
			ds = append(ds, d)
		}
	}
	for _, c := range r.circuits {
		if c.state == breaker.StateOpen {
			add(c.retryAt)
		}
		if c.ov != nil {
			add(c.ov.until)
		}
		for _, l := range c.leases {
			add(l.expires)
		}
		for _, f := range c.failTimes {
			add(f + r.p.FailureWindow)
		}
	}
	slices.Sort(ds)
	return slices.Compact(ds)
}

func (r *modelRun) actions() map[string]func(*rapid.T) {
	return map[string]func(*rapid.T){
		// call: admit and record at once, perhaps on another replica.
		"call": func(t *rapid.T) {
			c := r.drawCircuit(t)
			_, st := r.drawReplica(t)
			if tk := r.admitOn(c, st); tk != nil {
				_, st := r.drawReplica(t)
				r.recordOn(tk, st, r.drawKind(t))
			}
		},
		// fail: a failed call, admitted and recorded at once.
		"fail": func(t *rapid.T) {
			c := r.drawCircuit(t)
			_, st := r.drawReplica(t)
			if tk := r.admitOn(c, st); tk != nil {
				r.recordOn(tk, st, breaker.OutcomeFailure)
			}
		},
		// admit: a call that stays in flight.
		"admit": func(t *rapid.T) {
			c := r.drawCircuit(t)
			_, st := r.drawReplica(t)
			if tk := r.admitOn(c, st); tk != nil {
				r.tickets = append(r.tickets, tk)
			}
		},
		// finish: a call in flight ends (its outcome may be stale by now).
		"finish": func(t *rapid.T) {
			if len(r.tickets) == 0 {
				t.Skip("no call in flight")
			}
			i := rapid.IntRange(0, len(r.tickets)-1).Draw(t, "ticket")
			tk := r.tickets[i]
			r.tickets = slices.Delete(r.tickets, i, i+1)
			if tk.done != nil {
				// The default IsFailure: context.Canceled is a success.
				err := rapid.SampledFrom([]error{nil, errBoom, context.Canceled}).Draw(t, "err")
				kind := breaker.OutcomeSuccess
				if err == errBoom {
					kind = breaker.OutcomeFailure
				}
				want := r.record(tk.c, kind, tk.gen, 0, tk.lease)
				tk.done(err)
				r.checkChanges(tk.c, want.Transition)
				return
			}
			_, st := r.drawReplica(t)
			r.recordOn(tk, st, r.drawKind(t))
		},
		// record: an outcome nobody was admitted for, or a stale one.
		"record": func(t *rapid.T) {
			c := r.drawCircuit(t)
			_, st := r.drawReplica(t)
			probes := []uint64{0, 1 << 40}
			for id := range c.probeIDs {
				probes = append(probes, id)
			}
			slices.Sort(probes)
			tk := &ticket{
				c:     c,
				gen:   uint64(rapid.IntRange(0, int(c.gen)+1).Draw(t, "generation")),
				probe: rapid.SampledFrom(probes).Draw(t, "probe"),
			}
			r.recordOn(tk, st, r.drawKind(t))
		},
		// burst: several replicas admit at once, at the same store time.
		"burst": func(t *rapid.T) {
			c := r.drawCircuit(t)
			n := rapid.IntRange(2, 5).Draw(t, "callers")
			got := make([]breaker.Admission, n)
			errs := make([]error, n)
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() {
					got[i], errs[i] = r.replicas[i%len(r.replicas)].Admit(r.ctx, c.name, r.p)
				})
			}
			wg.Wait()
			prev := c.gen
			want := make([]breaker.Admission, n)
			leases := make([]*lease, 0, n)
			for i := range n {
				var l *lease
				want[i], l = r.admit(c)
				if l != nil {
					leases = append(leases, l)
				}
			}
			var transitions int
			for i, a := range got {
				require.NoError(t, errs[i], "Admit")
				r.checkGeneration(c, a.Generation, "Admit")
				if a.Transition != (breaker.Transition{}) {
					transitions++
					require.NotEqual(t, prev, c.gen, "%s: Admit reported a transition without a cause: %+v", c.name, a.Transition)
					require.Equal(t, prev+1, a.Transition.Generation, "%s: a transition must start the next generation", c.name)
				}
			}
			require.LessOrEqual(t, transitions, 1, "%s: one transition reported to %d callers", c.name, transitions)
			require.ElementsMatch(t, want, stripProbes(got), "%s: concurrent admissions", c.name)
			for _, a := range got {
				switch {
				case a.Allowed && a.State == breaker.StateHalfOpen:
					require.NotZero(t, a.Probe, "%s: a half-open admission must hold a probe permit: %+v", c.name, a)
					require.False(t, c.probeIDs[a.Probe], "%s: probe id %d granted twice", c.name, a.Probe)
					c.probeIDs[a.Probe] = true
					l := leases[0]
					l.id, leases = a.Probe, leases[1:]
					r.tickets = append(r.tickets, &ticket{c: c, gen: a.Generation, probe: a.Probe, lease: l})
				case a.Allowed:
					require.Zero(t, a.Probe, "%s: a call without a permit has a probe id: %+v", c.name, a)
					r.tickets = append(r.tickets, &ticket{c: c, gen: a.Generation})
				}
			}
		},
		// breakerCall: a call through a Breaker, in flight or recorded at once.
		"breakerCall": func(t *rapid.T) {
			c := r.drawCircuit(t)
			i, _ := r.drawReplica(t)
			want, l := r.admit(c)
			done, err := c.breakers[i].Allow(r.ctx)
			r.checkChanges(c, want.Transition)
			if !want.Allowed {
				require.Error(t, err, "%s: Allow admitted a call the model rejects", c.name)
				require.ErrorIs(t, err, breaker.ErrOpen)
				var oe *breaker.OpenError
				require.ErrorAs(t, err, &oe)
				assert.Equal(t, &breaker.OpenError{Name: c.name, State: want.State, RetryAfter: want.RetryAfter}, oe)
				return
			}
			require.NoError(t, err, "%s: Allow", c.name)
			require.NotNil(t, done)
			r.tickets = append(r.tickets, &ticket{c: c, gen: want.Generation, lease: l, done: done})
		},
		// command: an operator's command, to the store or through a Breaker.
		"command": func(t *rapid.T) {
			c := r.drawCircuit(t)
			i, st := r.drawReplica(t)
			cmd := r.drawCommand(t)
			if !rapid.Bool().Draw(t, "viaBreaker") {
				r.applyOn(c, st, cmd)
				return
			}
			cmd.Actor, cmd.Reason, cmd.IfExists = "", "", false
			want, werr := r.apply(c, cmd)
			require.NoError(t, werr)
			var err error
			b := c.breakers[i]
			switch cmd.Kind {
			case breaker.CommandReset:
				err = b.Reset(r.ctx)
			case breaker.CommandForceOpen:
				err = b.ForceOpen(r.ctx, cmd.TTL)
			case breaker.CommandForceClose:
				err = b.ForceClose(r.ctx, cmd.TTL)
			}
			require.NoError(t, err, "%s: Breaker %s", c.name, cmd.Kind)
			r.checkChanges(c, want.Transition)
			snap, err := b.Snapshot(r.ctx)
			require.NoError(t, err, "Breaker.Snapshot")
			require.Equal(t, r.expect(c), r.view(snap), "%s: Breaker.Snapshot after %s", c.name, cmd.Kind)
			assert.Equal(t, c.name, snap.Name)
			assert.Zero(t, snap.StoreErrors)
			assert.False(t, snap.Degraded, "a Breaker whose store never failed is degraded")
			assert.Zero(t, snap.DegradedCalls)
		},
		// advance: a few milliseconds, or now and then long enough for
		// every deadline to pass.
		"advance": func(t *rapid.T) {
			if rapid.IntRange(0, 9).Draw(t, "long") == 0 {
				r.advance(time.Duration(rapid.IntRange(1, 3).Draw(t, "advance (s)")) * time.Second)
				return
			}
			r.advance(time.Duration(rapid.IntRange(0, 150).Draw(t, "advance (ms)")) * time.Millisecond)
		},
		// deadline: to a deadline (most often the next one), or a
		// millisecond either side of it.
		"deadline": func(t *rapid.T) {
			ds := r.deadlines()
			if len(ds) == 0 {
				t.Skip("no deadline ahead")
			}
			d := ds[0]
			if rapid.Bool().Draw(t, "later") {
				d = ds[rapid.IntRange(0, len(ds)-1).Draw(t, "deadline")]
			}
			d += time.Duration(rapid.SampledFrom([]int{0, 0, -1, 1}).Draw(t, "delta (ms)")) * time.Millisecond
			r.advance(max(d-r.now, 0))
		},
		// After every step, a circuit as the model has it (one per step
		// keeps a slow store's run short; both are loaded in turn).
		"": func(t *rapid.T) {
			r.steps++
			c := r.circuits[r.steps%len(r.circuits)]
			require.LessOrEqual(t, len(r.live(c)), r.p.HalfOpenMaxCalls, "model: probe permits")
			r.load(c, r.replicas[r.steps%len(r.replicas)])
		},
	}
}

func stripProbes(as []breaker.Admission) []breaker.Admission {
	out := make([]breaker.Admission, len(as))
	for i, a := range as {
		a.Probe = 0
		out[i] = a
	}
	return out
}
