package main

import (
	"net/url"
	"strings"
	"testing"

	"github.com/alicebob/miniredis/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tripline/tripline/internal/redact"
)

func TestParseConn(t *testing.T) {
	spec, err := parseConn("rediss://alice:s3cret@cache.example:6380/2", "", "redis://ignored:1")
	require.NoError(t, err)
	require.NotNil(t, spec.single)
	assert.Equal(t, "cache.example:6380", spec.single.Addr)
	assert.Equal(t, "alice", spec.single.Username)
	assert.Equal(t, "s3cret", spec.single.Password)
	assert.Equal(t, 2, spec.single.DB)
	assert.NotNil(t, spec.single.TLSConfig)
	assert.Equal(t, "rediss://alice:xxxxx@cache.example:6380/2", spec.describe())

	spec, err = parseConn("", "", "redis://:pw@envhost:1")
	require.NoError(t, err)
	assert.Equal(t, "envhost:1", spec.single.Addr)
	assert.Equal(t, "pw", spec.single.Password)

	spec, err = parseConn("", "redis://bob:pw2@n1:7000, n2:7001,n3:7002", "")
	require.NoError(t, err)
	require.NotNil(t, spec.cluster)
	assert.Equal(t, []string{"n1:7000", "n2:7001", "n3:7002"}, spec.cluster.Addrs)
	assert.Equal(t, "bob", spec.cluster.Username)
	assert.Equal(t, "pw2", spec.cluster.Password)
	assert.Equal(t, "cluster redis://bob:xxxxx@n1:7000,n2:7001,n3:7002", spec.describe())
}

// secretForms are the spellings of a password that must never be printed.
func secretForms(pw string) []string {
	return []string{pw, url.QueryEscape(pw), url.PathEscape(pw)}
}

func TestPasswordsNeverPrinted(t *testing.T) {
	const pw = "Sup3r\"S3cr3t/pa ss"
	esc := url.QueryEscape(pw)
	unreachable := unusedAddr(t)

	mr := miniredis.RunT(t)
	mr.RequireUserAuth("alice", "right-password")

	tests := []struct {
		name string
		args []string
		env  map[string]string
		code int
	}{
		{"unreachable --redis", []string{"list", "--redis", "redis://alice:" + esc + "@" + unreachable}, nil, exitFailure},
		{"unreachable REDIS_URL", []string{"get", "x"}, map[string]string{"REDIS_URL": "redis://alice:" + esc + "@" + unreachable}, exitFailure},
		{"unreachable cluster", []string{"list", "--cluster", "redis://alice:" + esc + "@" + unreachable}, nil, exitFailure},
		{"wrong password", []string{"list", "--redis", "redis://alice:" + esc + "@" + mr.Addr()}, nil, exitFailure},
		{"wrong password on watch", []string{"watch", "--redis", "redis://alice:" + esc + "@" + mr.Addr()}, nil, exitFailure},
		{"wrong password on open", []string{"open", "x", "--reason", "r", "--redis", "redis://alice:" + esc + "@" + mr.Addr()}, nil, exitFailure},
		{"bad port", []string{"list", "--redis", "redis://alice:" + esc + "@host:port"}, nil, exitUsage},
		{"bad port raw", []string{"list", "--redis=redis://alice:" + pw + "@host:1"}, nil, exitUsage},
		{"bad db", []string{"list", "--redis", "redis://alice:" + esc + "@host:1/notadb"}, nil, exitUsage},
		{"bad query", []string{"list", "--redis", "redis://alice:" + esc + "@host:1/?bogus=1"}, nil, exitUsage},
		{"bad cluster entry", []string{"list", "--cluster", "redis://alice:" + esc + "@host:x"}, nil, exitUsage},
		{"lone userinfo (a user name to go-redis, hidden anyway)", []string{"list", "--redis", "redis://" + esc + "@" + unreachable}, nil, exitFailure},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := cbctl(t, tt.env, append(tt.args, "--timeout", "2s")...)
			assert.Equal(t, tt.code, out.code, "stderr: %s", out.stderr)
			require.NotEmpty(t, out.stderr)
			for _, form := range append(secretForms(pw), "S3cr3t") {
				assert.NotContains(t, out.stdout+out.stderr, form)
			}
			assert.Contains(t, out.stderr, redact.Mask, "the URL is shown, redacted")
		})
	}
}

func TestRightPasswordWorks(t *testing.T) {
	const pw = "p@ss:w/rd"
	mr := miniredis.RunT(t)
	mr.RequireUserAuth("alice", pw)
	out := cbctl(t, nil, "list", "--redis", "redis://alice:"+url.QueryEscape(pw)+"@"+mr.Addr())
	require.Equal(t, exitOK, out.code, out.stderr)
	assert.Equal(t, "NAME  STATE  FAILURES  GENERATION  PROBE IN  OVERRIDE\n", out.stdout)
	assert.False(t, strings.Contains(out.stdout+out.stderr, "w/rd"))
}
