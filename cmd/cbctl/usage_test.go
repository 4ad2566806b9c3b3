package main

import (
	"net"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// unusedAddr returns a loopback address nothing listens on.
func unusedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

func TestUsageErrorsExitTwo(t *testing.T) {
	// A server that must never be reached: every case fails before dialling.
	url := "redis://" + unusedAddr(t)
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string // in the first line of stderr
	}{
		{"no command", nil, nil, "missing command"},
		{"unknown command", []string{"frobnicate"}, nil, `unknown command "frobnicate"`},
		{"unknown flag", []string{"list", "--redis", url, "--frob"}, nil, "unknown flag: --frob"},
		{"unknown shorthand", []string{"list", "--redis", url, "-z"}, nil, "unknown shorthand flag: 'z'"},
		{"get without name", []string{"get", "--redis", url}, nil, "missing circuit NAME"},
		{"get with two names", []string{"get", "--redis", url, "a", "b"}, nil, "one circuit NAME expected, got 2"},
		{"list with argument", []string{"list", "--redis", url, "x"}, nil, `list takes no arguments, got "x"`},
		{"bad output", []string{"list", "--redis", url, "-o", "yaml"}, nil, `-o "yaml": want table or json`},
		{"bad output on get", []string{"get", "--redis", url, "a", "-o", "xml"}, nil, `-o "xml": want table or json`},
		{"bad output on watch", []string{"watch", "--redis", url, "-o", "csv"}, nil, `-o "csv": want table or json`},
		{"bad state", []string{"list", "--redis", url, "--state", "ajar"}, nil, `--state "ajar": want closed, open, half-open or corrupt`},
		{"bad for", []string{"open", "--redis", url, "a", "--reason", "r", "--for", "ten minutes"}, nil, `invalid argument "ten minutes" for "--for"`},
		{"negative for", []string{"close", "--redis", url, "a", "--reason", "r", "--for", "-1m"}, nil, "--for -1m0s: want a positive duration"},
		{"open without reason", []string{"open", "--redis", url, "a"}, nil, "--reason is required"},
		{"close with blank reason", []string{"close", "--redis", url, "a", "--reason", "  "}, nil, "--reason is required"},
		{"reset without name", []string{"reset", "--redis", url}, nil, "missing circuit NAME"},
		{"name too long", []string{"get", "--redis", url, strings.Repeat("n", 257)}, nil, "circuit name is 257 bytes, longer than 256"},
		{"no redis", []string{"list"}, nil, "no Redis to connect to"},
		{"redis and cluster", []string{"list", "--redis", url, "--cluster", "127.0.0.1:1"}, nil, "--redis and --cluster cannot be used together"},
		{"bad scheme", []string{"list", "--redis", "http://localhost:6379"}, nil, `--redis "http://localhost:6379": want a redis:// or rediss:// URL`},
		{"bad env scheme", []string{"list"}, map[string]string{"REDIS_URL": "localhost:6379"}, `REDIS_URL "localhost:6379": want a redis:// or rediss:// URL`},
		{"bad cluster entry", []string{"list", "--cluster", "127.0.0.1"}, nil, `--cluster entry "127.0.0.1": want host:port`},
		{"empty cluster", []string{"list", "--cluster", ","}, nil, "--cluster: no host:port given"},
		{"empty prefix", []string{"list", "--redis", url, "--prefix", ""}, nil, "--prefix is empty"},
		// Issue 16: a prefix the store refuses exited 1, as a failure.
		{"brace prefix", []string{"list", "--redis", url, "--prefix", "a{b"}, nil, `--prefix "a{b": holds '{' or '}', which would change the hash slot of its keys`},
		{"closing brace prefix", []string{"get", "x", "--redis", url, "--prefix", "a}"}, nil, `--prefix "a}": holds '{' or '}'`},
		{"long prefix", []string{"watch", "--redis", url, "--prefix", strings.Repeat("p", 257)}, nil, "is 257 bytes, longer than 256"},
		// Issue 16: a port that is not a number blamed the password.
		{"bad port", []string{"list", "--redis", "redis://host:notaport"}, nil, `--redis "redis://host:notaport": not a valid URL: invalid port ":notaport" after host`},
		{"bad port with password", []string{"list", "--redis", "redis://u:hunter2@host:notaport"}, nil, `--redis "redis://u:xxxxx@host:notaport": not a valid URL: invalid port ":notaport" after host`},
		{"bad host", []string{"list", "--redis", "redis://[::1"}, nil, `--redis "redis://[::1": not a valid URL: missing ']' in host`},
		{"bad password", []string{"list", "--redis", "redis://u:pa/ss@host:1"}, nil, `--redis "redis://u:xxxxx@host:1": not a valid Redis URL (write special characters of the password as %XX)`},
		{"bad cluster port", []string{"list", "--cluster", "redis://h:port"}, nil, `--cluster entry "redis://h:port": not a valid URL: invalid port ":port" after host`},
		{"bad timeout", []string{"list", "--redis", url, "--timeout", "0s"}, nil, "--timeout 0s: want a positive duration"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := cbctl(t, tt.env, tt.args...)
			assert.Equal(t, exitUsage, out.code, "stderr: %s", out.stderr)
			assert.Empty(t, out.stdout)
			errLines := lines(out.stderr)
			require.NotEmpty(t, errLines)
			assert.Contains(t, errLines[0], tt.want)
			assert.True(t, strings.HasPrefix(errLines[0], "cbctl: "), errLines[0])
			assert.Len(t, errLines, 2, "an error line and a hint")
			assert.Contains(t, errLines[len(errLines)-1], "--help' for usage")
			assert.NotContains(t, out.stderr, "hunter2")
			if !strings.Contains(tt.want, "password") {
				assert.NotContains(t, out.stderr, "password", "blames the password")
			}
		})
	}
}

// TestNoArgumentsIsMissingCommand: run reads only the arguments it is
// given. cobra reads the process's own when given nil, so "no command" once
// depended on how the test binary was started: a test binary run with
// "-test.run X" (two words) made X the command.
func TestNoArgumentsIsMissingCommand(t *testing.T) {
	saved := os.Args
	t.Cleanup(func() { os.Args = saved })
	os.Args = []string{saved[0], "version"}
	for _, args := range [][]string{nil, {}} {
		out := cbctl(t, nil, args...)
		assert.Equal(t, exitUsage, out.code, "%#v: stdout %q", args, out.stdout)
		assert.Empty(t, out.stdout, "%#v", args)
		assert.Contains(t, out.stderr, "missing command", "%#v", args)
	}
}

func TestHelpAndVersionExitZero(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"help"}, {"list", "--help"}, {"open", "-h"}} {
		out := cbctl(t, nil, args...)
		assert.Equal(t, exitOK, out.code, "%v: %s", args, out.stderr)
		assert.Contains(t, out.stdout, "Usage:", "%v", args)
		assert.Empty(t, out.stderr, "%v", args)
	}
	out := cbctl(t, nil, "version")
	assert.Equal(t, exitOK, out.code)
	assert.Regexp(t, `^cbctl \S+ \(go[^)]+\)\n$`, out.stdout)
}

// TestMutationHelp is issue 16's report: reset --help said its reason was
// "kept with the override", which reset removes; the apply script keeps a
// reset's actor and reason nowhere and publishes neither.
func TestMutationHelp(t *testing.T) {
	out := cbctl(t, nil, "reset", "--help")
	require.Equal(t, exitOK, out.code, out.stderr)
	assert.NotContains(t, out.stdout, "kept with the override")
	assert.Contains(t, out.stdout, "why, printed in cbctl's confirmation line only: reset removes the override, stores no reason and publishes none")
	assert.Contains(t, out.stdout, "who gives the command, printed in the confirmation line only")
	assert.NotContains(t, out.stdout, "--for")
	for _, cmd := range []string{"open", "close"} {
		out := cbctl(t, nil, cmd, "--help")
		require.Equal(t, exitOK, out.code, out.stderr)
		assert.Contains(t, out.stdout, "why: stored with the override, shown by get and list until it ends", cmd)
		assert.Contains(t, out.stdout, "who gives the command, stored with the override", cmd)
		assert.Contains(t, out.stdout, "--for", cmd)
	}
}

func TestHelpNeverShowsRedisURL(t *testing.T) {
	out := cbctl(t, map[string]string{"REDIS_URL": "redis://u:hunter2@localhost:1"}, "list", "--help")
	require.Equal(t, exitOK, out.code)
	assert.NotContains(t, out.stdout+out.stderr, "hunter2")
}

// TestUnreachableRedisIsOneLineFailure: a refused connection is one line
// that names the target and the cause. go-redis retries a refused dial
// (4 tries of 5 dials 100ms apart: about 1.7s) before it gives up, so the
// default --timeout (10s) is kept: under a shorter one a busy machine
// reports the timeout instead (a 2s timeout did, 1 run in 20 under -race).
func TestUnreachableRedisIsOneLineFailure(t *testing.T) {
	url := "redis://" + unusedAddr(t)
	for _, args := range [][]string{
		{"list"}, {"get", "payments"}, {"reset", "payments"},
		{"open", "payments", "--reason", "r"}, {"watch"},
	} {
		out := cbctl(t, nil, append(args, "--redis", url)...)
		assert.Equal(t, exitFailure, out.code, "%v", args)
		assert.Empty(t, out.stdout, "%v", args)
		errLines := lines(out.stderr)
		require.Len(t, errLines, 1, "%v: %q", args, out.stderr)
		assert.Contains(t, errLines[0], url, "%v: names the target", args)
		assert.Contains(t, errLines[0], "connection refused", "%v", args)
	}
}
