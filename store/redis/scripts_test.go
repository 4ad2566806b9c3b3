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
	{"admit", lua.Admit, "bf9b8c39811b7736ae40c5d5f6786a487b2c45a4"},
	{"record", lua.Record, "c01ef60b83431891e31e906bd51a775fb822053f"},
	{"apply", lua.Apply, "dfcf1e28a00c8af7b02c737a76a9531170b55bd4"},
	{"load", lua.Load, "d7fe3ff9a8b96bf768ae60c2b41e9d08deea078a"},
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
