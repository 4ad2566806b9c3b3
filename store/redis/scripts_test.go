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
	{"admit", lua.Admit, "4f9a9d2e2092d0b9aa6db0237287186f4322b3a1"},
	{"record", lua.Record, "c62ef1665abf49fdbafbd4a5099fe6628c82a219"},
	{"apply", lua.Apply, "7c6b968e1ce2f348f7a9f7ce120e2e588dce32c5"},
	{"load", lua.Load, "f671b4c586edc0a1b4e660519c1479fd47ae9df5"},
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

// TestScriptBoundsArePolicyBounds: the scripts accept a policy's counts up
// to the bounds breaker.Policy.Validate sets, and refuse one more before
// any write, so no policy New accepts is refused by Redis (a Breaker would
// run degraded for ever).
func TestScriptBoundsArePolicyBounds(t *testing.T) {
	f := newFakeRedis(t)
	c := f.client(t)
	s := f.store(t, redisstore.WithStrict())
	keys := append(s.Keys("c"), s.Keys("c")[0]+":r:test")
	base := breaker.Policy{FailureThreshold: 5, Timeout: time.Second, SuccessThreshold: 1, HalfOpenMaxCalls: 1, ProbeTimeout: time.Second}
	maxCount := int64(breaker.MaxCount) // an int64 first: int may be 32 bits
	for _, tc := range []struct {
		field string
		set   func(p *breaker.Policy, v int64)
		limit int64
	}{
		{"FailureThreshold", func(p *breaker.Policy, v int64) { p.FailureThreshold = int(v) }, breaker.MaxFailureThreshold},
		{"SuccessThreshold", func(p *breaker.Policy, v int64) { p.SuccessThreshold = int(v) }, maxCount},
		{"HalfOpenMaxCalls", func(p *breaker.Policy, v int64) { p.HalfOpenMaxCalls = int(v) }, maxCount},
	} {
		t.Run(tc.field, func(t *testing.T) {
			run := func(v int64) (breaker.Policy, error) {
				p := base
				tc.set(&p, v)
				args := []any{s.Channel(), "Yw", int64(time.Hour / time.Microsecond), 60000,
					p.FailureThreshold, 0, p.Timeout.Microseconds(), p.SuccessThreshold, p.HalfOpenMaxCalls, p.ProbeTimeout.Microseconds()}
				return p, c.Eval(context.Background(), lua.Admit, keys, args...).Err()
			}
			p, err := run(tc.limit)
			require.NoError(t, p.Validate(), "Validate at the bound")
			assert.NoError(t, err, "the admit script at the bound")
			p, err = run(tc.limit + 1)
			require.Error(t, p.Validate(), "Validate above the bound")
			require.Error(t, err, "the admit script above the bound")
			assert.Contains(t, err.Error(), "TRIPLINE_BADARG "+tc.field)
			assert.Empty(t, f.Keys(), "nothing written")
		})
	}
}
