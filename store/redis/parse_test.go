package redisstore

import (
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tripline/tripline/breaker"
)

func TestParseReply(t *testing.T) {
	var f [3]int64
	require.NoError(t, parseReply("0 12 9007199254740991", f[:]))
	assert.Equal(t, [3]int64{0, 12, 9007199254740991}, f)
	for _, bad := range []string{"", "1 2", "1 2 3 4", "1  2 3", " 1 2 3", "1 2 3 ", "1 -2 3", "1 2 x", "1 2 3.0",
		"1 2 99999999999999999999", "1 2 9223372036854775808"} {
		assert.Error(t, parseReply(bad, f[:]), "%q", bad)
	}
	require.NoError(t, parseReply("1 2 9223372036854775799", f[:]))
}

// FuzzParseReply: any reply either parses into numbers that print back to
// it, or is an error; never a panic.
func FuzzParseReply(f *testing.F) {
	f.Add("1 0 5 1 0 0 0 0", 8)
	f.Add("0 2 7 0 1000 1 2 7", 8)
	f.Add("1 0 0 0 0 0", 6)
	f.Add("", 1)
	f.Add("99999999999999999999", 1)
	f.Fuzz(func(t *testing.T, v string, n int) {
		if n < 1 || n > 16 {
			return
		}
		out := make([]int64, n)
		if err := parseReply(v, out); err != nil {
			return
		}
		parts := make([]string, n)
		for i, x := range out {
			parts[i] = strconv.FormatInt(x, 10)
		}
		// Leading zeros are the only way two texts give the same numbers.
		if back := strings.Join(parts, " "); back != v && !strings.Contains(" "+v, " 0") {
			t.Fatalf("%q parsed as %v", v, out)
		}
	})
}

// FuzzDecodeEvent: any message either decodes into an event whose name
// round-trips through the key encoding, or is an error; never a panic.
func FuzzDecodeEvent(f *testing.F) {
	f.Add("1 YQ 0 1 1 1000000 outcome 2000000")
	f.Add("1 w7wgeyB9 2 0 99 1700000000000000 timeout 0")
	f.Add("1 YQ 0 1 0 1 outcome 0")
	f.Add("")
	f.Fuzz(func(t *testing.T, msg string) {
		ev, err := decodeEvent(msg)
		if err != nil {
			return
		}
		k := keysFor("p", ev.Name)
		name, ok := nameFromKey("p", k.hash)
		require.True(t, ok)
		require.Equal(t, ev.Name, name)
		require.NotZero(t, ev.Generation)
		require.LessOrEqual(t, ev.From, breaker.StateHalfOpen)
		require.LessOrEqual(t, ev.To, breaker.StateHalfOpen)
	})
}
