package breaker_test

import (
	"context"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tripline/tripline/breaker"
)

// setDefaultLogger makes slog.Default() log to a buffer for the test, and
// restores it after. Tests that call it must not run in parallel.
func setDefaultLogger(t *testing.T) *logBuffer {
	t.Helper()
	prev := slog.Default()
	t.Cleanup(func() { slog.SetDefault(prev) })
	logs := &logBuffer{}
	slog.SetDefault(logs.logger())
	return logs
}

// TestIssue16DegradedHeardWithoutLogger: a Breaker without Config.Logger
// reports a degraded episode to slog.Default() at Warn, once per episode;
// its transitions (Info) stay quiet.
func TestIssue16DegradedHeardWithoutLogger(t *testing.T) {
	logs := setDefaultLogger(t)
	e := newEnv()
	fs := &faultyStore{Store: e.store}
	b, err := breaker.NewWithClock("svc", breaker.Config{FailureThreshold: 1}, e.clock.Now)
	require.NoError(t, err)
	ctx := context.Background()

	require.NoError(t, b.Do(ctx, ok), "the healthy store is the default one; nothing to log")
	assert.Empty(t, logs.records(t))

	b, err = breaker.NewWithClock("svc", breaker.Config{FailureThreshold: 1, Store: fs}, e.clock.Now)
	require.NoError(t, err)
	fs.down(true)
	require.Same(t, errBoom, b.Do(ctx, failing), "served by the fallback, which trips")
	require.ErrorIs(t, b.Do(ctx, ok), breaker.ErrOpen)
	assert.Equal(t, []map[string]any{degradedLog("fallback-local", "admit")}, logs.records(t),
		"the episode once, at Warn; the fallback's trip (Info) is not logged")
}

// TestDefaultLoggerFollowsSetDefault: the default logger reads
// slog.Default() when it logs, not when the Breaker was made.
func TestDefaultLoggerFollowsSetDefault(t *testing.T) {
	e := newEnv()
	fs := &faultyStore{Store: e.store, failApply: true, err: breaker.ErrUnknownCircuit}
	b, err := breaker.NewWithClock("svc", breaker.Config{Store: fs}, e.clock.Now)
	require.NoError(t, err)
	logs := setDefaultLogger(t)
	require.ErrorIs(t, b.Reset(context.Background()), breaker.ErrUnknownCircuit)
	assert.Equal(t, []map[string]any{storeFailedLog("apply", 1, "tripline: unknown circuit")}, logs.records(t))
}

// TestLoggerSetIsTheOnlyOne: a Breaker with Config.Logger logs there, and
// nothing reaches slog.Default().
func TestLoggerSetIsTheOnlyOne(t *testing.T) {
	def := setDefaultLogger(t)
	b, fs, logs, _ := faultyBreaker(t, breaker.Config{})
	fs.down(true)
	require.NoError(t, b.Do(context.Background(), ok))
	assert.Equal(t, []map[string]any{degradedLog("fallback-local", "admit")}, logs.records(t))
	assert.Empty(t, def.records(t))
}

// TestDefaultLoggerLevels: Warn and Error pass, Info and Debug do not;
// attrs and groups added to the logger are kept.
func TestDefaultLoggerLevels(t *testing.T) {
	logs := setDefaultLogger(t)
	l := breaker.DefaultLogger().With("a", 1).WithGroup("g").With("b", 2)
	ctx := context.Background()
	assert.False(t, l.Enabled(ctx, slog.LevelInfo))
	assert.True(t, l.Enabled(ctx, slog.LevelWarn))
	l.Debug("debug")
	l.Info("info")
	l.Warn("warn", "c", 3)
	l.Error("error")
	assert.Equal(t, []map[string]any{
		{"level": "WARN", "msg": "warn", "a": float64(1), "g": map[string]any{"b": float64(2), "c": float64(3)}},
		{"level": "ERROR", "msg": "error", "a": float64(1), "g": map[string]any{"b": float64(2)}},
	}, logs.records(t))
}
