package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tripline/tripline/breaker"
	redisstore "github.com/tripline/tripline/store/redis"
)

// replyError is an error reply of Redis as go-redis hands it over: a
// redis.Error whose text is the server's.
type replyError string

func (e replyError) Error() string { return string(e) }
func (replyError) RedisError()     {}

var _ redis.Error = replyError("")

// asStore wraps err as the store does.
func asStore(err error) error { return fmt.Errorf("redisstore: apply circuit %q: %w", "payments", err) }

// viewerCtx is the failContext of a user "viewer" under the default prefix.
func viewerCtx(acc access) failContext {
	return failContext{access: acc, user: "viewer", prefix: "tripline", channel: "tripline:events", timeout: 10 * time.Second}
}

func TestExplainRedisReplies(t *testing.T) {
	tests := []struct {
		name  string
		reply string
		acc   access
		want  string
	}{
		{"NOPERM command (7.0)", "NOPERM this user has no permissions to run the 'evalsha' command or its subcommand", accessChange,
			`the Redis user "viewer" may not change circuits (ACL: NOPERM this user has no permissions to run the 'evalsha' command or its subcommand)`},
		{"NOPERM command (7.2)", "NOPERM User viewer has no permissions to run the 'time' command", accessRead,
			`the Redis user "viewer" may not read circuits (ACL: NOPERM User viewer has no permissions to run the 'time' command)`},
		{"NOPERM subscribe", "NOPERM this user has no permissions to run the 'subscribe' command", accessWatch,
			`the Redis user "viewer" may not watch circuits (ACL: NOPERM this user has no permissions to run the 'subscribe' command)`},
		{"NOPERM for the KEYS command is a command", "NOPERM User viewer has no permissions to run the 'keys' command", accessRead,
			`the Redis user "viewer" may not read circuits (ACL: NOPERM User viewer has no permissions to run the 'keys' command)`},
		{"NOPERM key (7.0)", "NOPERM this user has no permissions to access one of the keys used as arguments", accessRead,
			`the Redis user "viewer" may not use the keys of prefix "tripline": is --prefix right? (ACL: NOPERM this user has no permissions to access one of the keys used as arguments)`},
		{"NOPERM key (7.2)", "NOPERM No permissions to access a key", accessChange,
			`the Redis user "viewer" may not use the keys of prefix "tripline": is --prefix right? (ACL: NOPERM No permissions to access a key)`},
		{"NOPERM channel", "NOPERM this user has no permissions to access one of the channels used as arguments", accessWatch,
			`the Redis user "viewer" may not use the channel "tripline:events": is --prefix right? (ACL: NOPERM this user has no permissions to access one of the channels used as arguments)`},
		{"script refused a command (7.0)", "ERR The user executing the script can't run this command or subcommand script: c5dcb5ee68e77c8d2559776e7e319c9e7b699016, on @user_script:221.", accessChange,
			`the Redis user "viewer" may not change circuits (ACL: The user executing the script can't run this command or subcommand)`},
		{"script refused a key (7.0)", "ERR The user executing the script can't access at least one of the keys mentioned in the command script: 1ad8, on @user_script:12.", accessChange,
			`the Redis user "viewer" may not use the keys of prefix "tripline": is --prefix right? (ACL: The user executing the script can't access at least one of the keys mentioned in the command)`},
		{"script refused a publish (7.0)", "ERR The user executing the script can't publish to the channel mentioned in the command script: 1ad8, on @user_script:40.", accessChange,
			`the Redis user "viewer" may not use the channel "tripline:events": is --prefix right? (ACL: The user executing the script can't publish to the channel mentioned in the command)`},
		{"script refused a command (7.2)", "NOPERM User viewer has no permissions to run the 'hset' command script: 1ad8, on @user_script:221.", accessChange,
			`the Redis user "viewer" may not change circuits (ACL: NOPERM User viewer has no permissions to run the 'hset' command)`},
		{"WRONGPASS", "WRONGPASS invalid username-password pair or user is disabled.", accessRead,
			`authentication failed for user "viewer" (WRONGPASS invalid username-password pair or user is disabled.)`},
		{"unauthenticated", "ERR unauthenticated", accessRead, `authentication failed for user "viewer" (unauthenticated)`},
		{"NOAUTH", "NOAUTH Authentication required.", accessRead,
			`authentication failed: the server requires a password and the URL gives none (NOAUTH Authentication required.)`},
		{"READONLY", "READONLY You can't write against a read only replica.", accessChange,
			`connected to a read-only replica: point --redis at the master, or use --cluster for Redis Cluster (READONLY You can't write against a read only replica.)`},
		{"READONLY in a script (7.0)", "READONLY You can't write against a read only replica. script: 1ad8, on @user_script:200.", accessChange,
			`connected to a read-only replica: point --redis at the master, or use --cluster for Redis Cluster (READONLY You can't write against a read only replica.)`},
		{"READONLY in a script (before 7)", "ERR Error running script (call to f_1ad8): @user_script:200: -READONLY You can't write against a read only replica.", accessChange,
			`connected to a read-only replica: point --redis at the master, or use --cluster for Redis Cluster (READONLY You can't write against a read only replica.)`},
		{"LOADING", "LOADING Redis is loading the dataset in memory", accessRead,
			`the server is still loading its data set into memory: try again in a moment (LOADING Redis is loading the dataset in memory)`},
		{"MASTERDOWN", "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.", accessRead,
			`connected to a replica that lost its master and serves no data: point --redis at the master (MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.)`},
		{"CLUSTERDOWN", "CLUSTERDOWN Hash slot not served", accessChange,
			`the Redis Cluster is down (a hash slot has no master): check CLUSTER INFO (CLUSTERDOWN Hash slot not served)`},
		{"TRYAGAIN", "TRYAGAIN Multiple keys request during rehashing of slot", accessChange,
			`the Redis Cluster is moving this circuit's slot: try again (TRYAGAIN Multiple keys request during rehashing of slot)`},
		{"MOVED", "MOVED 9354 127.0.0.1:7001", accessChange,
			`the server is a Redis Cluster node: connect with --cluster host:port,... (MOVED 9354 127.0.0.1:7001)`},
		{"not a cluster", "ERR This instance has cluster support disabled", accessRead,
			`the server is not a Redis Cluster: connect with --redis URL (This instance has cluster support disabled)`},
		{"OOM", "OOM command not allowed when used memory > 'maxmemory'.", accessChange,
			`the server is out of memory (maxmemory) and refuses writes (OOM command not allowed when used memory > 'maxmemory'.)`},
		{"BUSY", "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.", accessRead,
			`the server is busy running a long script: try again (or SCRIPT KILL it) (BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.)`},
		{"maxclients", "ERR max number of clients reached", accessRead,
			`the server has as many clients as maxclients allows (max number of clients reached)`},
		{"other", "ERR unknown command 'EVALSHA', with args beginning with: ", accessRead,
			`Redis answered with an error (unknown command 'EVALSHA', with args beginning with:)`},
		{"multi-line, cut", "ERR Error running script: boom\nstack traceback:\n  [C]: in ?", accessRead,
			`Redis answered with an error (Error running script: boom)`},
		{"long, cut", "ERR " + strings.Repeat("é", 100), accessRead,
			`Redis answered with an error (` + strings.Repeat("é", maxDetail/2) + `...)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, err := range []error{replyError(tt.reply), asStore(replyError(tt.reply)),
				fmt.Errorf("failed to authenticate: %w", replyError(tt.reply))} {
				assert.Equal(t, tt.want, explain(err, viewerCtx(tt.acc)))
			}
		})
	}
}

func TestExplainDefaultUser(t *testing.T) {
	fc := viewerCtx(accessChange)
	fc.user = ""
	assert.Equal(t, `authentication failed for user "default" (WRONGPASS invalid username-password pair)`,
		explain(replyError("WRONGPASS invalid username-password pair"), fc))
	assert.Equal(t, `the Redis user "default" may not change circuits (ACL: NOPERM no)`,
		explain(replyError("NOPERM no"), fc))
}

func TestExplainNetwork(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Addr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1},
		Err: &os.SyscallError{Syscall: "connect", Err: syscall.ECONNREFUSED}}
	readTimeout := &net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}
	tests := []struct {
		name string
		err  error
		fc   failContext
		want string
	}{
		{"refused", asStore(refused), viewerCtx(accessRead),
			"nothing accepts connections there: is Redis running, is the port right? (dial tcp 127.0.0.1:1: connect: connection refused)"},
		{"no such host", asStore(&net.OpError{Op: "dial", Net: "tcp", Err: &net.DNSError{Err: "no such host", Name: "redis.invalid", IsNotFound: true}}), viewerCtx(accessRead),
			"cannot resolve the server's host name (lookup redis.invalid: no such host)"},
		{"--timeout", asStore(context.DeadlineExceeded), viewerCtx(accessRead),
			"no reply within --timeout 10s: is the address right, is the server up and not overloaded? (context deadline exceeded)"},
		{"read timeout, watch", asStore(readTimeout), failContext{access: accessWatch},
			"no reply in time: is the address right, is the server up and not overloaded? (read tcp: i/o timeout)"},
		{"timeout on TLS", asStore(context.DeadlineExceeded), failContext{timeout: time.Second, tls: true},
			"no reply within --timeout 1s: is the address the server's TLS port, is the server up and not overloaded? (context deadline exceeded)"},
		{"closed", asStore(io.EOF), viewerCtx(accessRead),
			"the server closed the connection: if it speaks TLS only, use rediss:// (EOF)"},
		{"reset", asStore(&net.OpError{Op: "read", Net: "tcp", Err: &os.SyscallError{Syscall: "read", Err: syscall.ECONNRESET}}), viewerCtx(accessRead),
			"the server closed the connection: if it speaks TLS only, use rediss:// (read tcp: read: connection reset by peer)"},
		{"unknown CA", asStore(&tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}), viewerCtx(accessRead),
			"the server's TLS certificate is not trusted: give its CA with SSL_CERT_FILE (x509: certificate signed by unknown authority)"},
		{"other host", asStore(&tls.CertificateVerificationError{Err: x509.HostnameError{Certificate: &x509.Certificate{}, Host: "redis.example"}}), viewerCtx(accessRead),
			"the server's TLS certificate is for another host (x509: certificate is not valid for any names, but wanted to match redis.example)"},
		{"not TLS", asStore(tls.RecordHeaderError{Msg: "first record does not look like a TLS handshake"}), viewerCtx(accessRead),
			"the server does not speak TLS there: use redis://, or its TLS port (tls: first record does not look like a TLS handshake)"},
		{"anything else, as it is, on one line", asStore(errors.New("odd\nthing")), viewerCtx(accessRead),
			`redisstore: apply circuit "payments": odd thing`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, explain(tt.err, tt.fc))
		})
	}
}

func TestExplainCorrupt(t *testing.T) {
	err := fmt.Errorf("redisstore: load circuit %q: %w", "pay\nments",
		&fakeCorrupt{msg: `malformed circuit data: field st of "tripline:{x}" is "bogus"`})
	assert.Equal(t, `circuit "pay\nments" holds data that tripline did not write; cbctl reset rewrites it (malformed circuit data: field st of "tripline:{x}" is "bogus")`,
		explain(err, viewerCtx(accessRead)))
	assert.Equal(t, `a circuit holds data that tripline did not write; cbctl reset rewrites it (malformed circuit data)`,
		explain(fmt.Errorf("list: %w", redisstore.ErrCorrupt), viewerCtx(accessRead)))
}

// fakeCorrupt is an error that matches redisstore.ErrCorrupt.
type fakeCorrupt struct{ msg string }

func (e *fakeCorrupt) Error() string        { return e.msg }
func (e *fakeCorrupt) Is(target error) bool { return target == redisstore.ErrCorrupt }

// TestRedisErrorsEndToEnd runs cbctl against miniredis answering every
// command with one error reply, as a server in that state does: each
// command prints the one line that says why, and exits 1.
func TestRedisErrorsEndToEnd(t *testing.T) {
	replies := []struct {
		reply string
		want  map[string]string // command -> cause and detail
	}{
		{"NOPERM this user has no permissions to run the 'evalsha' command", map[string]string{
			"list":  `the Redis user "default" may not read circuits (ACL: NOPERM this user has no permissions to run the 'evalsha' command)`,
			"open":  `the Redis user "default" may not change circuits (ACL: NOPERM this user has no permissions to run the 'evalsha' command)`,
			"watch": `the Redis user "default" may not watch circuits (ACL: NOPERM this user has no permissions to run the 'evalsha' command)`,
		}},
		{"READONLY You can't write against a read only replica.", nil},
		{"LOADING Redis is loading the dataset in memory", nil},
		{"MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.", nil},
		{"CLUSTERDOWN The cluster is down", nil},
	}
	for _, r := range replies {
		code, _, _ := strings.Cut(r.reply, " ")
		t.Run(code, func(t *testing.T) {
			mr := miniredis.RunT(t)
			mr.SetError(r.reply)
			target := "redis://" + mr.Addr()
			for _, args := range [][]string{{"list"}, {"get", "payments"}, {"open", "payments", "--reason", "r"}, {"reset", "payments"}, {"watch"}} {
				out := cbctl(t, nil, append(args, "--redis", target)...)
				assert.Equal(t, exitFailure, out.code, "%v", args)
				assert.Empty(t, out.stdout, "%v", args)
				require.Len(t, lines(out.stderr), 1, "%v: %q", args, out.stderr)
				want := explain(replyError(r.reply), failContext{access: map[string]access{
					"open": accessChange, "reset": accessChange, "watch": accessWatch}[args[0]]})
				if w, ok := r.want[args[0]]; ok {
					require.Equal(t, w, want, "the table agrees with explain")
				}
				action := map[string]string{"list": "list circuits", "get": "load circuit payments",
					"open": "force-open circuit payments", "reset": "reset circuit payments", "watch": "watch"}[args[0]]
				assert.Equal(t, "cbctl: "+action+": "+target+": "+want+"\n", out.stderr, "%v", args)
			}
		})
	}
}

func TestAuthErrorsEndToEnd(t *testing.T) {
	const pw = "Sup3r\"S3cr3t/pa ss"
	mr := miniredis.RunT(t)
	mr.RequireUserAuth("alice", "right-password")
	mr.RequireUserAuth("viewer", pw)
	esc := url.QueryEscape(pw)

	out := cbctl(t, nil, "open", "payments", "--reason", "r", "--redis", "redis://alice:"+esc+"@"+mr.Addr())
	assert.Equal(t, exitFailure, out.code)
	assert.Equal(t, "cbctl: force-open circuit payments: redis://alice:xxxxx@"+mr.Addr()+
		`: authentication failed for user "alice" (WRONGPASS invalid username-password pair)`+"\n", out.stderr)

	// A lone userinfo is the user to go-redis (which then sends no
	// password), and often a password: it is never printed.
	out = cbctl(t, nil, "list", "--redis", "redis://"+esc+"@"+mr.Addr())
	assert.Equal(t, exitFailure, out.code)
	assert.Equal(t, "cbctl: list circuits: redis://xxxxx@"+mr.Addr()+
		": authentication failed: the server requires a password and the URL gives none (NOAUTH Authentication required.)\n", out.stderr)

	out = cbctl(t, nil, "get", "payments", "--redis", "redis://"+mr.Addr())
	assert.Equal(t, exitFailure, out.code)
	assert.Equal(t, "cbctl: load circuit payments: redis://"+mr.Addr()+
		": authentication failed: the server requires a password and the URL gives none (NOAUTH Authentication required.)\n", out.stderr)

	out = cbctl(t, nil, "list", "--redis", "redis://viewer:"+url.PathEscape(pw)+"@"+mr.Addr())
	assert.Equal(t, exitOK, out.code, out.stderr)
}

func TestConnectionErrorsEndToEnd(t *testing.T) {
	addr := unusedAddr(t)
	out := cbctl(t, nil, "list", "--redis", "redis://alice:pw@"+addr)
	assert.Equal(t, exitFailure, out.code)
	assert.Equal(t, "cbctl: list circuits: redis://alice:xxxxx@"+addr+
		": nothing accepts connections there: is Redis running, is the port right? (dial tcp "+addr+": connect: connection refused)\n", out.stderr)

	// A server that accepts and never answers.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	done := make(chan struct{})
	go func() {
		defer close(done)
		var conns []net.Conn
		for {
			c, err := ln.Accept()
			if err != nil {
				for _, c := range conns {
					_ = c.Close()
				}
				return
			}
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() { _ = ln.Close(); <-done })
	out = cbctl(t, nil, "get", "payments", "--redis", "redis://"+ln.Addr().String(), "--timeout", "1s")
	assert.Equal(t, exitFailure, out.code)
	require.Len(t, lines(out.stderr), 1, out.stderr)
	assert.True(t, strings.HasPrefix(out.stderr, "cbctl: load circuit payments: redis://"+ln.Addr().String()+
		": no reply within --timeout 1s: is the address right, is the server up and not overloaded? ("), out.stderr)
}

func TestCorruptCircuitEndToEnd(t *testing.T) {
	f := newFleet(t)
	b := f.replica(t, "payments", breaker.Config{})
	require.NoError(t, b.Do(t.Context(), ok))
	client := redis.NewClient(&redis.Options{Addr: f.mr.Addr()})
	t.Cleanup(func() { _ = client.Close() })
	store := redisstore.New(client)
	t.Cleanup(func() { _ = store.Close() })
	f.mr.HSet(store.Keys("payments")[0], "st", "bogus")

	const cause = `circuit payments holds data that tripline did not write; cbctl reset rewrites it (malformed circuit data: field st of "tripline:{cGF5bWVudHM}" is "bogus")`
	for _, tt := range []struct {
		args   []string
		action string
	}{
		{[]string{"get", "payments"}, "load circuit payments"},
		{[]string{"open", "payments", "--reason", "r"}, "force-open circuit payments"},
	} {
		out := f.cbctl(t, tt.args...)
		assert.Equal(t, exitFailure, out.code, "%v", tt.args)
		assert.Empty(t, out.stdout, "%v", tt.args)
		assert.Equal(t, "cbctl: "+tt.action+": "+f.url+": "+cause+"\n", out.stderr, "%v", tt.args)
	}
	// list lists it as such (read_test.go: among others).
	out := f.cbctl(t, "list")
	assert.Equal(t, exitOK, out.code, out.stderr)
	assert.Equal(t, "note: "+cause+"\n", out.stderr)

	// As the message says: reset repairs it.
	out = f.cbctl(t, "reset", "payments", "--reason", "repair")
	require.Equal(t, exitOK, out.code, out.stderr)
	out = f.cbctl(t, "get", "payments")
	require.Equal(t, exitOK, out.code, out.stderr)
}
