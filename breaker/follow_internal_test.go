package breaker

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestSeenGate: a change the store reports goes to OnStateSeen unless a
// call of this Breaker that was in flight when it came made it; it waits
// only for the calls in flight when it came, not for later ones.
func TestSeenGate(t *testing.T) {
	tr := func(gen uint64) Transition { return Transition{From: StateClosed, To: StateOpen, Generation: gen} }

	t.Run("no call in flight: at once", func(t *testing.T) {
		var seen []Transition
		g := &seenGate{fn: func(from, to State) { seen = append(seen, Transition{From: from, To: to}) }}
		g.report(tr(1))
		assert.Len(t, seen, 1)
	})
	t.Run("made by a call in flight: not reported", func(t *testing.T) {
		n := 0
		g := &seenGate{fn: func(State, State) { n++ }}
		e := g.begin()
		g.report(tr(2)) // the event came before the reply
		assert.Zero(t, n, "held while the call is in flight")
		g.end(e, tr(2))
		assert.Zero(t, n, "the call made it: OnStateChange's")
	})
	t.Run("another's, during a call: after the call", func(t *testing.T) {
		n := 0
		g := &seenGate{fn: func(State, State) { n++ }}
		e := g.begin()
		g.report(tr(3))
		assert.Zero(t, n)
		g.end(e, Transition{})
		assert.Equal(t, 1, n)
	})
	t.Run("later calls are not waited for", func(t *testing.T) {
		n := 0
		g := &seenGate{fn: func(State, State) { n++ }}
		first := g.begin()
		g.report(tr(4))
		// Calls keep starting and overlapping; the report waits only for
		// the one in flight when it came.
		second := g.begin()
		g.end(first, Transition{})
		assert.Equal(t, 1, n, "out once the first call is done")
		third := g.begin()
		g.report(tr(5))
		g.end(second, Transition{})
		assert.Equal(t, 1, n, "the second report waits for the third call too")
		fourth := g.begin()
		g.end(third, Transition{})
		assert.Equal(t, 2, n)
		g.end(fourth, Transition{})
		assert.Equal(t, 2, n)
	})
	t.Run("under constant load", func(t *testing.T) {
		n := 0
		g := &seenGate{fn: func(State, State) { n++ }}
		inFlight := []int{g.begin(), g.begin()}
		for i := range 100 {
			if i%10 == 0 {
				g.report(tr(uint64(10 + i)))
			}
			inFlight = append(inFlight, g.begin())
			g.end(inFlight[0], Transition{})
			inFlight = inFlight[1:]
		}
		assert.GreaterOrEqual(t, n, 9, "reports are not starved by calls that start after them")
	})
}
