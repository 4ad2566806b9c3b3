//go:build integration

package integration

import (
	"net/url"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tripline/tripline/breaker"
	"github.com/tripline/tripline/internal/redisserver"
	redisstore "github.com/tripline/tripline/store/redis"
)

// TestCbctlErrorMessages runs the cbctl binary against a real redis-server
// in the states an operator meets, and checks the one line it prints for
// each (exit code 1): an ACL user without the rights to change circuits or
// to use the prefix asked for (NOPERM, or the refusal of a script's call),
// a wrong password (WRONGPASS), no password (NOAUTH), --cluster on a
// server that is not one, plain TCP to a TLS port and TLS to a plain port,
// a read-only replica (READONLY) and a replica without its master
// (MASTERDOWN). The friendly part is matched exactly, the words of Redis
// after it only as far as Redis versions agree; no line carries a script's
// SHA or line number, and none a password.
func TestCbctlErrorMessages(t *testing.T) {
	bin := buildCBCTL(t)
	const prefix = "ops"
	srv := redisserver.StartSingle(t, redisserver.WithTLS(redisserver.NewTLSCerts(t)),
		redisserver.WithConfig("user default off"), // no password: NOAUTH
		redisserver.WithACLUser("operator", aclPassword, aclRules(prefix, aclCommands)...),
		redisserver.WithACLUser("viewer", aclPassword, aclRules(prefix, aclReadOnlyCommands)...))
	adminUser, adminPass := srv.Admin()
	adminClient := redis.NewClient(&redis.Options{Addr: srv.Addr(), Username: adminUser, Password: adminPass})
	t.Cleanup(func() { _ = adminClient.Close() })
	admin := openStore(t, adminClient, redisstore.WithPrefix(prefix), slowCalls)
	_, err := admin.Apply(t.Context(), "payments", breaker.Command{Kind: breaker.CommandForceOpen, Actor: "setup", Reason: "maintenance"})
	require.NoError(t, err)

	userURL := func(user, password string) string {
		return "redis://" + user + ":" + url.QueryEscape(password) + "@" + srv.Addr()
	}
	shownURL := func(user string) string { return "redis://" + user + ":xxxxx@" + srv.Addr() }
	operator, viewer := userURL("operator", aclPassword), userURL("viewer", aclPassword)
	env := cbctlEnv()
	var printed []string
	// fails runs cbctl, which must fail with one line that starts with want
	// (and ends with wantEnd, when given).
	fails := func(want, wantEnd string, args ...string) string {
		t.Helper()
		res := runCBCTL(t, bin, env, args...)
		printed = append(printed, res.stdout, res.stderr)
		assert.Equal(t, 1, res.code, "%v: %s", args, res.stderr)
		assert.Empty(t, res.stdout, "%v", args)
		assert.Equal(t, 1, strings.Count(res.stderr, "\n"), "%v: one line: %q", args, res.stderr)
		assert.True(t, strings.HasPrefix(res.stderr, want), "%v:\n got %q\nwant %q...", args, res.stderr, want)
		assert.True(t, strings.HasSuffix(res.stderr, wantEnd+"\n"), "%v: %q does not end with %q", args, res.stderr, wantEnd)
		for _, raw := range []string{"@user_script", "script: ", "f_", "redisstore:"} {
			assert.NotContains(t, res.stderr, raw, "%v: the raw Redis error shows through", args)
		}
		t.Logf("cbctl %s: %s", strings.Join(args[:1], " "), strings.TrimSpace(res.stderr))
		return res.stderr
	}

	t.Run("NOPERM: a read-only user changes a circuit", func(t *testing.T) {
		before, err := admin.Load(t.Context(), "payments")
		require.NoError(t, err)
		for _, tt := range []struct {
			args   []string
			action string
		}{
			{[]string{"open", "payments", "--reason", "x"}, "force-open circuit payments"},
			{[]string{"close", "payments", "--reason", "x", "--for", "1m"}, "force-close circuit payments"},
			{[]string{"reset", "payments"}, "reset circuit payments"},
			{[]string{"open", "new-circuit", "--reason", "x", "--create"}, "force-open circuit new-circuit"},
		} {
			line := fails("cbctl: "+tt.action+": "+shownURL("viewer")+`: the Redis user "viewer" may not change circuits (ACL: `, ")",
				append(tt.args, "--prefix", prefix, "--redis", viewer)...)
			// Redis 7.0 refuses a script's call in its own words; 7.2 says NOPERM.
			assert.True(t, strings.Contains(line, "NOPERM") || strings.Contains(line, "can't run this command"), line)
		}
		after, err := admin.Load(t.Context(), "payments")
		require.NoError(t, err)
		assert.Equal(t, before.Generation, after.Generation, "a refused command changed the circuit")
	})

	t.Run("NOPERM: another prefix's keys and channel", func(t *testing.T) {
		fails("cbctl: load circuit payments: "+shownURL("viewer")+
			`: the Redis user "viewer" may not use the keys of prefix "tripline": is --prefix right? (ACL: NOPERM `, ")",
			"get", "payments", "--redis", viewer)
		fails("cbctl: watch: "+shownURL("operator")+
			`: the Redis user "operator" may not use the channel "other:events": is --prefix right? (ACL: NOPERM `, ")",
			"watch", "--prefix", "other", "--redis", operator)
	})

	t.Run("WRONGPASS and NOAUTH", func(t *testing.T) {
		fails("cbctl: list circuits: "+shownURL("operator")+`: authentication failed for user "operator" (WRONGPASS `, ")",
			"list", "--redis", userURL("operator", "wrong-"+aclPassword))
		fails("cbctl: force-open circuit payments: "+shownURL("nobody")+`: authentication failed for user "nobody" (WRONGPASS `, ")",
			"open", "payments", "--reason", "x", "--redis", userURL("nobody", aclPassword))
		fails("cbctl: list circuits: redis://"+srv.Addr()+
			": authentication failed: the server requires a password and the URL gives none (NOAUTH ", ")",
			"list", "--redis", "redis://"+srv.Addr())
	})

	t.Run("--cluster on a single server", func(t *testing.T) {
		fails("cbctl: list circuits: cluster "+"redis://"+adminUser+":xxxxx@"+srv.Addr()+
			": the server is not a Redis Cluster: connect with --redis URL (", ")",
			"list", "--cluster", "redis://"+adminUser+":"+adminPass+"@"+srv.Addr())
	})

	t.Run("TLS and plain ports mixed up", func(t *testing.T) {
		fails("cbctl: list circuits: "+"redis://operator:xxxxx@"+srv.TLSAddr()+
			": the server closed the connection: if it speaks TLS only, use rediss:// (", ")",
			"list", "--redis", "redis://operator:"+url.QueryEscape(aclPassword)+"@"+srv.TLSAddr())
		fails("cbctl: list circuits: "+"rediss://operator:xxxxx@"+srv.Addr()+
			": no reply within --timeout 2s: is the address the server's TLS port, is the server up and not overloaded? (", ")",
			"list", "--timeout", "2s", "--redis", "rediss://operator:"+url.QueryEscape(aclPassword)+"@"+srv.Addr())
	})

	// Last: the server becomes a replica of a master that is not there.
	t.Run("READONLY and MASTERDOWN", func(t *testing.T) {
		_, err := srv.Do(t.Context(), "REPLICAOF", "127.0.0.1", "1")
		require.NoError(t, err)
		fails("cbctl: force-open circuit payments: "+shownURL("operator")+
			": connected to a read-only replica: point --redis at the master, or use --cluster for Redis Cluster (READONLY ", ")",
			"open", "payments", "--reason", "x", "--prefix", prefix, "--redis", operator)
		res := runCBCTL(t, bin, env, "get", "payments", "--prefix", prefix, "--redis", operator)
		assert.Equal(t, 0, res.code, "a replica serves reads: %s", res.stderr)

		_, err = srv.Do(t.Context(), "CONFIG", "SET", "replica-serve-stale-data", "no")
		require.NoError(t, err)
		fails("cbctl: load circuit payments: "+shownURL("operator")+
			": connected to a replica that lost its master and serves no data: point --redis at the master (MASTERDOWN ", ")",
			"get", "payments", "--prefix", prefix, "--redis", operator)
	})

	spellings := []string{aclPassword, url.QueryEscape(aclPassword), url.PathEscape(aclPassword), "S3cret", adminPass}
	for _, out := range printed {
		for _, secret := range spellings {
			assert.NotContains(t, out, secret, "cbctl printed a password")
		}
	}
}
