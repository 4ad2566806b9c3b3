//go:build integration

package integration

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tripline/tripline/breaker"
	"github.com/tripline/tripline/internal/redisserver"
	redisstore "github.com/tripline/tripline/store/redis"
)

// buildCBCTL builds cmd/cbctl into a temporary directory and returns the
// binary's path.
func buildCBCTL(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "cbctl")
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/cbctl")
	cmd.Dir = ".." // the module root: tests run in integration/
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "go build ./cmd/cbctl: %s", out)
	return bin
}

// cliResult is what one cbctl run did.
type cliResult struct {
	code           int
	stdout, stderr string
}

// cbctlEnv is the environment cbctl runs in: this process's, without
// REDIS_URL and the variables that choose TLS roots, plus extra.
func cbctlEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); k != "REDIS_URL" && k != "SSL_CERT_FILE" && k != "SSL_CERT_DIR" {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// runCBCTL runs the cbctl binary to its end (at most 30s).
func runCBCTL(t *testing.T, bin string, env []string, args ...string) cliResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	res := cliResult{stdout: stdout.String(), stderr: stderr.String()}
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		res.code = exit.ExitCode()
	case err != nil:
		t.Fatalf("cbctl %v: %v", args, err)
	}
	return res
}

// TestSecurityCBCTL runs the cbctl binary against a redis-server with two
// ACL users limited to one prefix: an operator with tripline's whole ACL
// (aclCommands) and a viewer with the read-only one (aclReadOnlyCommands),
// over plain TCP and TLS (rediss://, trusting the test's CA through
// SSL_CERT_FILE). The operator lists, gets, overrides, resets and watches;
// the viewer reads and watches, and its open, close and reset are refused
// (exit 1, one line that says the user lacks the right) without changing
// the circuit. Nothing cbctl prints, in any of these runs or with a wrong
// password, contains the password in any spelling.
func TestSecurityCBCTL(t *testing.T) {
	bin := buildCBCTL(t)
	certs := redisserver.NewTLSCerts(t)
	const prefix = "ops"
	srv := redisserver.StartSingle(t, redisserver.WithTLS(certs),
		redisserver.WithACLUser("operator", aclPassword, aclRules(prefix, aclCommands)...),
		redisserver.WithACLUser("viewer", aclPassword, aclRules(prefix, aclReadOnlyCommands)...))
	user, pw := srv.Admin()
	adminClient := redis.NewClient(&redis.Options{Addr: srv.Addr(), Username: user, Password: pw})
	t.Cleanup(func() { _ = adminClient.Close() })
	admin := openStore(t, adminClient, redisstore.WithPrefix(prefix), slowCalls)
	ctx := t.Context()
	_, err := admin.Apply(ctx, "payments", breaker.Command{Kind: breaker.CommandForceOpen, Actor: "setup", Reason: "maintenance"})
	require.NoError(t, err)

	target := func(scheme, user, addr string) string {
		return scheme + "://" + user + ":" + url.QueryEscape(aclPassword) + "@" + addr
	}
	operator, viewer := target("redis", "operator", srv.Addr()), target("redis", "viewer", srv.Addr())
	var printed []string // everything cbctl printed
	run := func(env []string, args ...string) cliResult {
		t.Helper()
		res := runCBCTL(t, bin, env, append(args, "--prefix", prefix)...)
		printed = append(printed, res.stdout, res.stderr)
		return res
	}
	env := cbctlEnv()
	load := func() breaker.Snapshot {
		s, err := admin.Load(ctx, "payments")
		require.NoError(t, err)
		return s
	}

	// The operator.
	res := run(env, "list", "--redis", operator)
	require.Equal(t, 0, res.code, res.stderr)
	assert.Contains(t, res.stdout, "payments")
	res = run(env, "get", "payments", "-o", "json", "--redis", operator)
	require.Equal(t, 0, res.code, res.stderr)
	assert.Contains(t, res.stdout, `"maintenance"`)
	res = run(env, "close", "payments", "--reason", "drill", "--for", "1m", "--redis", operator)
	require.Equal(t, 0, res.code, res.stderr)
	require.NotNil(t, load().Override)
	assert.Equal(t, breaker.OverrideForceClose, load().Override.Mode)
	res = run(env, "reset", "payments", "--reason", "drill", "--redis", operator)
	require.Equal(t, 0, res.code, res.stderr)
	assert.Nil(t, load().Override)
	watched := watchCBCTL(t, bin, env, admin, "--redis", operator, "--prefix", prefix)
	printed = append(printed, watched)
	assert.Contains(t, watched, "payments")

	// The viewer: reads, and is refused every change.
	res = run(env, "list", "--redis", viewer)
	require.Equal(t, 0, res.code, res.stderr)
	res = run(env, "get", "payments", "--redis", viewer)
	require.Equal(t, 0, res.code, res.stderr)
	printed = append(printed, watchCBCTL(t, bin, env, admin, "--redis", viewer, "--prefix", prefix))
	before := load()
	for _, args := range [][]string{
		{"open", "payments", "--reason", "x"},
		{"close", "payments", "--reason", "x"},
		{"reset", "payments", "--reason", "x"},
		{"open", "new-circuit", "--reason", "x", "--create"},
	} {
		res := run(env, append(args, "--redis", viewer)...)
		assert.Equal(t, 1, res.code, "viewer %v: %s", args, res.stdout)
		assert.Empty(t, res.stdout, "viewer %v", args)
		assert.Equal(t, 1, strings.Count(res.stderr, "\n"), "viewer %v: one line: %q", args, res.stderr)
		assert.True(t, strings.Contains(res.stderr, "NOPERM") || strings.Contains(res.stderr, "permission") ||
			strings.Contains(res.stderr, "can't run this command"), "viewer %v: the error does not say the user lacks the right: %q", args, res.stderr)
		t.Logf("cbctl %s as viewer: exit %d: %s", args[0], res.code, strings.TrimSpace(res.stderr))
	}
	after := load()
	assert.Equal(t, before.Generation, after.Generation, "a refused command changed the circuit")
	s, err := admin.Load(ctx, "new-circuit")
	require.NoError(t, err)
	assert.Zero(t, s.Generation, "a refused --create wrote the circuit")

	// A wrong password.
	res = run(env, "list", "--redis", "redis://operator:"+url.QueryEscape("wrong-"+aclPassword)+"@"+srv.Addr())
	assert.Equal(t, 1, res.code)
	assert.Contains(t, res.stderr, "WRONGPASS")

	// REDIS_URL instead of --redis.
	res = run(cbctlEnv("REDIS_URL="+viewer), "list")
	assert.Equal(t, 0, res.code, res.stderr)

	// TLS: trusted through SSL_CERT_FILE, refused without.
	tlsTarget := target("rediss", "operator", srv.TLSAddr())
	res = run(cbctlEnv("SSL_CERT_FILE="+certs.CAFile), "list", "--redis", tlsTarget)
	assert.Equal(t, 0, res.code, res.stderr)
	assert.Contains(t, res.stdout, "payments")
	res = run(cbctlEnv("SSL_CERT_FILE="+certs.CAFile), "open", "payments", "--reason", "tls", "--redis", tlsTarget)
	assert.Equal(t, 0, res.code, res.stderr)
	res = run(env, "list", "--redis", tlsTarget)
	assert.Equal(t, 1, res.code)
	assert.Contains(t, res.stderr, "certificate")

	spellings := []string{aclPassword, url.QueryEscape(aclPassword), url.PathEscape(aclPassword), "S3cret"}
	for _, out := range printed {
		for _, secret := range spellings {
			assert.NotContains(t, out, secret, "cbctl printed the password")
		}
	}
	t.Logf("CBCTL: %d outputs checked for the password", len(printed))
}

// watchCBCTL starts "cbctl watch" with args, waits until it says it is
// watching, forces the payments circuit open and reset through admin, and
// returns what watch printed (stdout, then stderr) once the first
// transition came out; then it kills the process it started.
func watchCBCTL(t *testing.T, bin string, env []string, admin *redisstore.Store, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"watch", "payments"}, args...)...)
	cmd.Env = env
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	var stderr syncedBuffer
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}()
	for !strings.Contains(stderr.String(), "watching") {
		require.NoError(t, ctx.Err(), "cbctl watch did not start: %s", stderr.String())
		time.Sleep(10 * time.Millisecond)
	}
	_, err = admin.Apply(ctx, "payments", breaker.Command{Kind: breaker.CommandForceOpen, Reason: "watch"})
	require.NoError(t, err)
	_, err = admin.Apply(ctx, "payments", breaker.Command{Kind: breaker.CommandReset})
	require.NoError(t, err)
	line, err := bufio.NewReader(stdout).ReadString('\n')
	require.NoError(t, err, "cbctl watch printed no transition: %s", stderr.String())
	return line + stderr.String()
}

// syncedBuffer is a bytes.Buffer safe for one writer (a process's output)
// and concurrent readers.
type syncedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
