// Package breaker is a circuit breaker whose state can be shared by every
// replica of a service: Breakers with the same name and the same Store (for
// example store/redis) behave as one breaker.
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
// success. If the function panics, the panic counts as a failure and then
// continues. If ctx is already done, Do (and Execute, and Allow) return
// ctx.Err() without running the function or counting anything; a ctx
// canceled while the function runs does not stop its outcome from being
// counted.
//
// # Transitions and overrides
//
// OnStateChange runs exactly once per transition, on the Breaker that made
// it, after the store committed it and never under a lock; transitions are
// logged through Config.Logger. Reset, ForceOpen and ForceClose are
// transitions too, seen at their next call by every Breaker sharing the
// circuit: each starts a new generation and is logged, and OnStateChange
// runs when it changes the state (a Reset of a closed circuit does not). ForceOpen rejects every call until Reset or its TTL; when the TTL
// passes the circuit is open with its timeout over, so the next call is a
// probe. ForceClose admits every call and keeps counting, without tripping,
// until Reset or its TTL.
//
// # Store failures
//
// A store failure is never counted as a failure of the protected call. It is
// logged (Warn) and counted (Snapshot.StoreErrors). When the store cannot
// admit a call, the call is not run and a *StoreError is returned; when it
// cannot record an outcome, the caller still gets the function's own result.
//
// # Configuration
//
// New checks its input and returns an error, never panics: a name must be
// 1 to 256 bytes of valid UTF-8, and no Config field may be negative. A zero
// field takes its default (see Config).
package breaker
