package breaker

// Followed is a transition a Store reports on its own, after the call
// that made it has returned.
type Followed struct {
	Transition
	// Cause is what made it: "timeout" (open to half-open), "outcome", or
	// an operator's command ("reset", "force-open", "force-close").
	Cause string
}

// Follower is implemented by a Store that can learn of a transition after
// the call that made it returned an error. A Redis store whose round trip
// timed out does not know whether its script ran; it settles the call
// later, and if the call did run, reports what it changed. New registers
// every Breaker with its Store's Follow, so that such a transition reaches
// OnStateChange and the log like any other: once. For Store implementers.
type Follower interface {
	// Follow registers fn for the circuit called name, until stop is
	// called. The store calls fn from a goroutine of its own, once for each
	// such transition, and calls only one fn per transition when several
	// Breakers of this store share the circuit.
	Follow(name string, fn func(Followed)) (stop func())
}
