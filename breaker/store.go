package breaker

import (
	"context"
	"strconv"
	"time"
)

// Store holds the state of circuits. Every Breaker that shares a Store and a
// circuit name shares one circuit: that is how replicas of a service agree.
//
// Every implementation must guarantee, and store/storetest checks:
//
//   - Each method is atomic per circuit: no other call on the same circuit
//     observes or interleaves with half of it. Nothing is held between calls;
//     in particular nothing is held while the protected function runs.
//   - Time is the store's own clock (the memory store's clock, Redis TIME),
//     never the caller's.
//   - A circuit the store has no state for is closed, generation 0, with no
//     failures and no override. A store may forget a circuit that is closed,
//     has no failures within its window and no override (idle expiry).
//   - Admit follows the state machine in the package documentation: it admits
//     every call while closed or forced closed; rejects while open or forced
//     open, with RetryAfter; moves an open circuit whose RetryAt has passed
//     to half-open (a new generation) and reports that in Transition; and
//     while half-open leases at most Policy.HalfOpenMaxCalls probe permits,
//     each with a unique non-zero Probe id that lapses Policy.ProbeTimeout
//     after it was granted.
//   - Record ignores (Result.Ignored) an outcome whose Generation is not the
//     circuit's current one, and, while half-open, one whose Probe permit is
//     not held (lapsed or unknown). Otherwise it counts the outcome and makes
//     at most one transition, reported in Result.Transition.
//   - Every transition, including those made by Apply, increments the
//     generation by exactly one, and is reported to exactly one caller.
//   - Errors are returned, never turned into "no state": an implementation
//     that cannot read a circuit returns an error, and one that finds data it
//     cannot parse returns an error (or resets that circuit), never panics.
//   - Admit and Record keep with the circuit the Policy of the last call
//     that reached it (Apply keeps it as it is), and set PolicyDiffers
//     when the circuit holds another one than the call's (none kept:
//     false), so that a Breaker warns when replicas run with other
//     settings. Calls a store answers without reaching the circuit (a
//     Redis store's local views) need not check.
//   - Bad arguments (an unknown OutcomeKind or CommandKind, a Policy with
//     non-positive fields) are rejected with an error before any write.
type Store interface {
	// Admit decides whether one call on the circuit may run now.
	Admit(ctx context.Context, name string, p Policy) (Admission, error)
	// Record counts the outcome of a call that Admit admitted.
	Record(ctx context.Context, name string, p Policy, o Outcome) (Result, error)
	// Apply carries out an operator's command: reset, force open, force close.
	// With Command.IfExists it returns ErrUnknownCircuit for a circuit the
	// store holds no state for.
	Apply(ctx context.Context, name string, c Command) (Result, error)
	// Load reads the circuit without changing it. Failures in a sliding
	// window are counted with the window of the policy last used on it.
	Load(ctx context.Context, name string) (Snapshot, error)
}

// MaxCount bounds Policy.SuccessThreshold and Policy.HalfOpenMaxCalls
// (MaxFailureThreshold bounds FailureThreshold): 2^53-1, the largest
// integer a Redis script holds exactly. Policy.Validate checks both bounds,
// and the Redis scripts refuse the same numbers.
const MaxCount = 1<<53 - 1

// Policy is the part of Config that a Store needs to run the state machine.
// Breaker passes it, with defaults applied, on every call.
type Policy struct {
	FailureThreshold int           // failures that open the circuit
	FailureWindow    time.Duration // 0: consecutive failures; > 0: failures within this sliding window
	Timeout          time.Duration // how long the circuit stays open
	SuccessThreshold int           // successful probes that close it
	HalfOpenMaxCalls int           // probe permits at once while half-open
	ProbeTimeout     time.Duration // how long a probe permit lasts if its outcome never comes
}

// Admission is a Store's answer to Admit.
type Admission struct {
	Allowed    bool          // the call may run
	State      State         // the state the call was admitted or rejected in
	Generation uint64        // the generation the call belongs to
	Probe      uint64        // non-zero: the probe permit this call holds (half-open)
	RetryAfter time.Duration // when rejected: see OpenError.RetryAfter
	Transition Transition    // the transition this admission made, if any
	// PolicyDiffers: the circuit was last written under another Policy
	// (another replica's Config).
	PolicyDiffers bool
}

// OutcomeKind says how an admitted call ended.
type OutcomeKind uint8

// The outcomes a Store counts. New kinds (slow calls, for instance) may be
// added; a Store rejects a kind it does not know with an error.
const (
	OutcomeSuccess OutcomeKind = iota + 1 // the call succeeded, or failed in a way IsFailure ignores
	OutcomeFailure                        // the call failed or panicked
)

// Outcome is what Record counts.
type Outcome struct {
	Kind       OutcomeKind   // how the call ended
	Generation uint64        // from the Admission
	Probe      uint64        // from the Admission
	Duration   time.Duration // reserved for slow-call kinds: how long the call ran; Breaker leaves it 0 until a policy uses it
}

// Result is a Store's answer to Record and Apply.
type Result struct {
	Ignored    bool       // the outcome was stale (an older generation, or a lapsed probe) and changed nothing
	State      State      // the circuit's state after the call
	Generation uint64     // the circuit's generation after the call
	Transition Transition // the transition this call made, if any
	// PolicyDiffers is Admission.PolicyDiffers, for Record (Apply has no
	// policy and leaves it false).
	PolicyDiffers bool
}

// Transition is a change of state. Its zero value means "no transition".
type Transition struct {
	From, To   State  // the state before and after
	Generation uint64 // the generation the transition started
}

// Changed reports whether the transition is a real change of state.
func (t Transition) Changed() bool { return t.From != t.To }

// CommandKind names an operator's command.
type CommandKind uint8

// The commands Apply accepts.
const (
	CommandReset      CommandKind = iota + 1 // closed, counters cleared, override removed
	CommandForceOpen                         // reject every call until Reset or TTL
	CommandForceClose                        // admit every call (still counting) until Reset or TTL
)

// String returns "reset", "force-open" or "force-close".
func (k CommandKind) String() string {
	switch k {
	case CommandReset:
		return "reset"
	case CommandForceOpen:
		return "force-open"
	case CommandForceClose:
		return "force-close"
	}
	return "CommandKind(" + strconv.Itoa(int(k)) + ")"
}

// Command is an operator's command for Apply.
type Command struct {
	Kind     CommandKind   // what to do
	TTL      time.Duration // force open/close: how long the override lasts; 0: until Reset
	Actor    string        // who gave the command (kept with the override)
	Reason   string        // why (kept with the override)
	IfExists bool          // fail with ErrUnknownCircuit if the store has no state for the circuit
}

// OverrideMode says which way an operator's override holds a circuit.
type OverrideMode uint8

// The override modes.
const (
	OverrideForceOpen  OverrideMode = iota + 1 // every call is rejected
	OverrideForceClose                         // every call is admitted and counted, nothing trips
)

// String returns "force-open" or "force-close".
func (m OverrideMode) String() string {
	switch m {
	case OverrideForceOpen:
		return "force-open"
	case OverrideForceClose:
		return "force-close"
	}
	return "OverrideMode(" + strconv.Itoa(int(m)) + ")"
}

// Override is an operator's hold on a circuit, made by ForceOpen or
// ForceClose (or cbctl open/close).
type Override struct {
	Mode   OverrideMode // which way the circuit is held
	Until  time.Time    // zero: until Reset
	Actor  string       // who set it
	Reason string       // why
	At     time.Time    // when it was set
}

// Snapshot is a circuit as its Store holds it.
type Snapshot struct {
	Name        string    // the circuit's name
	State       State     // the state the store holds (an open circuit past RetryAt stays open until a call comes)
	Failures    int       // consecutive failures, or failures within the window
	Successes   int       // successful probes since the circuit went half-open
	Probes      int       // probe permits held now
	LastFailure time.Time // zero if none recorded since the circuit was last cleared
	OpenedAt    time.Time // when the circuit last opened; zero unless open or half-open
	RetryAt     time.Time // while open: when a probe will be allowed; zero if forced open without expiry
	Generation  uint64    // starts at 0; +1 per transition
	Override    *Override // nil when no override holds
	StoreErrors uint64    // store calls that failed on this Breaker (set by Breaker.Snapshot)

	// Set by Breaker.Snapshot:
	// Degraded is true during a degraded episode (the store cannot answer);
	// then the other fields are the local fallback's (FallbackLocal), or
	// only State is known: closed (FailOpen) or open (FailClosed).
	Degraded bool
	// DegradedCalls counts the calls this Breaker decided without the store,
	// in every episode so far.
	DegradedCalls uint64
}
