package breaker_test

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tripline/tripline/breaker"
)

func TestStateText(t *testing.T) {
	for _, tc := range []struct {
		state breaker.State
		text  string
	}{
		{breaker.StateClosed, "closed"},
		{breaker.StateOpen, "open"},
		{breaker.StateHalfOpen, "half-open"},
	} {
		t.Run(tc.text, func(t *testing.T) {
			assert.Equal(t, tc.text, tc.state.String())

			b, err := tc.state.MarshalText()
			require.NoError(t, err)
			assert.Equal(t, tc.text, string(b))

			var s breaker.State = 99
			require.NoError(t, s.UnmarshalText(b))
			assert.Equal(t, tc.state, s)

			s, err = breaker.ParseState(tc.text)
			require.NoError(t, err)
			assert.Equal(t, tc.state, s)
		})
	}
}

func TestStateZeroIsClosed(t *testing.T) {
	var s breaker.State
	assert.Equal(t, breaker.StateClosed, s)
}

func TestStateInvalid(t *testing.T) {
	bad := breaker.State(7)
	assert.Equal(t, "State(7)", bad.String())
	_, err := bad.MarshalText()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "invalid state 7")

	for _, text := range []string{"", "Open", "OPEN", "halfopen", "half_open", " closed", "closed\n", "State(7)"} {
		_, err := breaker.ParseState(text)
		require.Error(t, err, "%q", text)
		assert.Contains(t, err.Error(), "want closed, open or half-open")

		s := breaker.StateHalfOpen
		require.Error(t, s.UnmarshalText([]byte(text)))
		assert.Equal(t, breaker.StateHalfOpen, s, "a failed UnmarshalText leaves the state alone")
	}
}

func TestStateJSON(t *testing.T) {
	type doc struct {
		States map[breaker.State]breaker.State `json:"states"`
		One    breaker.State                   `json:"one"`
	}
	in := doc{
		States: map[breaker.State]breaker.State{breaker.StateOpen: breaker.StateHalfOpen},
		One:    breaker.StateHalfOpen,
	}
	b, err := json.Marshal(in)
	require.NoError(t, err)
	assert.JSONEq(t, `{"states":{"open":"half-open"},"one":"half-open"}`, string(b))
	var out doc
	require.NoError(t, json.Unmarshal(b, &out))
	assert.Equal(t, in, out)

	assert.Error(t, json.Unmarshal([]byte(`{"one":"ajar"}`), &out))
	_, err = json.Marshal(doc{One: 9})
	assert.Error(t, err)
}

func TestKindStrings(t *testing.T) {
	assert.Equal(t, "reset", breaker.CommandReset.String())
	assert.Equal(t, "force-open", breaker.CommandForceOpen.String())
	assert.Equal(t, "force-close", breaker.CommandForceClose.String())
	assert.Equal(t, "CommandKind(0)", breaker.CommandKind(0).String())
	assert.Equal(t, "force-open", breaker.OverrideForceOpen.String())
	assert.Equal(t, "force-close", breaker.OverrideForceClose.String())
	assert.Equal(t, "OverrideMode(9)", breaker.OverrideMode(9).String())
}

func TestTransitionChanged(t *testing.T) {
	assert.False(t, breaker.Transition{}.Changed(), "the zero Transition is no transition")
	assert.False(t, breaker.Transition{From: breaker.StateClosed, To: breaker.StateClosed, Generation: 4}.Changed())
	assert.True(t, breaker.Transition{From: breaker.StateClosed, To: breaker.StateOpen, Generation: 1}.Changed())
}
