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
	{"admit", lua.Admit, "1884e4128f6497fe9d04556aaa70c3c7d95a4a9e"},
	{"record", lua.Record, "239113e9657f489a3ca9ab8b0393a8be7157f244"},
	{"apply", lua.Apply, "3f140c9426250ddf8001316efd6068c4201bfdac"},
	{"load", lua.Load, "2d94aeab245d30c47b6e85fee8266c9e53a64678"},
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
