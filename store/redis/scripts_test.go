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
	{"admit", lua.Admit, "81ecb389d951a7657e535016a6f2aa919b466dce"},
	{"record", lua.Record, "a3bf2c5e7322cd1d337becee10259909a0318c7b"},
	{"apply", lua.Apply, "ef9355d57a2c1fca8c5b4703c9226648fa7fc5c1"},
	{"load", lua.Load, "e4dfe174f37c0eb854aebbcb173b65a194c43bbf"},
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
