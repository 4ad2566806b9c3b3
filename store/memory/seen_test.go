package memory_test

import (
	"context"
	"errors"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tripline/tripline/breaker"
	"github.com/tripline/tripline/store/memory"
)

// TestStateSeenInProcess: Breakers that share a memory store are replicas
// in one process: each hears of the others' transitions through
// OnStateSeen, and of its own through OnStateChange only.
func TestStateSeenInProcess(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	st := memory.New(memory.WithClock(func() time.Time { return now }))
	var got []string
	newBreaker := func(who string) *breaker.Breaker {
		b, err := breaker.New("svc", breaker.Config{Store: st, FailureThreshold: 1, Timeout: time.Minute,
			OnStateChange: func(_ string, from, to breaker.State) {
				got = append(got, who+" made "+from.String()+" -> "+to.String())
			},
			OnStateSeen: func(_ string, from, to breaker.State) {
				got = append(got, who+" seen "+from.String()+" -> "+to.String())
			},
		})
		require.NoError(t, err)
		return b
	}
	a, b := newBreaker("A"), newBreaker("B")
	ctx := context.Background()

	require.Error(t, a.Do(ctx, func(context.Context) error { return errors.New("boom") }))
	now = now.Add(time.Minute)
	require.NoError(t, b.Do(ctx, func(context.Context) error { return nil }), "B's probe closes it")
	// The others hear during the store's call, before the maker reports.
	assert.Equal(t, []string{
		"B seen closed -> open", "A made closed -> open",
		"A seen open -> half-open", "B made open -> half-open",
		"A seen half-open -> closed", "B made half-open -> closed",
	}, got)
	runtime.KeepAlive(a)
	runtime.KeepAlive(b)
}
