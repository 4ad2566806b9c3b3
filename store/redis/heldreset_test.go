package redisstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tripline/tripline/breaker"
	redisstore "github.com/tripline/tripline/store/redis"
)

// TestHeldResetKeepsLaterFailures (issue 17, item 5): a reset that replica
// B holds back for a success clears only the failures counted before that
// success, never those replica A counted after it. B fails, B succeeds, A
// fails 3 times, B fails: 4 failures in a row since the success (strict
// counting), so the circuit (threshold 5) trips at A's next failure, not 4
// failures later. The held-back reset is taken by B's failure ("reset
// first"), or sent by itself before it (B's Load flushes it).
func TestHeldResetKeepsLaterFailures(t *testing.T) {
	for _, tc := range []struct {
		name  string
		flush bool // B sends its reset on its own, after A's failures
	}{
		{"reset carried by the failure", false},
		{"reset sent late", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeRedis(t)
			p := policy(5)
			a := f.store(t)
			b := f.store(t, redisstore.WithFlushInterval(time.Hour)) // no flush unless asked
			warm(t, a, "svc", p)
			warm(t, b, "svc", p)
			hash := b.Keys("svc")[0]

			call(t, b, "svc", p, breaker.OutcomeFailure)
			call(t, b, "svc", p, breaker.OutcomeSuccess)
			require.Equal(t, "1", f.HGet(hash, "f"), "B holds its reset back")
			for range 3 {
				call(t, a, "svc", p, breaker.OutcomeFailure)
			}
			if tc.flush {
				snap, err := b.Load(context.Background(), "svc") // sends the held-back reset first
				require.NoError(t, err)
				assert.Equal(t, 3, snap.Failures, "the reset of B's success keeps A's 3 failures counted after it")
			}
			r := call(t, b, "svc", p, breaker.OutcomeFailure)
			require.Equal(t, breaker.StateClosed, r.State)
			assert.Equal(t, "4", f.HGet(hash, "f"), "4 failures in a row since B's success")

			r = call(t, a, "svc", p, breaker.OutcomeFailure)
			assert.Equal(t, breaker.Transition{From: breaker.StateClosed, To: breaker.StateOpen, Generation: 1}, r.Transition,
				"the 5th failure in a row since B's success trips")
		})
	}
}
