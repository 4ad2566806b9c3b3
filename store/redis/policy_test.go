package redisstore_test

import (
	"context"
	"log/slog"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tripline/tripline/breaker"
	redisstore "github.com/tripline/tripline/store/redis"
)

// msgCounter is a slog handler that counts records by message.
type msgCounter struct {
	mu   sync.Mutex
	msgs map[string]int
}

func newMsgCounter() *msgCounter { return &msgCounter{msgs: map[string]int{}} }

func (h *msgCounter) Enabled(context.Context, slog.Level) bool { return true }
func (h *msgCounter) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *msgCounter) WithGroup(string) slog.Handler            { return h }

func (h *msgCounter) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.msgs[r.Message]++
	return nil
}

func (h *msgCounter) count(msg string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.msgs[msg]
}

// TestIssue16PolicyDisagreementWarned: two replicas (a Store each, on one
// Redis) run Breakers of one circuit with thresholds 10 and 2. Failures
// from both reach Redis, which tells each that the other's settings wrote
// the circuit last: each Breaker logs that once. Replicas with the same
// settings log nothing.
func TestIssue16PolicyDisagreementWarned(t *testing.T) {
	const warning = "tripline: circuit was last written under other settings: replicas disagree on its policy"
	for _, tc := range []struct {
		name   string
		opts   []redisstore.Option
		other  int
		warned int
	}{
		{"local views, thresholds 10 and 2", nil, 2, 1},
		{"strict, thresholds 10 and 2", []redisstore.Option{redisstore.WithStrict()}, 2, 1},
		{"local views, same settings", nil, 10, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeRedis(t)
			logsA, logsB := newMsgCounter(), newMsgCounter()
			a, err := breaker.New("svc", breaker.Config{Store: f.store(t, tc.opts...), FailureThreshold: 10, Logger: slog.New(logsA)})
			require.NoError(t, err)
			b, err := breaker.New("svc", breaker.Config{Store: f.store(t, tc.opts...), FailureThreshold: tc.other, Logger: slog.New(logsB)})
			require.NoError(t, err)
			ctx := context.Background()
			boom := func(context.Context) error { return assert.AnError }
			for range 3 {
				_ = b.Do(ctx, boom)
				_ = a.Do(ctx, boom)
				_ = b.Do(ctx, boom)
				require.NoError(t, a.Reset(ctx))
			}
			assert.Equal(t, tc.warned, logsA.count(warning), "threshold 10")
			assert.Equal(t, tc.warned, logsB.count(warning), "threshold %d", tc.other)
			assert.Zero(t, logsA.count("tripline: store unavailable, degraded")+logsB.count("tripline: store unavailable, degraded"),
				"Redis answered every call")
		})
	}
}
