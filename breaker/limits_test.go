package breaker_test

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/tripline/tripline/breaker"
)

// TestNewRefusesCountsAboveMaxCount (issue 17): New refuses a
// SuccessThreshold or HalfOpenMaxCalls that the Redis scripts cannot hold
// exactly, instead of making a Breaker that Redis refuses on every call.
func TestNewRefusesCountsAboveMaxCount(t *testing.T) {
	maxCount := int64(breaker.MaxCount) // an int64 first: int may be 32 bits
	for _, tc := range []struct {
		name  string
		cfg   breaker.Config
		valid bool
	}{
		{"SuccessThreshold at MaxCount", breaker.Config{SuccessThreshold: int(maxCount)}, true},
		{"SuccessThreshold above", breaker.Config{SuccessThreshold: int(maxCount + 1)}, false},
		{"HalfOpenMaxCalls at MaxCount", breaker.Config{HalfOpenMaxCalls: int(maxCount)}, true},
		{"HalfOpenMaxCalls above", breaker.Config{HalfOpenMaxCalls: int(maxCount + 1)}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := breaker.New("c", tc.cfg)
			if tc.valid {
				assert.NoError(t, err)
				return
			}
			assert.ErrorContains(t, err, "more than 9007199254740991")
		})
	}
}
