//go:build integration

package integration

import (
	"context"
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tripline/tripline/breaker"
	"github.com/tripline/tripline/internal/redisserver"
	redisstore "github.com/tripline/tripline/store/redis"
)

// hostileNames are circuit names that try to break out of their keys:
// braces (hash tags), colons (key separators), glob characters (SCAN
// patterns, ACL patterns), the other application's prefix and key layout,
// and the longest name allowed.
var hostileNames = []string{
	"}", "{", ":", "*", "?", "[a-z]", "\\", "{}", "}{",
	"app:b", "{app:b}", "app:b:{c2hhcmVk}", "}:app:b:{x", "x}:w", "x}:p",
	"名前", "\x00\r\n", " ",
	strings.Repeat("}", breaker.MaxNameLen),
	strings.Repeat("a", breaker.MaxNameLen),
}

// TestSecurityPrefixIsolation: two applications share one Redis with the
// prefixes "app" and "app:b" (the first followed by ':' starts the second),
// each through its own ACL user limited to ~<prefix>:{* and its channel.
// Application A uses hostile circuit names (hostileNames), and both have a
// circuit called "shared". Neither ever sees the other's circuits (List,
// Load, Watch), every key A writes carries A's prefix followed by '{' and
// the encoded name as its only hash tag, and A's ACL user cannot touch B's
// keys (a user with ~app:* could: the reason for ~<prefix>:{*). A's user
// can still SCAN B's key names: Redis does not filter SCAN by ACL.
func TestSecurityPrefixIsolation(t *testing.T) {
	srv := redisserver.StartSingle(t,
		redisserver.WithACLUser("app-a", aclPassword, aclRules("app", aclCommands)...),
		redisserver.WithACLUser("app-b", aclPassword, aclRules("app:b", aclCommands)...))
	newStore := func(user, prefix string) (*redisstore.Store, *redis.Client) {
		c := redis.NewClient(&redis.Options{Addr: srv.Addr(), Username: user, Password: aclPassword})
		t.Cleanup(func() { _ = c.Close() })
		return openStore(t, c, redisstore.WithPrefix(prefix), slowCalls), c
	}
	a, aClient := newStore("app-a", "app")
	b, _ := newStore("app-b", "app:b")
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()

	type watched struct {
		names []string
		done  chan struct{}
	}
	watch := func(st *redisstore.Store, marker string, names ...string) *watched {
		events, err := st.Watch(ctx, names...)
		require.NoError(t, err)
		w := &watched{done: make(chan struct{})}
		go func() {
			defer close(w.done)
			for ev := range events {
				if ev.Name == marker {
					return
				}
				w.names = append(w.names, ev.Name)
			}
		}()
		return w
	}
	watchA, watchB := watch(a, "marker-a"), watch(b, "marker-b")
	watchShared := watch(a, "marker-a", "shared", "marker-a")

	forceOpen := breaker.Command{Kind: breaker.CommandForceOpen, Reason: "isolation"}
	for _, name := range hostileNames {
		_, err := a.Apply(ctx, name, forceOpen)
		require.NoError(t, err, "%q", name)
	}
	_, err := a.Apply(ctx, "shared", breaker.Command{Kind: breaker.CommandReset})
	require.NoError(t, err)
	_, err = b.Apply(ctx, "shared", forceOpen)
	require.NoError(t, err)
	_, err = b.Apply(ctx, "b-only", forceOpen)
	require.NoError(t, err)
	// Markers, written last: a Watch that saw its marker has seen every
	// transition published before it.
	_, err = a.Apply(ctx, "marker-a", breaker.Command{Kind: breaker.CommandReset})
	require.NoError(t, err)
	_, err = b.Apply(ctx, "marker-b", breaker.Command{Kind: breaker.CommandReset})
	require.NoError(t, err)
	for _, w := range []*watched{watchA, watchB, watchShared} {
		select {
		case <-w.done:
		case <-ctx.Done():
			t.Fatal("a Watch did not see its marker")
		}
	}

	// Watch: each application sees its own transitions only.
	wantA := append(slices.Clone(hostileNames), "shared")
	assert.ElementsMatch(t, wantA, watchA.names, "A's Watch")
	assert.ElementsMatch(t, []string{"shared", "b-only"}, watchB.names, "B's Watch")
	assert.Equal(t, []string{"shared"}, watchShared.names, "A's Watch of \"shared\"")

	// List: each application lists its own circuits, names intact.
	names := func(st *redisstore.Store) []string {
		list, err := st.List(ctx)
		require.NoError(t, err)
		var out []string
		for _, s := range list {
			out = append(out, s.Name)
		}
		return out
	}
	assert.ElementsMatch(t, append(slices.Clone(wantA), "marker-a"), names(a), "A's List")
	assert.ElementsMatch(t, []string{"shared", "b-only", "marker-b"}, names(b), "B's List")

	// Load: the same name is a different circuit under each prefix.
	sa, err := a.Load(ctx, "shared")
	require.NoError(t, err)
	sb, err := b.Load(ctx, "shared")
	require.NoError(t, err)
	assert.Equal(t, breaker.StateClosed, sa.State)
	assert.Nil(t, sa.Override)
	require.NotNil(t, sb.Override)
	for _, name := range hostileNames {
		s, err := a.Load(ctx, name)
		require.NoError(t, err)
		require.NotNil(t, s.Override, "%q", name)
		_, err = b.Load(ctx, name) // B has none of them (except "shared")
		require.NoError(t, err)
	}

	// Keys: every key is <prefix>:{<tag>}... with exactly one pair of
	// braces, the tag being the base64url of a name of that prefix.
	user, pw := srv.Admin()
	admin := redis.NewClient(&redis.Options{Addr: srv.Addr(), Username: user, Password: pw})
	defer admin.Close()
	keys, err := admin.Keys(ctx, "*").Result()
	require.NoError(t, err)
	tags := map[string]map[string]bool{"app": {}, "app:b": {}}
	for _, name := range append(slices.Clone(wantA), "marker-a") {
		tags["app"][base64.RawURLEncoding.EncodeToString([]byte(name))] = true
	}
	for _, name := range []string{"shared", "b-only", "marker-b"} {
		tags["app:b"][base64.RawURLEncoding.EncodeToString([]byte(name))] = true
	}
	for _, k := range keys {
		open, end := strings.IndexByte(k, '{'), strings.IndexByte(k, '}')
		require.True(t, open > 0 && end > open, "key %q has no hash tag", k)
		assert.Equal(t, 1, strings.Count(k, "{"), "key %q", k)
		assert.Equal(t, 1, strings.Count(k, "}"), "key %q", k)
		prefix, tag, rest := k[:open-1], k[open+1:end], k[end+1:]
		require.Contains(t, tags, prefix, "key %q belongs to no application", k)
		assert.True(t, tags[prefix][tag], "key %q: tag %q is no circuit of %q", k, tag, prefix)
		assert.True(t, rest == "" || rest == ":w" || rest == ":p" || strings.HasPrefix(rest, ":r:"), "key %q", k)
	}
	for _, name := range hostileNames {
		for _, k := range a.Keys(name) {
			assert.True(t, strings.HasPrefix(k, "app:{"), "key %q of A's circuit %q", k, name)
		}
	}

	// ACL: A's user cannot reach B's keys; a user with ~app:* could.
	bKey := b.Keys("shared")[0]
	adminDo(t, srv, "ACL", "SETUSER", "wide", "on", ">"+aclPassword, "~app:*", "+hset")
	denied, err := srv.Do(ctx, "ACL", "DRYRUN", "app-a", "HSET", bKey, "st", "0")
	require.NoError(t, err)
	assert.Contains(t, fmt.Sprint(denied), "no permissions to access the '"+bKey+"' key", "A's user on B's key %q", bKey)
	allowed, err := srv.Do(ctx, "ACL", "DRYRUN", "wide", "HSET", bKey, "st", "0")
	require.NoError(t, err)
	assert.Equal(t, "OK", allowed, "a user with ~app:* reaches B's keys")
	// What the ACL cannot hide: SCAN is not limited by key patterns, so A's
	// user sees the names of B's keys (and so B's circuit names).
	seen, _, err := aClient.Scan(ctx, 0, "app:b:*", 1000).Result()
	require.NoError(t, err)
	assert.NotEmpty(t, seen, "SCAN by A's user lists B's keys (Redis does not filter SCAN by ACL key patterns)")
	t.Logf("PREFIX ISOLATION: %d hostile names, %d keys checked; ACL DRYRUN of A's user on B's key %q: %v", len(hostileNames), len(keys), bKey, denied)

	// Too long: refused with an error, never a panic.
	long := strings.Repeat("x", breaker.MaxNameLen+1)
	_, err = a.Admit(ctx, long, recoveryPolicy)
	assert.ErrorContains(t, err, "longer than")
	_, err = a.Apply(ctx, long, forceOpen)
	assert.ErrorContains(t, err, "longer than")
	_, err = a.Load(ctx, long)
	assert.ErrorContains(t, err, "longer than")
	_, err = breaker.New(long, breaker.Config{Store: a})
	assert.ErrorContains(t, err, "longer than")
}
