package breaker

import (
	"errors"
	"fmt"
	"time"
)

// ErrOpen is matched (with errors.Is) by every error that rejects a call
// because its circuit is open, half-open with every probe slot taken, or
// forced open.
var ErrOpen = errors.New("tripline: circuit open")

// ErrUnknownCircuit is returned by Store.Apply for a Command with
// IfExists set when the store holds no state for the circuit.
var ErrUnknownCircuit = errors.New("tripline: unknown circuit")

// OpenError is the error a rejected call returns. errors.Is(err, ErrOpen)
// holds for it.
type OpenError struct {
	Name  string // the circuit's name
	State State  // StateOpen, or StateHalfOpen when every probe slot is taken
	// RetryAfter is how long until a call may be admitted again: until the
	// open timeout ends, or until the oldest probe's permit lapses. It is 0
	// when the circuit is forced open without expiry. It keeps the store's
	// precision; Error rounds it to the millisecond.
	RetryAfter time.Duration
}

// Error describes the rejection. It gives RetryAfter rounded to the
// millisecond, and at least 1ms when RetryAfter is positive: people read
// it, and the nanoseconds of a time computed from a clock mean nothing.
func (e *OpenError) Error() string {
	if e.RetryAfter > 0 {
		d := max(e.RetryAfter.Round(time.Millisecond), time.Millisecond)
		return fmt.Sprintf("tripline: circuit %q is %s (retry after %s)", e.Name, e.State, d)
	}
	return fmt.Sprintf("tripline: circuit %q is %s", e.Name, e.State)
}

// Is reports whether target is ErrOpen.
func (e *OpenError) Is(target error) bool { return target == ErrOpen }

// StoreError reports that the Store failed to answer. It is never counted
// as a failure of the protected call. Unwrap gives the store's error. A call
// rejected in FailClosed mode during a degraded episode returns one too (Op
// "admit", Err the store's latest error, even when this call did not ask the
// store); it does not match ErrOpen.
type StoreError struct {
	Name string // the circuit's name
	Op   string // "admit", "record", "load" or "apply"
	Err  error  // what the store returned
}

// Error describes the failure.
func (e *StoreError) Error() string {
	return fmt.Sprintf("tripline: circuit %q: store %s failed: %v", e.Name, e.Op, e.Err)
}

// Unwrap returns the store's error.
func (e *StoreError) Unwrap() error { return e.Err }
