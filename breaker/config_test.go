package breaker_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tripline/tripline/breaker"
)

func TestNewRejectsBadInput(t *testing.T) {
	for _, tc := range []struct {
		name    string
		circuit string
		cfg     breaker.Config
		want    []string // substrings of the error
	}{
		{"empty name", "", breaker.Config{}, []string{"name is empty"}},
		{"name over 256 bytes", strings.Repeat("x", 257), breaker.Config{}, []string{"257 bytes", "256"}},
		{"name over 256 bytes in runes", strings.Repeat("é", 129), breaker.Config{}, []string{"258 bytes"}},
		{"invalid UTF-8", "svc\xff", breaker.Config{}, []string{"not valid UTF-8"}},
		{"truncated UTF-8", "caf\xc3", breaker.Config{}, []string{"not valid UTF-8"}},
		{"negative FailureThreshold", "svc", breaker.Config{FailureThreshold: -1}, []string{"Config.FailureThreshold is negative (-1)"}},
		{"negative FailureWindow", "svc", breaker.Config{FailureWindow: -time.Second}, []string{"Config.FailureWindow is negative"}},
		{"negative Timeout", "svc", breaker.Config{Timeout: -time.Second}, []string{"Config.Timeout is negative (-1s)"}},
		{"negative SuccessThreshold", "svc", breaker.Config{SuccessThreshold: -2}, []string{"Config.SuccessThreshold is negative (-2)"}},
		{"negative HalfOpenMaxCalls", "svc", breaker.Config{HalfOpenMaxCalls: -3}, []string{"Config.HalfOpenMaxCalls is negative (-3)"}},
		{"negative ProbeTimeout", "svc", breaker.Config{ProbeTimeout: -time.Millisecond}, []string{"Config.ProbeTimeout is negative (-1ms)"}},
		{"negative StoreBackoffMax", "svc", breaker.Config{StoreBackoffMax: -time.Second}, []string{"Config.StoreBackoffMax is negative (-1s)"}},
		{"unknown Degraded", "svc", breaker.Config{Degraded: 3}, []string{"Config.Degraded is not a DegradedMode (3)"}},
		{"every field negative", "svc", breaker.Config{
			FailureThreshold: -1, FailureWindow: -1, Timeout: -1, SuccessThreshold: -1, HalfOpenMaxCalls: -1, ProbeTimeout: -1,
		}, []string{"FailureThreshold", "FailureWindow", "Timeout", "SuccessThreshold", "HalfOpenMaxCalls", "ProbeTimeout"}},
		{"FailureThreshold too large", "svc", breaker.Config{FailureThreshold: breaker.MaxFailureThreshold + 1}, []string{"FailureThreshold", "100000"}},
		{"Timeout under 1ms", "svc", breaker.Config{Timeout: time.Microsecond}, []string{"Timeout must be at least 1ms"}},
		{"FailureWindow under 1ms", "svc", breaker.Config{FailureWindow: 1}, []string{"FailureWindow must be at least 1ms"}},
		{"ProbeTimeout under 1ms", "svc", breaker.Config{ProbeTimeout: 999 * time.Microsecond}, []string{"ProbeTimeout must be at least 1ms"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b *breaker.Breaker
			var err error
			require.NotPanics(t, func() { b, err = breaker.New(tc.circuit, tc.cfg) })
			require.Error(t, err)
			assert.Nil(t, b)
			for _, w := range tc.want {
				assert.Contains(t, err.Error(), w)
			}
			assert.True(t, strings.HasPrefix(err.Error(), "tripline: "), "error %q names the package", err)
		})
	}
}

func TestNewAcceptsEdgeInput(t *testing.T) {
	for _, tc := range []struct {
		name    string
		circuit string
		cfg     breaker.Config
	}{
		{"256 bytes", strings.Repeat("x", 256), breaker.Config{}},
		{"multi-byte UTF-8", "paiements-€-日本", breaker.Config{}},
		{"odd characters", "{svc}:a b/c", breaker.Config{}},
		{"1ms durations", "svc", breaker.Config{FailureWindow: time.Millisecond, Timeout: time.Millisecond, ProbeTimeout: time.Millisecond}},
		{"largest FailureThreshold", "svc", breaker.Config{FailureThreshold: breaker.MaxFailureThreshold}},
		{"FailClosed, 1ns backoff cap", "svc", breaker.Config{Degraded: breaker.FailClosed, StoreBackoffMax: time.Nanosecond}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := breaker.New(tc.circuit, tc.cfg)
			require.NoError(t, err)
			assert.Equal(t, tc.circuit, b.Name())
		})
	}
}

func TestNewDefaults(t *testing.T) {
	b, err := breaker.New("svc", breaker.Config{})
	require.NoError(t, err)
	assert.Equal(t, breaker.Policy{
		FailureThreshold: 5,
		FailureWindow:    0,
		Timeout:          60 * time.Second,
		SuccessThreshold: 1,
		HalfOpenMaxCalls: 1,
		ProbeTimeout:     30 * time.Second,
	}, b.Policy())

	b, err = breaker.New("svc", breaker.Config{
		FailureThreshold: 7, FailureWindow: time.Minute, Timeout: time.Second,
		SuccessThreshold: 2, HalfOpenMaxCalls: 3, ProbeTimeout: 4 * time.Second,
	})
	require.NoError(t, err)
	assert.Equal(t, breaker.Policy{
		FailureThreshold: 7, FailureWindow: time.Minute, Timeout: time.Second,
		SuccessThreshold: 2, HalfOpenMaxCalls: 3, ProbeTimeout: 4 * time.Second,
	}, b.Policy())
}

func TestPolicyValidate(t *testing.T) {
	good := breaker.Policy{FailureThreshold: 1, Timeout: time.Second, SuccessThreshold: 1, HalfOpenMaxCalls: 1, ProbeTimeout: time.Second}
	require.NoError(t, good.Validate())
	for _, tc := range []struct {
		name   string
		change func(*breaker.Policy)
		want   string
	}{
		{"zero FailureThreshold", func(p *breaker.Policy) { p.FailureThreshold = 0 }, "FailureThreshold must be positive"},
		{"zero SuccessThreshold", func(p *breaker.Policy) { p.SuccessThreshold = 0 }, "SuccessThreshold must be positive"},
		{"zero HalfOpenMaxCalls", func(p *breaker.Policy) { p.HalfOpenMaxCalls = 0 }, "HalfOpenMaxCalls must be positive"},
		{"zero Timeout", func(p *breaker.Policy) { p.Timeout = 0 }, "Timeout must be at least 1ms"},
		{"zero ProbeTimeout", func(p *breaker.Policy) { p.ProbeTimeout = 0 }, "ProbeTimeout must be at least 1ms"},
		{"negative FailureWindow", func(p *breaker.Policy) { p.FailureWindow = -time.Second }, "FailureWindow is negative"},
		{"too many failures", func(p *breaker.Policy) { p.FailureThreshold = breaker.MaxFailureThreshold + 1 }, "more than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := good
			tc.change(&p)
			err := p.Validate()
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

// misconfiguredStore is a Store that reports its own misconfiguration.
type misconfiguredStore struct{ breaker.Store }

func (misconfiguredStore) Err() error { return errors.New("bad prefix") }

func TestNewRejectsAMisconfiguredStore(t *testing.T) {
	_, err := breaker.New("svc", breaker.Config{Store: misconfiguredStore{}})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "bad prefix")
}
