package redisstore_test

import (
	"context"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tripline/tripline/scripts/lua"
)

// scriptSHAs pins the SHA1 of every script. A change to a .lua file changes
// its SHA: update the pin here, deliberately (replicas running the old and
// the new script side by side each load their own).
var scriptSHAs = []struct {
	name, src, sha string
}{
	{"admit", lua.Admit, "b51049141df30607f4705f36cd0b076d45f42910"},
	{"record", lua.Record, "f00ad9f8fd6a36023b803f895c87fe095283e32b"},
	{"apply", lua.Apply, "1ad81717a9b92fa26d8da59c166e405c1cf3c133"},
	{"load", lua.Load, "18082b6bb523d052d558973e41c733b9b26b8114"},
}

// TestScriptSHAs checks that each pinned SHA1 is what SCRIPT LOAD answers
// and what go-redis sends with EVALSHA.
func TestScriptSHAs(t *testing.T) {
	f := newFakeRedis(t)
	c := f.client(t)
	for _, s := range scriptSHAs {
		t.Run(s.name, func(t *testing.T) {
			loaded, err := c.ScriptLoad(context.Background(), s.src).Result()
			require.NoError(t, err)
			assert.Equal(t, s.sha, loaded, "SCRIPT LOAD")
			assert.Equal(t, s.sha, redis.NewScript(s.src).Hash(), "redis.NewScript")
		})
	}
}
