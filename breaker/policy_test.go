package breaker_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tripline/tripline/breaker"
)

const policyWarning = "tripline: circuit was last written under other settings: replicas disagree on its policy"

// policyWarnings returns the policy warnings among logs.
func policyWarnings(t *testing.T, logs *logBuffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, r := range logs.records(t) {
		if r["msg"] == policyWarning {
			out = append(out, r)
		}
	}
	return out
}

// policyLog is the warning a Breaker with threshold n and the other
// settings at their defaults logs.
func policyLog(n int) map[string]any {
	return map[string]any{
		"level": "WARN", "msg": policyWarning, "circuit": "svc",
		"policy": map[string]any{
			"failure_threshold": float64(n), "failure_window": float64(0),
			"timeout": float64(breaker.DefaultTimeout), "success_threshold": float64(1),
			"half_open_max_calls": float64(1), "probe_timeout": float64(breaker.DefaultProbeTimeout),
		},
	}
}

// TestIssue16PolicyDisagreementWarned: two Breakers on one circuit and one
// store, with thresholds 10 and 2, each log once that the circuit was
// written under other settings, however often the store says so. With the
// same settings nothing is logged.
func TestIssue16PolicyDisagreementWarned(t *testing.T) {
	for _, tc := range []struct {
		name         string
		other        int
		wantA, wantB []map[string]any
	}{
		{"thresholds 10 and 2", 2, []map[string]any{policyLog(10)}, []map[string]any{policyLog(2)}},
		{"same settings", 10, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv()
			logsA, logsB := &logBuffer{}, &logBuffer{}
			a, _ := e.breaker(t, breaker.Config{FailureThreshold: 10, Logger: logsA.logger()})
			b, _ := e.breaker(t, breaker.Config{FailureThreshold: tc.other, Logger: logsB.logger()})
			ctx := context.Background()
			for range 3 {
				_ = b.Do(ctx, failing)
				_ = a.Do(ctx, failing)
				_ = b.Do(ctx, failing)
				require.NoError(t, a.Reset(ctx))
			}
			assert.Equal(t, tc.wantA, policyWarnings(t, logsA), "threshold 10")
			assert.Equal(t, tc.wantB, policyWarnings(t, logsB), "threshold %d", tc.other)
		})
	}
}

// TestPolicyWarningWithoutLogger: without Config.Logger the warning goes
// to slog.Default() (it is a WARN).
func TestPolicyWarningWithoutLogger(t *testing.T) {
	logs := setDefaultLogger(t)
	e := newEnv()
	a, err := breaker.New("svc", breaker.Config{Store: e.store, FailureThreshold: 10})
	require.NoError(t, err)
	b, err := breaker.New("svc", breaker.Config{Store: e.store, FailureThreshold: 2})
	require.NoError(t, err)
	ctx := context.Background()
	_ = a.Do(ctx, failing)
	_ = b.Do(ctx, failing)
	_ = a.Do(ctx, failing)
	assert.Equal(t, []map[string]any{policyLog(2), policyLog(10)}, policyWarnings(t, logs))
}
