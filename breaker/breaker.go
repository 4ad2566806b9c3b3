package breaker

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"
)

// Breaker guards calls to one dependency with one circuit. It is safe for
// concurrent use. Breakers with the same name and the same Store share the
// circuit, whether they live in one process or in many.
type Breaker struct {
	name          string
	store         Store
	policy        Policy
	isFailure     func(error) bool
	onStateChange func(name string, from, to State)
	seen          *seenGate // nil without OnStateSeen
	logger        *slog.Logger
	mode          DegradedMode
	backoffMax    time.Duration
	now           func() time.Time // the clock of the store backoff and of the fallback

	storeErrors   atomic.Uint64
	degradedCalls atomic.Uint64
	episode       atomic.Pointer[episode] // nil while the store answers
	// lastEpisode is the last episode that ended, while the store has
	// recorded no outcome since: the next one may resume it (startEpisode).
	lastEpisode atomic.Pointer[episode]
	// policyWarned: this Breaker has logged that the circuit was written
	// under other settings (warnPolicy); once is enough.
	policyWarned atomic.Bool
}

// New returns a Breaker for the circuit called name. It returns an error,
// never panics, for a name that is empty, longer than MaxNameLen bytes or
// not valid UTF-8, and for a Config with negative fields or an unknown
// Degraded mode.
func New(name string, cfg Config) (*Breaker, error) {
	return newBreaker(name, cfg, time.Now)
}

func newBreaker(name string, cfg Config, now func() time.Time) (*Breaker, error) {
	if err := validateName(name); err != nil {
		return nil, err
	}
	p, err := cfg.policy()
	if err != nil {
		return nil, err
	}
	b := &Breaker{
		name:          name,
		store:         cfg.Store,
		policy:        p,
		isFailure:     cfg.IsFailure,
		onStateChange: cfg.OnStateChange,
		logger:        cfg.Logger,
		mode:          cfg.Degraded,
		backoffMax:    or(cfg.StoreBackoffMax, DefaultStoreBackoffMax),
		now:           now,
	}
	if b.store == nil {
		b.store = newDefaultStore()
	}
	// A store that knows it is misconfigured says so now, rather than at
	// every call, where it would look like an outage and start a degraded
	// episode that never ends.
	if v, ok := b.store.(interface{ Err() error }); ok {
		if err := v.Err(); err != nil {
			return nil, fmt.Errorf("tripline: circuit %q: unusable store: %w", name, err)
		}
	}
	if b.isFailure == nil {
		b.isFailure = defaultIsFailure
	}
	if b.logger == nil {
		b.logger = defaultLogger()
	}
	if f, ok := b.store.(Follower); ok {
		if fn := cfg.OnStateSeen; fn != nil {
			b.seen = &seenGate{fn: func(from, to State) { fn(name, from, to) }}
		}
		b.follow(f)
	}
	return b, nil
}

// Name returns the circuit's name.
func (b *Breaker) Name() string { return b.name }

// Policy returns the state-machine settings in force, defaults applied.
func (b *Breaker) Policy() Policy { return b.policy }

// ticket is what an admitted call carries to its outcome.
type ticket struct {
	generation uint64
	probe      uint64
	ep         *episode // non-nil: admitted degraded, during this episode
}

// admit asks the store whether a call may run, or during a degraded episode
// decides without it.
func (b *Breaker) admit(ctx context.Context) (ticket, error) {
	if err := ctx.Err(); err != nil {
		return ticket{}, err
	}
	if ep := b.episode.Load(); ep != nil {
		return b.admitDegraded(ctx, ep)
	}
	var a Admission
	var err error
	if b.seen == nil { // the common case, without a call in between
		a, err = b.store.Admit(ctx, b.name, b.policy)
	} else {
		a, err = b.storeAdmit(ctx)
	}
	if err != nil {
		ep, serr := b.storeFailed(ctx, "admit", err)
		if ep == nil {
			return ticket{}, serr
		}
		return b.serveDegraded(ctx, ep, err)
	}
	return b.admitted(ctx, a)
}

// admitted turns the store's admission into a ticket or a rejection.
func (b *Breaker) admitted(ctx context.Context, a Admission) (ticket, error) {
	if a.PolicyDiffers {
		b.warnPolicy(ctx)
	}
	b.notify(ctx, a.Transition, "timeout", false)
	if !a.Allowed {
		return ticket{}, &OpenError{Name: b.name, State: a.State, RetryAfter: a.RetryAfter}
	}
	return ticket{generation: a.Generation, probe: a.Probe}, nil
}

// record reports the outcome of an admitted call to the store that admitted
// it. A store failure here is counted (and may start a degraded episode); it
// never changes what the caller gets back. A nil error is a success without
// asking IsFailure.
func (b *Breaker) record(ctx context.Context, t ticket, err error, panicked bool) {
	if t.ep != nil && t.ep.fallback == nil {
		return // FailOpen: nothing is counted
	}
	kind := OutcomeSuccess
	if panicked || (err != nil && b.isFailure(err)) {
		kind = OutcomeFailure
	}
	if ctx.Err() != nil {
		// The caller gave up, but the outcome still happened: count it.
		ctx = context.WithoutCancel(ctx)
	}
	o := Outcome{Kind: kind, Generation: t.generation, Probe: t.probe}
	if t.ep != nil {
		b.recordDegraded(ctx, t.ep, o)
		return
	}
	var r Result
	var serr error
	if b.seen == nil { // the common case, without a call in between
		r, serr = b.store.Record(ctx, b.name, b.policy, o)
	} else {
		r, serr = b.storeRecord(ctx, o)
	}
	if serr != nil {
		if ep, _ := b.storeFailed(ctx, "record", serr); ep != nil {
			b.countUnrecorded(ctx, ep, kind)
		}
		return
	}
	if r.PolicyDiffers {
		b.warnPolicy(ctx)
	}
	if b.lastEpisode.Load() != nil {
		// The store takes outcomes again: a later failure starts afresh
		// (and the old fallback can go).
		b.lastEpisode.Store(nil)
	}
	b.notify(ctx, r.Transition, "outcome", false)
}

// Do runs fn if the circuit admits the call and counts its outcome, and
// returns fn's error as it is. A rejected call returns an error matched by
// errors.Is(err, ErrOpen) (an *OpenError) without running fn. If ctx is
// already done, Do returns ctx.Err() without running fn or counting
// anything; if ctx is canceled while fn runs, the outcome is still counted
// (by default a context.Canceled error counts as a success, see
// Config.IsFailure). If fn panics, or calls runtime.Goexit (as t.FailNow
// does in a test), that counts as a failure, and the panic or the Goexit
// goes on. When the store cannot answer, the call is decided in the
// Breaker's degraded mode (see Config.Degraded): FailClosed returns a
// *StoreError without running fn. A store failure on recording never
// changes what Do returns.
func (b *Breaker) Do(ctx context.Context, fn func(context.Context) error) error {
	t, err := b.admit(ctx)
	if err != nil {
		return err
	}
	panicked := true
	defer func() {
		if panicked {
			b.record(ctx, t, nil, true)
		}
	}()
	err = fn(ctx)
	panicked = false
	b.record(ctx, t, err, false)
	return err
}

// Execute is Do for functions that return a value: it returns fn's value
// and error as they are. When fn is not run (rejection, ctx already done,
// store failure) it returns the zero T and the error, as Do would. A panic
// or a runtime.Goexit in fn counts as a failure and goes on, as in Do.
func Execute[T any](ctx context.Context, b *Breaker, fn func(context.Context) (T, error)) (T, error) {
	t, err := b.admit(ctx)
	if err != nil {
		var zero T
		return zero, err
	}
	panicked := true
	defer func() {
		if panicked {
			b.record(ctx, t, nil, true)
		}
	}()
	v, err := fn(ctx)
	panicked = false
	b.record(ctx, t, err, false)
	return v, err
}

// Allow is the two-step form of Do, for callers that cannot wrap the call in
// a function. If the call is admitted, run it and pass its error to done
// exactly once; later calls of done are ignored, and done is safe to call
// from any goroutine. On rejection (and on every error Do would return
// without running fn) done is nil. If done is never called, a probe's permit
// lapses after ProbeTimeout; a closed-state call is simply not counted.
// Allow cannot see a panic or a runtime.Goexit: report one as a non-nil
// error.
func (b *Breaker) Allow(ctx context.Context) (done func(err error), err error) {
	t, err := b.admit(ctx)
	if err != nil {
		return nil, err
	}
	var once atomic.Bool
	return func(err error) {
		if once.CompareAndSwap(false, true) {
			b.record(ctx, t, err, false)
		}
	}, nil
}

// Snapshot reads the circuit's state from the store, with StoreErrors,
// Degraded and DegradedCalls set from this Breaker. It changes nothing (an
// open circuit whose timeout has passed reads as open until a call moves it
// to half-open).
//
// During a degraded episode it does not fail: it reads the store only as
// the episode's probe (which ends the episode if it succeeds), and
// otherwise returns, with Degraded set, the local fallback's view
// (FallbackLocal), or a closed (FailOpen) or open (FailClosed) circuit with
// nothing else known. A store failure outside an episode starts one, and
// Snapshot answers as just said. If ctx is done when the store fails,
// Snapshot returns ctx.Err().
func (b *Breaker) Snapshot(ctx context.Context) (Snapshot, error) {
	if ep := b.episode.Load(); ep != nil {
		if !ep.tryProbe(b.now()) {
			return b.snapshotDegraded(ctx, ep), nil
		}
		s, err := b.store.Load(ctx, b.name)
		if err == nil {
			b.handBack(ctx, ep, s.State, s.Generation)
			return b.fill(s), nil
		}
		if err := b.probeFailed(ctx, ep, "load", err); err != nil {
			return Snapshot{}, err
		}
		return b.snapshotDegraded(ctx, ep), nil
	}
	s, err := b.store.Load(ctx, b.name)
	if err != nil {
		ep, err := b.storeFailed(ctx, "load", err)
		if ep == nil {
			return Snapshot{}, err
		}
		return b.snapshotDegraded(ctx, ep), nil
	}
	return b.fill(s), nil
}

// fill sets the fields of s that come from the Breaker.
func (b *Breaker) fill(s Snapshot) Snapshot {
	s.Name = b.name
	s.StoreErrors = b.storeErrors.Load()
	s.DegradedCalls = b.degradedCalls.Load()
	return s
}

// Reset closes the circuit, clears its counters and removes any override,
// for every Breaker that shares it. Like every transition it starts a new
// generation, so outcomes of calls admitted before it are ignored. It calls
// OnStateChange if the state changed, and logs the command in any case. A
// store failure returns a *StoreError. Whether the store took it or not,
// the command applies at once to the Breaker's local fallback, if it has
// one (see "Store failures" in the package documentation).
func (b *Breaker) Reset(ctx context.Context) error {
	return b.apply(ctx, Command{Kind: CommandReset})
}

// ForceOpen rejects every call on the circuit, for every Breaker that shares
// it, until Reset or until ttl has passed (0: no expiry); rejections carry
// RetryAfter = the time left (0 without expiry). When ttl passes the circuit
// is open with its timeout over, so the next call is a half-open probe.
// A negative ttl is an error. Transitions, OnStateChange, logging and store
// failures are as for Reset.
func (b *Breaker) ForceOpen(ctx context.Context, ttl time.Duration) error {
	return b.apply(ctx, Command{Kind: CommandForceOpen, TTL: ttl})
}

// ForceClose admits every call on the circuit, for every Breaker that shares
// it, until Reset or until ttl has passed (0: no expiry). Outcomes are still
// counted but cannot trip the circuit while the override holds; once it
// ends, the next failure trips the circuit if the count has reached the
// threshold. A negative ttl is an error. Transitions, OnStateChange, logging
// and store failures are as for Reset.
func (b *Breaker) ForceClose(ctx context.Context, ttl time.Duration) error {
	return b.apply(ctx, Command{Kind: CommandForceClose, TTL: ttl})
}

func (b *Breaker) apply(ctx context.Context, c Command) error {
	if c.TTL < 0 {
		return fmt.Errorf("tripline: circuit %q: negative override TTL %s", b.name, c.TTL)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	r, err := b.storeApply(ctx, c)
	if err != nil {
		_, serr := b.storeFailed(ctx, "apply", err)
		local := b.applyLocal(ctx, c, Transition{})
		if _, isStore := serr.(*StoreError); isStore && isOutage(err) {
			// Outages are logged once per episode; a failed command is
			// logged each time, as the operator must give it again.
			b.logger.LogAttrs(ctx, slog.LevelWarn, "tripline: store failed a command",
				slog.String("circuit", b.name),
				slog.String("command", c.Kind.String()),
				slog.Bool("applied_locally", local),
				slog.Any("error", err))
		}
		return serr
	}
	b.notify(ctx, r.Transition, c.Kind.String(), false)
	b.applyLocal(ctx, c, r.Transition)
	return nil
}

// notify logs a transition and runs OnStateChange, outside any lock. A
// transition that keeps the state (an operator's command on a circuit
// already in that state: Reset of a closed circuit, for instance) starts a
// generation and is logged, but is not a state change for OnStateChange.
// The log of a transition made by the local fallback says degraded=true.
func (b *Breaker) notify(ctx context.Context, t Transition, cause string, degraded bool) {
	if !t.Changed() {
		if t.Generation != 0 {
			b.logger.LogAttrs(ctx, slog.LevelInfo, "tripline: circuit command applied",
				slog.String("circuit", b.name),
				slog.String("state", t.To.String()),
				slog.Uint64("generation", t.Generation),
				slog.String("cause", cause))
		}
		return
	}
	var tag slog.Attr // an empty Attr is not logged
	if degraded {
		tag = slog.Bool("degraded", true)
	}
	b.logger.LogAttrs(ctx, slog.LevelInfo, "tripline: circuit state changed",
		slog.String("circuit", b.name),
		slog.String("from", t.From.String()),
		slog.String("to", t.To.String()),
		slog.Uint64("generation", t.Generation),
		slog.String("cause", cause),
		tag)
	if b.onStateChange != nil {
		b.onStateChange(b.name, t.From, t.To)
	}
}

// warnPolicy logs, once per Breaker, that the store found the circuit
// last written under another Policy: replicas share the circuit with
// other settings (a rolling deploy, a Config that differs), so it trips
// and closes by whichever policy counts each step, not by this one's.
func (b *Breaker) warnPolicy(ctx context.Context) {
	if b.policyWarned.Load() || !b.policyWarned.CompareAndSwap(false, true) {
		return
	}
	p := b.policy
	b.logger.LogAttrs(ctx, slog.LevelWarn,
		"tripline: circuit was last written under other settings: replicas disagree on its policy",
		slog.String("circuit", b.name),
		slog.Group("policy",
			slog.Int("failure_threshold", p.FailureThreshold),
			slog.Duration("failure_window", p.FailureWindow),
			slog.Duration("timeout", p.Timeout),
			slog.Int("success_threshold", p.SuccessThreshold),
			slog.Int("half_open_max_calls", p.HalfOpenMaxCalls),
			slog.Duration("probe_timeout", p.ProbeTimeout)))
}

// storeAdmit, storeRecord and storeApply are the store's calls that may
// make a transition; with OnStateSeen set, the gate knows they are in
// flight (see seenGate).
func (b *Breaker) storeAdmit(ctx context.Context) (Admission, error) {
	if b.seen == nil {
		return b.store.Admit(ctx, b.name, b.policy)
	}
	e := b.seen.begin()
	a, err := b.store.Admit(ctx, b.name, b.policy)
	b.seen.end(e, a.Transition)
	return a, err
}

func (b *Breaker) storeRecord(ctx context.Context, o Outcome) (Result, error) {
	if b.seen == nil {
		return b.store.Record(ctx, b.name, b.policy, o)
	}
	e := b.seen.begin()
	r, err := b.store.Record(ctx, b.name, b.policy, o)
	b.seen.end(e, r.Transition)
	return r, err
}

func (b *Breaker) storeApply(ctx context.Context, c Command) (Result, error) {
	if b.seen == nil {
		return b.store.Apply(ctx, b.name, c)
	}
	e := b.seen.begin()
	r, err := b.store.Apply(ctx, b.name, c)
	b.seen.end(e, r.Transition)
	return r, err
}
