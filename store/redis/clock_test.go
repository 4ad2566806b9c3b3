package redisstore_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestNoClientClock: the store never reads the client's wall clock; every
// decision is made in the scripts on Redis TIME, so replicas whose clocks
// disagree still agree on every circuit. (The integration suite also checks
// that no script argument looks like a client time.) The local views age
// on the local monotonic clock, read in one place (monoclock.go) as a
// duration since a fixed start, which is never compared with a Redis time.
func TestNoClientClock(t *testing.T) {
	files, err := filepath.Glob("*.go")
	require.NoError(t, err)
	checked := 0
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		require.NoError(t, err)
		if f == "monoclock.go" {
			assert.Equal(t, 1, strings.Count(string(src), "time.Now()"), "monoclock.go: one anchor")
			assert.Equal(t, 1, strings.Count(string(src), "time.Since(monoStart)"), "monoclock.go: durations since the anchor")
			continue
		}
		for _, call := range []string{"time.Now(", "time.Since(", "time.Until(", "time.Tick(", "time.After(", "monoStart"} {
			assert.NotContains(t, string(src), call, "%s reads the client's clock", f)
		}
		checked++
	}
	require.Positive(t, checked)
	lib, err := os.ReadFile(filepath.Join("..", "..", "scripts", "lua", "lib.lua"))
	require.NoError(t, err)
	assert.Contains(t, string(lib), "redis.call('TIME')", "the scripts read Redis TIME")
}
