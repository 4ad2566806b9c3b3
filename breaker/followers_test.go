package breaker_test

import (
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/tripline/tripline/breaker"
)

// TestFollowersOrder: reports given from many goroutines reach each
// function one at a time, never an older generation after a newer one,
// so the last report is the newest state; a function that gives a report
// itself (a callback that calls its Breaker) does not deadlock: its report
// comes after the one being delivered.
func TestFollowersOrder(t *testing.T) {
	var fs breaker.Followers
	var mu sync.Mutex
	var got []uint64
	fs.Follow("svc", func(f breaker.Followed) bool {
		mu.Lock()
		got = append(got, f.Generation)
		mu.Unlock()
		if f.Generation == 1 {
			fs.Seen("svc", breaker.Transition{From: breaker.StateOpen, To: breaker.StateClosed, Generation: 2})
		}
		return true
	})
	fs.Seen("svc", breaker.Transition{From: breaker.StateClosed, To: breaker.StateOpen, Generation: 1})
	assert.Equal(t, []uint64{1, 2}, got, "the reentrant report comes after")

	var wg sync.WaitGroup
	for g := range 200 {
		wg.Go(func() {
			fs.Seen("svc", breaker.Transition{From: breaker.StateClosed, To: breaker.StateOpen, Generation: uint64(3 + g)})
		})
	}
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	for i := 1; i < len(got); i++ {
		assert.Less(t, got[i-1], got[i], "in order")
	}
	assert.Equal(t, uint64(202), got[len(got)-1], "the newest comes last")
}
