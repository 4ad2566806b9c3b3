// Package breaker is a circuit breaker whose state can be shared by every
// replica of a service: Breakers with the same name and the same Store (for
// example store/redis) behave as one breaker.
//
// # Using it
//
// Make one Breaker per dependency, once, with New, and call through it:
//
//	payments, err := breaker.New("payments", breaker.Config{FailureThreshold: 5})
//	if err != nil {
//		return err // a bad Config is an error, never a panic
//	}
//	err = payments.Do(ctx, func(ctx context.Context) error {
//		return chargeCard(ctx, order)
//	})
//	if errors.Is(err, breaker.ErrOpen) {
//		// rejected without calling chargeCard: serve a fallback
//	}
//
// Execute does the same for a function that returns a value, and Allow for
// a call that cannot be wrapped in a function. A zero Config field takes
// its default. To share a circuit between replicas, set Config.Store to a
// store/redis Store (one per process, shared by its Breakers); without a
// Store a Breaker is an in-process breaker. Reset, ForceOpen and ForceClose
// are an operator's commands (cmd/cbctl gives them from a shell). In tests,
// a store/memory Store made WithClock lets time move without sleeping, and
// ForceOpen opens a circuit to exercise a fallback.
//
// The sections below are the specification.
//
// # States
//
// Closed: calls pass. In consecutive mode (Config.FailureWindow == 0) a
// success resets the failure count, and the circuit opens when the count
// reaches FailureThreshold: with a threshold of 3, three calls fail and are
// run, and the fourth is rejected. In window mode (FailureWindow > 0) the
// circuit opens when FailureThreshold failures fall within the trailing
// FailureWindow; successes erase nothing, and older failures slide out.
//
// Open: calls are rejected without running, with an *OpenError (matched by
// errors.Is(err, ErrOpen)) whose RetryAfter says when a probe will be
// allowed. Once Timeout has passed, the next call finds the circuit
// half-open.
//
// Half-open: at most HalfOpenMaxCalls probes run at once; other calls are
// rejected with an *OpenError. SuccessThreshold successful probes close the
// circuit with its counters cleared; any failed probe reopens it for a full
// Timeout. A probe that never reports (its caller died) holds its permit
// for at most ProbeTimeout (default 30s); then its slot is free again and its
// late outcome is ignored.
//
// # Generations
//
// Every transition starts a new generation. The outcome of a call admitted
// in an earlier generation is ignored: it is not counted and causes no
// transition. So a slow call that fails after the circuit has already
// reopened and closed again cannot trip it.
//
// # Outcomes
//
// IsFailure decides what a failure is; by default any non-nil error except
// context.Canceled. It is asked only about non-nil errors: a nil error is
// always a success. An error for which IsFailure is false counts as a
// success. If the function panics or calls runtime.Goexit (t.FailNow
// does), that counts as a failure, and the panic or the Goexit goes on. If
// ctx is already done, Do (and Execute, and Allow) return ctx.Err() without
// running the function or counting anything; a ctx canceled while the
// function runs does not stop its outcome from being counted.
//
// # Transitions and overrides
//
// OnStateChange runs exactly once per transition, on the Breaker that made
// it, after the store committed it and never under a lock; transitions are
// logged through Config.Logger. A transition whose call lost its reply (a
// Redis timeout) is reported when the store settles the call. OnStateSeen
// runs on every other Breaker of the circuit that learns of the change
// (published events, replies), so each replica can follow the shared state. Reset, ForceOpen and ForceClose are
// transitions too, seen at their next call by every Breaker sharing the
// circuit: each starts a new generation and is logged, and OnStateChange
// runs when it changes the state (a Reset of a closed circuit does not).
// ForceOpen rejects every call until Reset or its TTL; when the TTL passes
// the circuit is open with its timeout over, so the next call is a probe.
// ForceClose admits every call and keeps counting, without tripping, until
// Reset or its TTL.
//
// # Store failures
//
// A breaker must not become the dependency that takes a service down. When
// its Store cannot answer (Redis down, a timeout), a Breaker keeps deciding
// calls on its own, in the degraded mode Config.Degraded names, until the
// store answers again. A store failure is never counted as a failure of the
// protected call.
//
// A degraded episode starts at the first store call (Admit, Record, Apply or
// Load) that fails, except when the caller's ctx is done (the method returns
// ctx.Err() and nothing starts), and except for ErrUnknownCircuit, which is
// an answer and not an outage (it is returned in a *StoreError and logged
// each time). The call that met the failure is already served degraded:
//
//   - FallbackLocal (the default): an in-process breaker with the same
//     Policy, private to the Breaker, admits calls and counts their outcomes.
//     It starts closed with nothing counted, whatever the shared state was,
//     and counts only this Breaker's calls. Its transitions run
//     OnStateChange and are logged like any other, with degraded=true.
//   - FailOpen: every call is admitted, and no outcome is counted.
//   - FailClosed: every call is rejected without running, with a
//     *StoreError (Op "admit", Err the store's latest error). It does not
//     match ErrOpen: the dependency is not known to fail, only the breaker's
//     store is, and code that reads ErrOpen as "the dependency is down"
//     (fallback answers, alerts) should not be told so. Test for both
//     errors.Is(err, ErrOpen) and errors.As(err, &storeErr) to treat them
//     alike.
//
// During an episode a Breaker does not ask the store about every call. It
// waits 50ms (or Config.StoreBackoffMax if shorter) after the failure that
// started the episode; then the next call (Do, Execute, Allow or Snapshot)
// probes the store, one call at a time, the others staying degraded. A
// failed probe doubles the wait, up to StoreBackoffMax (default 2s); a probe
// that succeeds ends the episode, and its own call is decided by the store.
// The outcomes of calls the store admitted go to the store even during an
// episode; that does not end it, only a probe does. A Breaker sets no
// deadline of its own on store calls: a Store bounds its round trips
// (store/redis does).
//
// Commands (Reset, ForceOpen, ForceClose) go to the store even during an
// episode, and a store failure returns a *StoreError (logged at Warn each
// time). Whether the store took it or not, a command also applies at once
// to the Breaker's fallback (FallbackLocal): the current episode's, or the
// one set aside for an episode that may resume it. A TTL runs on the
// Breaker's clock. So a Breaker whose fallback tripped admits calls as
// soon as its own Reset returns, store down or not. A change of the
// fallback's state is reported (degraded=true), unless the store reported
// the same change for the same command. A command does not end an episode,
// and at the hand-back the shared state takes over as always: a command the
// store never took ends there, and must be given again.
//
// When an episode ends the shared state wins: the store's state decides the
// next calls, and what the fallback counted is set aside. If the fallback's
// state differs from the store's at that moment, the change is reported
// (OnStateChange, and a log with cause "store recovered"). An episode that
// starts less than StoreBackoffMax after the last one ended, with no
// outcome recorded by the store in between, resumes it: its fallback goes
// on with what it counted (a change from the shared state is reported with
// cause "store unavailable"), and the wait before the next probe goes on
// doubling. Any other episode starts with a new, closed fallback. ("Recorded"
// means the store accepted an outcome; a store may accept a closed-state
// success without writing, as redisstore's local views do, so one success
// of the dependency ends the resumption too.) This is for a store that
// answers the probe but fails again at once: one that flaps, or Redis at
// maxmemory with noeviction, which answers reads (a closed-state admission
// writes nothing) and refuses writes. Without it each short episode would
// start with nothing counted, and a dependency failing all along would get
// about FailureThreshold calls per probe interval instead of a trip.
//
// An outcome is never recorded to the wrong store: it goes to the store
// that admitted its call, the shared store or the fallback of the episode
// still going on; the outcome of a call the fallback admitted is dropped if
// its episode has ended (unless an episode that resumed it is going on).
// The outcome of a call the shared store admitted
// but failed to record is counted by the current episode's fallback, if
// that is closed.
//
// Each episode is logged once when it starts (Warn, "tripline: store
// unavailable, degraded", with the mode and the error) and once when it ends
// (Info, "tripline: store recovered", with its duration and the calls it
// served), never per call. Without Config.Logger, Warn and Error lines go to
// slog.Default(), so an outage is heard by a service that set no logger;
// Info lines (transitions, commands, recoveries) need a Logger.
// Snapshot.StoreErrors counts every store call that failed,
// Snapshot.DegradedCalls the calls decided without the store, and
// Snapshot.Degraded is true during an episode. Snapshot does not fail on a
// store outage: during an episode it returns the fallback's view
// (FallbackLocal), or State closed (FailOpen) or open (FailClosed) with
// nothing else known.
//
// # Configuration
//
// New checks its input and returns an error, never panics: a name must be
// 1 to 256 bytes of valid UTF-8, and no Config field may be negative. A zero
// field takes its default (see Config).
//
// Breakers that share a circuit should share its settings: each step is
// counted under the Policy of the call that makes it, so a replica with a
// lower threshold trips the circuit for all. The store keeps the policy
// that last wrote the circuit, and a Breaker told that it differs from its
// own logs it once (Warn, "tripline: circuit was last written under other
// settings: replicas disagree on its policy", with its own policy): a
// rolling deploy that changes the settings is heard.
package breaker
