//go:build integration

package integration

import (
	"context"
	"crypto/tls"
	"errors"
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

// Security (issue 6): Redis ACL users limited to what tripline needs, TLS,
// prefixes that isolate applications sharing one Redis, and circuit names
// that cannot reach other keys.
//
// # The ACL tripline needs
//
// Redis checks every command a Lua script calls against the user that
// called the script, so the list holds the scripts' commands as well as
// the ones the store sends itself. With prefix P (WithPrefix, cbctl
// --prefix; default "tripline"):
//
//	user <name> on ><password> ~P:{* &P:events
//	    +evalsha +eval                      every store call (EVAL after NOSCRIPT)
//	    +time +hmget +get +set +hset +hdel +del +pexpire +pttl +publish
//	    +zadd +zcount +zrangebyscore +zrem +zremrangebyrank
//	    +zremrangebyscore +zscore +hget     inside the scripts
//	    +scan                               List (cbctl list)
//	    +subscribe +ping                    Watch (cbctl watch); go-redis pings a subscription idle
//	                                        for 3s (without +ping Watch still works, but every ping
//	                                        is refused and logged in ACL LOG)
//	    +cluster|slots +command             Redis Cluster only: go-redis reads the slot map and
//	                                        the command table (without +command it logs
//	                                        "getting command info: NOPERM" on every call)
//
// Keys: every key of a circuit is P:{<base64url name>}[:w|:p|:r:<id>], so
// ~P:{* covers them and nothing of another prefix (~P:* would also cover
// a prefix "P:x"). The only channel is P:events.
//
// A read-only user (cbctl list, get and watch, no open/close/reset) needs
// ~P:{* &P:events +evalsha +eval +time +hmget +zcount +scan +subscribe +ping.
//
// What the ACL cannot do: the scripts' commands are ordinary commands for
// Redis, so the user may also run them directly on P's keys (HSET a
// circuit's hash by hand); and SCAN is not restricted by key patterns, so
// a user with +scan sees every key name in its database, other prefixes'
// circuit names included (base64url, not secret). Applications that must
// not see each other's circuit names need separate databases or servers.
//
// HELLO and AUTH need no rights. go-redis also sends CLIENT SETINFO when it
// connects (Redis 7.2+) and ignores its error: grant +client|setinfo only
// to keep the ACL LOG quiet.
var aclCommands = []string{
	"evalsha", "eval",
	"time", "hmget", "get", "set", "hset", "hdel", "del", "pexpire", "pttl", "publish",
	"zadd", "zcount", "zrangebyscore", "zrem", "zremrangebyrank", "zremrangebyscore", "zscore", "hget",
	"scan",
	"subscribe", "ping",
}

// aclReadOnlyCommands are what a read-only user (Load, List, Watch) needs.
var aclReadOnlyCommands = []string{"evalsha", "eval", "time", "hmget", "zcount", "scan", "subscribe", "ping"}

// aclRules returns the ACL rules of a user of prefix with cmds.
func aclRules(prefix string, cmds []string) []string {
	rules := []string{"~" + prefix + ":{*", "&" + prefix + ":events"}
	for _, c := range cmds {
		rules = append(rules, "+"+c)
	}
	return rules
}

// isPermissionError reports whether err is Redis refusing a command for
// lack of rights: NOPERM for a command sent directly, and for a command a
// script calls, "The user executing the script can't run this command" or
// "... can't access at least one of the keys / channels".
func isPermissionError(err error) bool {
	if err == nil {
		return false
	}
	msg := err.Error()
	return strings.Contains(msg, "NOPERM") || strings.Contains(msg, "The user executing the script can't")
}

// slowCalls gives a store of the security and recovery tests a 1s call
// timeout: they test what works, not how fast, and a new connection's
// handshake (TLS above all) can take longer than the default 50ms under
// -race on a 2-core machine.
var slowCalls = redisstore.WithCallTimeout(time.Second)

const aclPassword = "acl-S3cret/pw:@x" // needs escaping in a URL

// aclWorkload runs every kind of store call, and through them every script
// path that calls a distinct Redis command, on fresh circuits named after
// run: it returns the first error. admin (every right) makes a corrupt
// circuit for the repair path and flushes the script cache first, so that
// the store needs EVAL as well as EVALSHA.
func aclWorkload(ctx context.Context, st *redisstore.Store, admin redis.UniversalClient, run string) error {
	if err := admin.ScriptFlush(ctx).Err(); err != nil {
		return fmt.Errorf("setup: %w", err)
	}
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	events, err := st.Watch(watchCtx) // SUBSCRIBE
	if err != nil {
		return err
	}
	defer func() {
		stopWatch()
		for range events { // until Watch closes it
		}
	}()
	p := breaker.Policy{
		FailureThreshold: 2,
		FailureWindow:    time.Hour,
		Timeout:          20 * time.Millisecond,
		SuccessThreshold: 2,
		HalfOpenMaxCalls: 2,
		ProbeTimeout:     5 * time.Second,
	}
	w := "w-" + run
	// Two failures in the window trip it: ZCOUNT, ZREMRANGEBYSCORE, ZADD,
	// ZREMRANGEBYRANK, DEL, HSET, PEXPIRE, PUBLISH, SET and GET of the
	// reply memo, TIME, HMGET.
	for range 2 {
		a, err := st.Admit(ctx, w, p)
		if err != nil {
			return err
		}
		if _, err := st.Record(ctx, w, p, breaker.Outcome{Kind: breaker.OutcomeFailure, Generation: a.Generation}); err != nil {
			return err
		}
	}
	// Half-open: the first probe (a transition), a second probe
	// (ZRANGEBYSCORE, ZREMRANGEBYSCORE, ZADD), a third call rejected.
	var probes []breaker.Admission
	deadline := time.Now().Add(5 * time.Second)
	for len(probes) < 3 && time.Now().Before(deadline) {
		a, err := st.Admit(ctx, w, p)
		if err != nil {
			return err
		}
		switch {
		case a.Allowed:
			probes = append(probes, a)
		case a.State == breaker.StateHalfOpen:
			probes = append(probes, a) // the rejected third
		default:
			time.Sleep(a.RetryAfter + time.Millisecond)
		}
	}
	if len(probes) != 3 || probes[2].Allowed {
		return fmt.Errorf("half-open went wrong: %+v", probes)
	}
	for _, a := range probes[:2] { // ZSCORE, ZREM; the second closes it
		if _, err := st.Record(ctx, w, p, breaker.Outcome{Kind: breaker.OutcomeSuccess, Generation: a.Generation, Probe: a.Probe}); err != nil {
			return err
		}
	}
	s, err := st.Load(ctx, w) // ZCOUNT
	if err != nil {
		return err
	}
	if s.State != breaker.StateClosed {
		return fmt.Errorf("circuit %s is %s after two good probes", w, s.State)
	}
	// An override without an end: admitted calls read its TTL (PTTL); a
	// reset removes it (HDEL).
	o := "o-" + run
	if _, err := st.Apply(ctx, o, breaker.Command{Kind: breaker.CommandForceOpen, Reason: "acl"}); err != nil {
		return err
	}
	if _, err := st.Admit(ctx, o, p); err != nil {
		return err
	}
	if _, err := st.Apply(ctx, o, breaker.Command{Kind: breaker.CommandReset}); err != nil {
		return err
	}
	// A corrupt circuit repaired by a reset keeps its generation (HGET).
	r := "r-" + run
	if err := admin.HSet(ctx, st.Keys(r)[0], "st", "garbage", "g", "7").Err(); err != nil {
		return fmt.Errorf("setup: %w", err)
	}
	res, err := st.Apply(ctx, r, breaker.Command{Kind: breaker.CommandReset})
	if err != nil {
		return err
	}
	if res.Generation != 8 {
		return fmt.Errorf("repaired circuit %s is at generation %d, want 8 (its generation was not read)", r, res.Generation)
	}
	list, err := st.List(ctx) // SCAN
	if err != nil {
		return err
	}
	if !slices.ContainsFunc(list, func(s redisstore.Entry) bool { return s.Name == w }) {
		return fmt.Errorf("List misses %s", w)
	}
	select {
	case ev, ok := <-events:
		if !ok {
			return errors.New("Watch closed its channel")
		}
		_ = ev
	case <-time.After(2 * time.Second):
		return errors.New("Watch delivered no transition")
	}
	return nil
}

// aclServer starts a server with an ACL user of prefix with cmds, and
// returns a store on a client of that user and an admin client.
func aclServer(t *testing.T, prefix string, cmds []string, opts ...redisserver.Option) (*redisserver.Server, *redisstore.Store, redis.UniversalClient) {
	t.Helper()
	opts = append(opts, redisserver.WithACLUser("tripline-app", aclPassword, aclRules(prefix, cmds)...))
	srv := redisserver.StartSingle(t, opts...)
	user, pw := srv.Admin()
	admin := redis.NewClient(&redis.Options{Addr: srv.Addr(), Username: user, Password: pw})
	t.Cleanup(func() { _ = admin.Close() })
	c := redis.NewClient(&redis.Options{Addr: srv.Addr(), Username: "tripline-app", Password: aclPassword})
	t.Cleanup(func() { _ = c.Close() })
	return srv, openStore(t, c, redisstore.WithPrefix(prefix), slowCalls), admin
}

// TestSecurityACLUser: with an ACL user limited to aclCommands, keys
// ~<prefix>:{* and channel &<prefix>:events, the store works end to end
// (every script path, List, Watch, breakers tripping and seeing it), and
// commands, keys and channels outside that are refused with NOPERM.
func TestSecurityACLUser(t *testing.T) {
	const prefix = "acl"
	srv, st, admin := aclServer(t, prefix, aclCommands)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	require.NoError(t, aclWorkload(ctx, st, admin, "1"))

	// Breakers of two replicas through the ACL user: one trips, both see it.
	var bs []*breaker.Breaker
	for range 2 {
		c := redis.NewClient(&redis.Options{Addr: srv.Addr(), Username: "tripline-app", Password: aclPassword})
		t.Cleanup(func() { _ = c.Close() })
		b, err := breaker.New("pay", breaker.Config{FailureThreshold: 2, Degraded: breaker.FailClosed,
			Store: openStore(t, c, redisstore.WithPrefix(prefix), slowCalls)})
		require.NoError(t, err)
		bs = append(bs, b)
	}
	for range 2 {
		require.ErrorIs(t, bs[0].Do(ctx, func(context.Context) error { return errFlaky }), errFlaky)
	}
	require.ErrorIs(t, bs[1].Do(ctx, func(context.Context) error { return nil }), breaker.ErrOpen)
	snap, err := bs[1].Snapshot(ctx)
	require.NoError(t, err)
	assert.Zero(t, snap.StoreErrors)

	// Outside the list: refused.
	user := redis.NewClient(&redis.Options{Addr: srv.Addr(), Username: "tripline-app", Password: aclPassword})
	defer user.Close()
	refused := map[string]error{
		"FLUSHALL":                 user.FlushAll(ctx).Err(),
		"KEYS":                     user.Keys(ctx, "*").Err(),
		"CONFIG GET":               user.ConfigGet(ctx, "maxmemory").Err(),
		"SCRIPT FLUSH":             user.ScriptFlush(ctx).Err(),
		"GET of another prefix":    user.Get(ctx, "other:{eA}").Err(),
		"HSET outside {":           user.HSet(ctx, prefix+":x", "a", "1").Err(),
		"PUBLISH another channel":  user.Publish(ctx, "other:events", "x").Err(),
		"script on another prefix": user.Eval(ctx, "return redis.call('GET', KEYS[1])", []string{"other:{eA}"}).Err(),
		"script publishing elsewhere": user.Eval(ctx, "return redis.call('PUBLISH', 'other:events', 'x')",
			[]string{prefix + ":{eA}"}).Err(),
	}
	ps := user.Subscribe(ctx, "other:events")
	_, err = ps.Receive(ctx)
	refused["SUBSCRIBE another channel"] = err
	_ = ps.Close()
	for what, err := range refused {
		assert.True(t, isPermissionError(err), "%s: want a permission error, got %v", what, err)
	}
	t.Logf("ACL: %d commands; refused outside them: %d checks", len(aclCommands), len(refused))
}

// TestSecurityACLExactlyNeeded takes each command of aclCommands away from
// the user in turn: the workload, which runs every script path, must then
// fail (a permission error; for HGET, which the repair path calls under
// pcall, a generation that was not kept). So the list holds nothing
// tripline does not use. PING is the exception: go-redis sends it only on
// a subscription idle for 3s (its health check), and a refused PING does
// not stop Watch.
//
// The script errors do not name the command refused ("ERR The user
// executing the script can't run this command or subcommand script: <sha>,
// on @user_script:<line>"), and a script refused after its first write
// leaves that write in place (Redis has no rollback): grant the whole list.
func TestSecurityACLExactlyNeeded(t *testing.T) {
	const prefix = "exact"
	srv, st, admin := aclServer(t, prefix, aclCommands)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	require.NoError(t, aclWorkload(ctx, st, admin, "all"))
	for _, cmd := range aclCommands {
		if cmd == "ping" {
			continue
		}
		adminDo(t, srv, "ACL", "SETUSER", "tripline-app", "-"+cmd)
		err := aclWorkload(ctx, st, admin, "no-"+cmd)
		adminDo(t, srv, "ACL", "SETUSER", "tripline-app", "+"+cmd)
		t.Logf("without %-16s %.150v", cmd+":", err)
		if assert.Error(t, err, "the workload ran without %s: not needed?", cmd) && cmd != "hget" {
			assert.True(t, isPermissionError(err), "without %s: %v", cmd, err)
		}
	}
	require.NoError(t, aclWorkload(ctx, st, admin, "again"))
}

// TestSecurityACLCluster runs the workload on a Redis Cluster through an
// ACL user: the same list plus cluster|slots, which go-redis's
// ClusterClient needs to read the slot map, and command, which it reads to
// route commands (without it, it logs an error on every call and routes by
// its built-in rules).
func TestSecurityACLCluster(t *testing.T) {
	const prefix = "aclc"
	cmds := append(slices.Clone(aclCommands), "cluster|slots", "command")
	cl := redisserver.StartCluster(t, 3, 0, redisserver.WithACLUser("tripline-app", aclPassword, aclRules(prefix, cmds)...))
	user, pw := cl.Nodes()[0].Admin()
	admin := redis.NewClusterClient(&redis.ClusterOptions{Addrs: cl.Addrs(), Username: user, Password: pw})
	defer admin.Close()
	// Admin passwords differ per node: flush scripts node by node.
	adminAll := func(ctx context.Context, args ...string) {
		for _, n := range cl.Masters() {
			_, err := n.Do(ctx, args...)
			require.NoError(t, err)
		}
	}
	c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: cl.Addrs(), Username: "tripline-app", Password: aclPassword})
	t.Cleanup(func() { _ = c.Close() })
	st := openStore(t, c, redisstore.WithPrefix(prefix), slowCalls)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	adminAll(ctx, "SCRIPT", "FLUSH")
	require.NoError(t, aclWorkload(ctx, st, clusterScriptFlusher{admin, adminAll}, "1"))
}

// clusterScriptFlusher is the cluster admin client whose ScriptFlush
// reaches every master through the harness (a ClusterClient's ScriptFlush
// goes to one node).
type clusterScriptFlusher struct {
	*redis.ClusterClient
	flushAll func(ctx context.Context, args ...string)
}

func (c clusterScriptFlusher) ScriptFlush(ctx context.Context) *redis.StatusCmd {
	c.flushAll(ctx, "SCRIPT", "FLUSH")
	return redis.NewStatusResult("OK", nil)
}

// TestSecurityTLS: the store works over TLS (rediss://) with a certificate
// the test made, through an ACL user; a client that does not trust the CA
// is refused.
func TestSecurityTLS(t *testing.T) {
	const prefix = "tls"
	certs := redisserver.NewTLSCerts(t)
	srv, _, admin := aclServer(t, prefix, aclCommands, redisserver.WithTLS(certs))
	require.NotEmpty(t, srv.TLSAddr())
	opts, err := redis.ParseURL("rediss://tripline-app:" + strings.ReplaceAll(aclPassword, "/", "%2F") + "@" + srv.TLSAddr())
	require.NoError(t, err)
	require.NotNil(t, opts.TLSConfig, "rediss:// turns TLS on")
	opts.TLSConfig = certs.ClientConfig()
	c := redis.NewClient(opts)
	t.Cleanup(func() { _ = c.Close() })
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	require.NoError(t, aclWorkload(ctx, openStore(t, c, redisstore.WithPrefix(prefix), slowCalls), admin, "tls"))
	n := infoField(t, srv.Do, "stats", "total_connections_received")
	t.Logf("TLS: workload passed over %s (server saw %d connections in all)", srv.TLSAddr(), n)

	// The default call timeout (50ms) covers a new connection's TLS
	// handshake too: a store's first call on a cold pool may fail.
	cold := redis.NewClient(opts)
	t.Cleanup(func() { _ = cold.Close() })
	start := time.Now()
	_, coldErr := openStore(t, cold, redisstore.WithPrefix(prefix)).Load(ctx, "cold")
	t.Logf("TLS: first call of a store with the default call timeout on a cold pool: %s, error %v", time.Since(start).Round(time.Millisecond), coldErr)

	untrusted := redis.NewClient(&redis.Options{Addr: srv.TLSAddr(), Username: "tripline-app", Password: aclPassword,
		TLSConfig: &tls.Config{ServerName: "127.0.0.1"}, MaxRetries: -1})
	defer untrusted.Close()
	err = untrusted.Ping(ctx).Err()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "certificate", "a client that does not trust the CA")
}
