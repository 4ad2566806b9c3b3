package breaker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// DegradedMode says what a Breaker does while its Store cannot answer (a
// degraded episode; see "Store failures" in the package documentation).
type DegradedMode uint8

// The degraded modes. The zero value is FallbackLocal.
const (
	// FallbackLocal hands the circuit to an in-process breaker with the same
	// Policy, private to the Breaker, until the store answers again. It
	// starts closed with nothing counted; at the hand-back the shared state
	// takes over again, and what the fallback counted is set aside for an
	// episode that starts again soon (see "Store failures" in the package
	// documentation).
	FallbackLocal DegradedMode = iota
	// FailOpen admits every call and counts nothing.
	FailOpen
	// FailClosed rejects every call, without running it, with a *StoreError
	// (which does not match ErrOpen).
	FailClosed
)

// String returns "fallback-local", "fail-open" or "fail-closed".
func (m DegradedMode) String() string {
	switch m {
	case FallbackLocal:
		return "fallback-local"
	case FailOpen:
		return "fail-open"
	case FailClosed:
		return "fail-closed"
	}
	return fmt.Sprintf("DegradedMode(%d)", uint8(m))
}

// MarshalText encodes the mode as its String form.
func (m DegradedMode) MarshalText() ([]byte, error) {
	if m > FailClosed {
		return nil, fmt.Errorf("tripline: invalid degraded mode %d", uint8(m))
	}
	return []byte(m.String()), nil
}

// UnmarshalText decodes "fallback-local", "fail-open" or "fail-closed".
func (m *DegradedMode) UnmarshalText(text []byte) error {
	mode, err := ParseDegradedMode(string(text))
	if err != nil {
		return err
	}
	*m = mode
	return nil
}

// ParseDegradedMode is the inverse of DegradedMode.String.
func ParseDegradedMode(text string) (DegradedMode, error) {
	switch text {
	case "fallback-local":
		return FallbackLocal, nil
	case "fail-open":
		return FailOpen, nil
	case "fail-closed":
		return FailClosed, nil
	}
	return 0, fmt.Errorf("tripline: unknown degraded mode %q (want fallback-local, fail-open or fail-closed)", text)
}

// storeBackoffStart is the wait before the first probe of a failing store
// (or StoreBackoffMax if that is shorter); each failed probe doubles it.
const storeBackoffStart = 50 * time.Millisecond

// episode is one degraded episode: from the store failure that started it to
// the probe that ended it. A Breaker holds the current one in an atomic
// pointer, nil while the store answers.
type episode struct {
	fallback *memStore // FallbackLocal: the in-process breaker; nil in the other modes
	started  time.Time // on the Breaker's clock
	calls0   uint64    // Breaker.degradedCalls when the episode started

	// Set by handBack before the episode is kept as Breaker.lastEpisode, and
	// read by the episode that resumes it.
	ended  time.Time
	shared State // the store's state at the hand-back

	// The next probe may start once the clock reaches started+nextProbe.
	nextProbe atomic.Int64 // a time.Duration
	// probing is held by the one caller probing the store. backoff is
	// written only by that caller.
	probing atomic.Bool
	backoff time.Duration

	mu      sync.Mutex
	lastErr error // the store's latest error
}

func (ep *episode) err() error {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	return ep.lastErr
}

// tryProbe reports whether the caller may probe the store now: the backoff
// has passed and no other caller is probing. A true answer must be followed
// by handBack, probeFailed or probeAborted.
func (ep *episode) tryProbe(now time.Time) bool {
	if now.Sub(ep.started) < time.Duration(ep.nextProbe.Load()) || !ep.probing.CompareAndSwap(false, true) {
		return false
	}
	// A probe may have failed between the first check and the swap: it set
	// a new backoff before it let go of probing.
	if now.Sub(ep.started) < time.Duration(ep.nextProbe.Load()) {
		ep.probing.Store(false)
		return false
	}
	return true
}

// probeAborted lets the next caller probe at once: the probe did not learn
// whether the store answers (its caller's ctx was done).
func (ep *episode) probeAborted() { ep.probing.Store(false) }

// probeFailedAt doubles the backoff (up to limit) and starts it at now.
func (ep *episode) probeFailedAt(now time.Time, err error, limit time.Duration) {
	ep.backoff = min(2*ep.backoff, limit)
	ep.nextProbe.Store(int64(now.Sub(ep.started) + ep.backoff))
	ep.mu.Lock()
	ep.lastErr = err
	ep.mu.Unlock()
	ep.probing.Store(false)
}

// isOutage reports whether a store error means that the store cannot
// answer. ErrUnknownCircuit is an answer. (Argument errors are too, but a
// Breaker validates its arguments before it asks the store.)
func isOutage(err error) bool {
	return !errors.Is(err, ErrUnknownCircuit)
}

// storeFailed handles an error from a store call made outside a probe. If
// the caller's ctx is done it returns ctx.Err() and nothing else happens.
// Otherwise it counts the error, and returns it as a *StoreError with the
// episode it started or continues, or a nil episode if it is not an outage
// (then it is logged here, as an outage is once per episode).
func (b *Breaker) storeFailed(ctx context.Context, op string, err error) (*episode, error) {
	if cerr := ctx.Err(); cerr != nil {
		return nil, cerr
	}
	n := b.storeErrors.Add(1)
	serr := &StoreError{Name: b.name, Op: op, Err: err}
	if !isOutage(err) {
		b.logger.LogAttrs(ctx, slog.LevelWarn, "tripline: store failed",
			slog.String("circuit", b.name),
			slog.String("op", op),
			slog.Uint64("store_errors", n),
			slog.Any("error", err))
		return nil, serr
	}
	return b.startEpisode(ctx, op, err), serr
}

// startEpisode returns the current episode, starting one (and logging it)
// if there is none.
//
// An episode that starts less than StoreBackoffMax after the last one
// ended, with no outcome recorded by the store since, resumes it: its
// fallback goes on with what it counted, and the backoff goes on doubling.
// A store that answers the probe (a read) but fails the next write (Redis
// at maxmemory with noeviction refuses writes, not reads) or one that flaps
// would otherwise end each episode after 50ms with a new, closed fallback,
// and a dependency that fails all along would see about FailureThreshold
// calls per 50ms instead of a probe per Timeout.
func (b *Breaker) startEpisode(ctx context.Context, op string, err error) *episode {
	for {
		if ep := b.episode.Load(); ep != nil {
			return ep
		}
		now := b.now()
		ep := &episode{started: now, calls0: b.degradedCalls.Load(), lastErr: err}
		ep.backoff = min(storeBackoffStart, b.backoffMax)
		last := b.lastEpisode.Load()
		resumed := last != nil && now.Sub(last.ended) < b.backoffMax
		if resumed {
			ep.fallback = last.fallback
			ep.backoff = min(2*last.backoff, b.backoffMax)
		}
		ep.nextProbe.Store(int64(ep.backoff))
		if b.mode == FallbackLocal && ep.fallback == nil {
			ep.fallback = newMemStore(b.now)
		}
		if b.episode.CompareAndSwap(nil, ep) {
			attrs := []slog.Attr{
				slog.String("circuit", b.name),
				slog.String("mode", b.mode.String()),
				slog.String("op", op),
				slog.Any("error", err),
			}
			if resumed {
				attrs = append(attrs, slog.Duration("resumes_after", now.Sub(last.ended)))
			}
			b.logger.LogAttrs(ctx, slog.LevelWarn, "tripline: store unavailable, degraded", attrs...)
			if resumed && ep.fallback != nil {
				// The fallback decides again: report the change from the
				// shared state it took over from at the hand-back.
				if s, lerr := ep.fallback.Load(ctx, b.name); lerr == nil && s.State != last.shared {
					b.notify(ctx, Transition{From: last.shared, To: s.State, Generation: s.Generation}, "store unavailable", true)
				}
			}
			return ep
		}
	}
}

// probeFailed handles an error from a probe's store call. It returns nil
// when the call is to be served degraded, or the error to return: ctx.Err()
// when the caller's ctx is done, a *StoreError when the error is not an
// outage.
func (b *Breaker) probeFailed(ctx context.Context, ep *episode, op string, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		ep.probeAborted()
		return cerr
	}
	if !isOutage(err) {
		ep.probeAborted()
		_, serr := b.storeFailed(ctx, op, err) // counts and logs it
		return serr
	}
	b.storeErrors.Add(1)
	ep.probeFailedAt(b.now(), err, b.backoffMax)
	return nil
}

// handBack ends ep after a probe's store call succeeded: the shared state,
// which the probe found in state, takes over again, and the fallback with
// what it counted is set aside (an episode that starts soon may resume it,
// see startEpisode). If the fallback's state differs from the shared one,
// that change is reported as a transition.
func (b *Breaker) handBack(ctx context.Context, ep *episode, state State, generation uint64) {
	// Kept before the episode ends, so that any outcome the store records
	// once calls go to it again clears it (see record). Only the caller
	// probing ep gets here, so ep is still the current episode.
	ep.ended, ep.shared = b.now(), state
	b.lastEpisode.Store(ep)
	if !b.episode.CompareAndSwap(ep, nil) {
		return
	}
	calls := b.degradedCalls.Load() - ep.calls0
	b.logger.LogAttrs(ctx, slog.LevelInfo, "tripline: store recovered",
		slog.String("circuit", b.name),
		slog.String("mode", b.mode.String()),
		slog.Duration("duration", b.now().Sub(ep.started)),
		slog.Uint64("degraded_calls", calls))
	if ep.fallback != nil {
		s, err := ep.fallback.Load(ctx, b.name)
		if err == nil && s.State != state {
			b.notify(ctx, Transition{From: s.State, To: state, Generation: generation}, "store recovered", false)
		}
	}
}

// admitDegraded decides a call during episode ep: the store is probed if
// the backoff has passed and no other call is probing it; otherwise, or if
// the probe fails, the call is served in the Breaker's degraded mode.
func (b *Breaker) admitDegraded(ctx context.Context, ep *episode) (ticket, error) {
	if !ep.tryProbe(b.now()) {
		return b.serveDegraded(ctx, ep, nil)
	}
	a, err := b.storeAdmit(ctx)
	if err == nil {
		b.handBack(ctx, ep, a.State, a.Generation)
		return b.admitted(ctx, a)
	}
	if err := b.probeFailed(ctx, ep, "admit", err); err != nil {
		return ticket{}, err
	}
	return b.serveDegraded(ctx, ep, err)
}

// serveDegraded decides a call without the store, in the Breaker's degraded
// mode. cause is the store error the call itself met, if any.
func (b *Breaker) serveDegraded(ctx context.Context, ep *episode, cause error) (ticket, error) {
	b.degradedCalls.Add(1)
	switch b.mode {
	case FailOpen:
		return ticket{ep: ep}, nil
	case FailClosed:
		if cause == nil {
			cause = ep.err()
		}
		return ticket{}, &StoreError{Name: b.name, Op: "admit", Err: cause}
	}
	a, err := ep.fallback.Admit(ctx, b.name, b.policy)
	if err != nil {
		// The fallback fails only on a bad Policy, which New rejected.
		return ticket{}, &StoreError{Name: b.name, Op: "admit", Err: err}
	}
	b.notify(ctx, a.Transition, "timeout", true)
	if !a.Allowed {
		return ticket{}, &OpenError{Name: b.name, State: a.State, RetryAfter: a.RetryAfter}
	}
	return ticket{generation: a.Generation, probe: a.Probe, ep: ep}, nil
}

// recordDegraded counts the outcome of a call admitted during an episode:
// by the fallback that admitted it, if that fallback is the current
// episode's (its own episode, or one that resumed it). FailOpen counts
// nothing, and an outcome that comes while the store decides, or in an
// episode with another fallback, is dropped.
func (b *Breaker) recordDegraded(ctx context.Context, ep *episode, o Outcome) {
	if cur := b.episode.Load(); ep.fallback == nil || cur == nil || cur.fallback != ep.fallback {
		return
	}
	r, err := ep.fallback.Record(ctx, b.name, b.policy, o)
	if err != nil {
		return // the fallback fails only on bad input, which cannot reach it
	}
	b.notify(ctx, r.Transition, "outcome", true)
}

// countUnrecorded counts, in the fallback of episode ep, the outcome of a
// call the store admitted but failed to record, if the fallback is closed:
// a dependency that fails while the store refuses writes still trips the
// fallback.
func (b *Breaker) countUnrecorded(ctx context.Context, ep *episode, kind OutcomeKind) {
	if ep.fallback == nil {
		return
	}
	s, err := ep.fallback.Load(ctx, b.name)
	if err != nil || s.State != StateClosed {
		return
	}
	r, err := ep.fallback.Record(ctx, b.name, b.policy, Outcome{Kind: kind, Generation: s.Generation})
	if err != nil {
		return // the fallback fails only on bad input, which cannot reach it
	}
	b.notify(ctx, r.Transition, "outcome", true)
}

// snapshotDegraded is Snapshot during episode ep: the fallback's view
// (FallbackLocal), or closed (FailOpen) or open (FailClosed).
func (b *Breaker) snapshotDegraded(ctx context.Context, ep *episode) Snapshot {
	var s Snapshot
	switch b.mode {
	case FallbackLocal:
		s, _ = ep.fallback.Load(ctx, b.name) // the memory store's Load cannot fail
	case FailClosed:
		s.State = StateOpen
	}
	s.Degraded = true
	return b.fill(s)
}

// applyLocal applies an operator's command to the Breaker's local fallback
// at once, whether or not the store took it: a Breaker whose fallback
// tripped must admit calls once its own Reset has returned, store down or
// not. The current episode's fallback gets the command, and so does the one
// set aside for an episode that may resume it (see startEpisode). A TTL
// runs on the Breaker's clock. At the hand-back the shared state takes over
// as always, so a command the store never took ends there.
//
// A change of the current fallback's state is reported, with
// degraded=true, unless the store just reported the same change (shared):
// one command is one transition for OnStateChange. applyLocal reports
// whether a fallback took the command.
func (b *Breaker) applyLocal(ctx context.Context, c Command, shared Transition) bool {
	var cur *memStore
	if ep := b.episode.Load(); ep != nil {
		cur = ep.fallback
	}
	var aside *memStore
	if last := b.lastEpisode.Load(); last != nil && last.fallback != cur {
		aside = last.fallback
	}
	if aside != nil {
		// Nothing to report: it decides no call until an episode resumes it.
		_, _ = aside.Apply(ctx, b.name, c) // the fallback fails only on bad input, which apply refused
	}
	if cur == nil {
		return aside != nil
	}
	r, err := cur.Apply(ctx, b.name, c)
	if err != nil {
		return true // the fallback fails only on bad input, which apply refused
	}
	t := r.Transition
	if t.Changed() && !(shared.Changed() && shared.From == t.From && shared.To == t.To) {
		b.notify(ctx, t, c.Kind.String(), true)
	}
	return true
}
