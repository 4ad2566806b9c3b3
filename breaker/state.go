package breaker

import "fmt"

// State is where a circuit is in its cycle: closed, open or half-open.
type State uint8

// The states of a circuit. The zero value is StateClosed, so a circuit that a
// store has never seen (or has forgotten) reads as closed.
const (
	StateClosed   State = iota // calls pass; failures are counted
	StateOpen                  // calls are rejected until the open timeout passes
	StateHalfOpen              // a limited number of probes test the dependency
)

// String returns "closed", "open" or "half-open".
func (s State) String() string {
	switch s {
	case StateClosed:
		return "closed"
	case StateOpen:
		return "open"
	case StateHalfOpen:
		return "half-open"
	}
	return fmt.Sprintf("State(%d)", uint8(s))
}

// MarshalText encodes the state as its String form.
func (s State) MarshalText() ([]byte, error) {
	if s > StateHalfOpen {
		return nil, fmt.Errorf("tripline: invalid state %d", uint8(s))
	}
	return []byte(s.String()), nil
}

// UnmarshalText decodes "closed", "open" or "half-open".
func (s *State) UnmarshalText(text []byte) error {
	st, err := ParseState(string(text))
	if err != nil {
		return err
	}
	*s = st
	return nil
}

// ParseState is the inverse of State.String.
func ParseState(text string) (State, error) {
	switch text {
	case "closed":
		return StateClosed, nil
	case "open":
		return StateOpen, nil
	case "half-open":
		return StateHalfOpen, nil
	}
	return 0, fmt.Errorf("tripline: unknown state %q (want closed, open or half-open)", text)
}
