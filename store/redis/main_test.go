package redisstore_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that no test leaves a goroutine behind: every Store is
// closed (its subscriber and flush timer end), every client and miniredis
// too.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
