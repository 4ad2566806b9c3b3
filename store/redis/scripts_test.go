package redisstore_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tripline/tripline/breaker"
	"github.com/tripline/tripline/scripts/lua"
	redisstore "github.com/tripline/tripline/store/redis"
)

// scriptSHAs pins the SHA1 of every script. A change to a .lua file changes
// its SHA: update the pin here, deliberately (replicas running the old and
// the new script side by side each load their own).
var scriptSHAs = []struct {
	name, src, sha string
}{
	{"admit", lua.Admit, "b51049141df30607f4705f36cd0b076d45f42910"},
	{"record", lua.Record, "f00ad9f8fd6a36023b803f895c87fe095283e32b"},
	{"apply", lua.Apply, "c5dcb5ee68e77c8d2559776e7e319c9e7b699016"},
	{"load", lua.Load, "18082b6bb523d052d558973e41c733b9b26b8114"},
	{"settle", lua.Settle, "b2f421621ebc1ae79e10ec98c46f7e4665023194"},
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

// TestApplyScriptBoundsNotes: the apply script itself refuses an actor or a
// reason longer than MaxNoteLen (Apply checks first; this guards the script
// against any other caller), and writes nothing.
func TestApplyScriptBoundsNotes(t *testing.T) {
	f := newFakeRedis(t)
	c := f.client(t)
	s := f.store(t, redisstore.WithStrict())
	keys := append(s.Keys("c"), s.Keys("c")[0]+":r:test")
	long := strings.Repeat("x", redisstore.MaxNoteLen+1)
	for _, notes := range [][2]string{{long, ""}, {"ops", long}} {
		args := []any{s.Channel(), "Yw", int64(time.Hour / time.Microsecond), 60000, 2, 0, 0, notes[0], notes[1]}
		err := c.Eval(context.Background(), lua.Apply, keys, args...).Err()
		require.Error(t, err)
		assert.Contains(t, err.Error(), "at most 1024 bytes")
	}
	assert.Empty(t, f.Keys(), "nothing written")
	ok := strings.Repeat("x", redisstore.MaxNoteLen)
	_, err := s.Apply(context.Background(), "c", breaker.Command{Kind: breaker.CommandForceOpen, Actor: ok, Reason: ok})
	require.NoError(t, err, "MaxNoteLen bytes are allowed")
}
