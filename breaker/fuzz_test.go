package breaker_test

import (
	"cmp"
	"context"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tripline/tripline/breaker"
)

// FuzzNew gives New any name and any Config numbers, and checks it against
// the documented rules: a name is 1 to MaxNameLen bytes of valid UTF-8; no
// field is negative and Degraded is a DegradedMode; a zero field takes its
// default; FailureThreshold is at most MaxFailureThreshold; Timeout and
// ProbeTimeout are at least 1ms, FailureWindow 0 or at least 1ms. New
// returns an error, naming what is wrong, exactly when a rule is broken,
// and never panics; a Breaker it returns has the Policy the rules give and
// runs a call.
func FuzzNew(f *testing.F) {
	ms := int64(time.Millisecond)
	f.Add("svc", 0, 0, 0, int64(0), int64(0), int64(0), uint8(0), int64(0))
	f.Add("svc", 3, 2, 2, 10*ms, 100*ms, 50*ms, uint8(0), int64(0))
	f.Add("", 0, 0, 0, int64(0), int64(0), int64(0), uint8(0), int64(0))
	f.Add("\xff", 0, 0, 0, int64(0), int64(0), int64(0), uint8(0), int64(0))
	f.Add(strings.Repeat("a", breaker.MaxNameLen), 0, 0, 0, int64(0), int64(0), int64(0), uint8(0), int64(0))
	f.Add(strings.Repeat("a", breaker.MaxNameLen+1), 0, 0, 0, int64(0), int64(0), int64(0), uint8(0), int64(0))
	f.Add(strings.Repeat("ü", breaker.MaxNameLen/2), 0, 0, 0, int64(0), int64(0), int64(0), uint8(0), int64(0))
	f.Add("svc", -1, 0, 0, int64(0), int64(0), int64(0), uint8(0), int64(0))
	f.Add("svc", 0, -1, -1, int64(-1), int64(-1), int64(-1), uint8(0), int64(0))
	f.Add("svc", breaker.MaxFailureThreshold, 0, 0, int64(0), int64(0), int64(0), uint8(0), int64(0))
	f.Add("svc", breaker.MaxFailureThreshold+1, 0, 0, int64(0), int64(0), int64(0), uint8(0), int64(0))
	f.Add("svc", 0, 0, 0, ms-1, ms-1, ms-1, uint8(0), int64(0))
	f.Add("svc", 0, 0, 0, ms, ms, ms, uint8(0), int64(0))
	f.Add("svc", 1<<62, 1<<62, 1<<62, int64(1<<63-1), int64(1<<63-1), int64(1<<63-1), uint8(0), int64(0))
	f.Add("svc", 0, 0, 0, int64(-1<<63), int64(-1<<63), int64(-1<<63), uint8(0), int64(0))
	f.Add("svc", 0, 0, 0, int64(0), int64(0), int64(0), uint8(breaker.FailClosed), int64(time.Second))
	f.Add("svc", 0, 0, 0, int64(0), int64(0), int64(0), uint8(breaker.FailClosed+1), int64(0))
	f.Add("svc", 0, 0, 0, int64(0), int64(0), int64(0), uint8(0), int64(-1))
	f.Add("svc", -1, 0, 0, int64(0), int64(0), int64(0), uint8(255), int64(-1))

	f.Fuzz(func(t *testing.T, name string, failures, successes, probes int, window, timeout, probeTimeout int64, mode uint8, backoff int64) {
		cfg := breaker.Config{
			FailureThreshold: failures,
			FailureWindow:    time.Duration(window),
			Timeout:          time.Duration(timeout),
			SuccessThreshold: successes,
			HalfOpenMaxCalls: probes,
			ProbeTimeout:     time.Duration(probeTimeout),
			Degraded:         breaker.DegradedMode(mode),
			StoreBackoffMax:  time.Duration(backoff),
		}
		b, err := breaker.New(name, cfg)

		// The rules, in the order New applies them: the name, then
		// negative fields and the mode, then the policy with defaults
		// applied.
		want := breaker.Policy{
			FailureThreshold: cmp.Or(failures, breaker.DefaultFailureThreshold),
			FailureWindow:    cfg.FailureWindow,
			Timeout:          cmp.Or(cfg.Timeout, breaker.DefaultTimeout),
			SuccessThreshold: cmp.Or(successes, breaker.DefaultSuccessThreshold),
			HalfOpenMaxCalls: cmp.Or(probes, breaker.DefaultHalfOpenMaxCalls),
			ProbeTimeout:     cmp.Or(cfg.ProbeTimeout, breaker.DefaultProbeTimeout),
		}
		var wrong []string // what the error must name
		switch {
		case name == "" || len(name) > breaker.MaxNameLen || !utf8.ValidString(name):
			wrong = []string{"name"}
		case failures < 0 || successes < 0 || probes < 0 || window < 0 || timeout < 0 || probeTimeout < 0 ||
			backoff < 0 || cfg.Degraded > breaker.FailClosed:
			for field, v := range map[string]int64{
				"FailureThreshold": int64(failures), "SuccessThreshold": int64(successes),
				"HalfOpenMaxCalls": int64(probes), "FailureWindow": window,
				"Timeout": timeout, "ProbeTimeout": probeTimeout, "StoreBackoffMax": backoff,
			} {
				if v < 0 {
					wrong = append(wrong, field)
				}
			}
			if cfg.Degraded > breaker.FailClosed {
				wrong = append(wrong, "Degraded")
			}
		default:
			if want.FailureThreshold > breaker.MaxFailureThreshold {
				wrong = append(wrong, "FailureThreshold")
			}
			if want.FailureWindow != 0 && want.FailureWindow < time.Millisecond {
				wrong = append(wrong, "FailureWindow")
			}
			if want.Timeout < time.Millisecond {
				wrong = append(wrong, "Timeout")
			}
			if want.ProbeTimeout < time.Millisecond {
				wrong = append(wrong, "ProbeTimeout")
			}
		}

		if len(wrong) > 0 {
			require.Error(t, err, "New(%q, %+v) must fail: %v", name, cfg, wrong)
			assert.Nil(t, b)
			for _, w := range wrong {
				assert.Contains(t, err.Error(), w, "the error must say what is wrong")
			}
			return
		}
		require.NoError(t, err, "New(%q, %+v)", name, cfg)
		require.NotNil(t, b)
		assert.Equal(t, name, b.Name())
		assert.Equal(t, want, b.Policy())
		require.NoError(t, want.Validate())
		ran := false
		require.NoError(t, b.Do(context.Background(), func(context.Context) error { ran = true; return nil }))
		assert.True(t, ran, "a new Breaker runs the first call")
		snap, err := b.Snapshot(context.Background())
		require.NoError(t, err)
		assert.Equal(t, breaker.StateClosed, snap.State)
	})
}

// FuzzStateText checks that State's text forms round-trip: MarshalText
// succeeds exactly for the three states and gives what ParseState and
// UnmarshalText read back; ParseState accepts exactly "closed", "open" and
// "half-open"; a failed UnmarshalText leaves its State alone. Nothing panics.
func FuzzStateText(f *testing.F) {
	for _, s := range []string{"closed", "open", "half-open", "", "Open", "half_open", " open", "open\x00", "State(3)"} {
		f.Add(s, uint8(0))
	}
	f.Add("closed", uint8(1))
	f.Add("closed", uint8(2))
	f.Add("closed", uint8(3))
	f.Add("closed", uint8(255))

	f.Fuzz(func(t *testing.T, text string, v uint8) {
		st := breaker.State(v)
		_ = st.String()
		b, err := st.MarshalText()
		if v > 2 {
			require.Error(t, err, "MarshalText of %d", v)
			assert.Nil(t, b)
		} else {
			require.NoError(t, err)
			assert.Equal(t, st.String(), string(b))
			back, err := breaker.ParseState(string(b))
			require.NoError(t, err)
			assert.Equal(t, st, back)
			var u breaker.State
			require.NoError(t, u.UnmarshalText(b))
			assert.Equal(t, st, u)
		}

		valid := map[string]breaker.State{"closed": breaker.StateClosed, "open": breaker.StateOpen, "half-open": breaker.StateHalfOpen}
		want, ok := valid[text]
		got, err := breaker.ParseState(text)
		u := st
		uerr := u.UnmarshalText([]byte(text))
		if !ok {
			require.Error(t, err, "ParseState(%q)", text)
			require.Error(t, uerr, "UnmarshalText(%q)", text)
			assert.Equal(t, st, u, "a failed UnmarshalText changed the State")
			return
		}
		require.NoError(t, err, "ParseState(%q)", text)
		require.NoError(t, uerr, "UnmarshalText(%q)", text)
		assert.Equal(t, want, got)
		assert.Equal(t, want, u)
		m, err := got.MarshalText()
		require.NoError(t, err)
		assert.Equal(t, text, string(m))
	})
}
