package redisserver

import (
	"bufio"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// These tests need no redis-server; the ones that start processes are in
// redisserver_integration_test.go (build tag integration).

func TestMissingBinaryFails(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	for _, start := range []struct {
		name, want string
		fn         func(tb testing.TB)
	}{
		{"single", "redis-server not found on PATH", func(tb testing.TB) { StartSingle(tb) }},
		{"cluster", "redis-server not found on PATH", func(tb testing.TB) { StartCluster(tb, 3, 0) }},
		{"sentinel", "redis-server not found on PATH", func(tb testing.TB) { StartSentinel(tb, 1, 1) }},
	} {
		t.Run(start.name, func(t *testing.T) {
			ft := runFake(t, start.fn)
			assert.True(t, ft.failed, "must fail")
			assert.False(t, ft.skipped, "must not skip")
			assert.Contains(t, ft.msg, start.want)
		})
	}
}

func TestBadArgumentsFail(t *testing.T) {
	for _, tc := range []struct {
		name, want string
		fn         func(tb testing.TB)
	}{
		{"two masters", "at least 3 masters", func(tb testing.TB) { StartCluster(tb, 2, 1) }},
		{"negative replicas", "negative", func(tb testing.TB) { StartCluster(tb, 3, -1) }},
		{"line break", "line break", func(tb testing.TB) { StartSingle(tb, WithConfig("maxmemory 1mb\nport 6379")) }},
		{"acl whitespace", "whitespace", func(tb testing.TB) { StartSingle(tb, WithACLUser("app", "pass word", "+@all")) }},
		{"acl empty", "empty", func(tb testing.TB) { StartSingle(tb, WithACLUser("", "p")) }},
		{"acl admin", "harness's own user", func(tb testing.TB) { StartSingle(tb, WithACLUser(AdminUser, "p")) }},
		{"nil certs", "nil certs", func(tb testing.TB) { StartSingle(tb, WithTLS(nil)) }},
		{"start timeout", "not positive", func(tb testing.TB) { StartSingle(tb, WithStartTimeout(0)) }},
		{"stop timeout", "not positive", func(tb testing.TB) { StartSingle(tb, WithStopTimeout(-time.Second)) }},
		{"node timeout", "below 1ms", func(tb testing.TB) { StartCluster(tb, 3, 0, WithClusterNodeTimeout(0)) }},
		{"nil option", "nil Option", func(tb testing.TB) { StartSingle(tb, nil) }},
		{"sentinel without replicas", "at least 1 replica", func(tb testing.TB) { StartSentinel(tb, 0, 1) }},
		{"no sentinels", "at least 1 Sentinel", func(tb testing.TB) { StartSentinel(tb, 1, 0) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ft := runFake(t, tc.fn)
			assert.True(t, ft.failed, "must fail")
			assert.Contains(t, ft.msg, tc.want)
		})
	}
}

func TestConfigFile(t *testing.T) {
	certs := NewTLSCerts(t)
	cfg, err := newConfig([]Option{
		WithConfig("maxmemory 1mb"),
		WithACLUser("app", "pw", "~app:*", "+@read"),
		WithTLS(certs),
		WithClusterNodeTimeout(1500 * time.Millisecond),
	})
	require.NoError(t, err)
	cfg.cluster = true
	s := &Server{cfg: cfg, dir: "/tmp/a b", logPath: "/tmp/a b/redis.log", adminPass: "secret", port: 12345, tlsPort: 12346}
	conf := string(s.configFile())
	for _, want := range []string{
		"port 12345\n",
		"bind 127.0.0.1\n",
		"save \"\"\n",
		"appendonly no\n",
		"dir \"/tmp/a b\"\n",
		"logfile \"/tmp/a b/redis.log\"\n",
		"user redisserver-admin on >secret ~* &* +@all\n",
		"masterauth secret\n",
		"tls-port 12346\n",
		"tls-cert-file " + certs.CertFile + "\n",
		"tls-auth-clients no\n",
		"cluster-enabled yes\n",
		"cluster-node-timeout 1500\n",
		"maxmemory 1mb\n",
		"user app on >pw ~app:* +@read\n",
	} {
		assert.Contains(t, conf, want)
	}
	// Caller lines come last, so they win.
	assert.True(t, strings.HasSuffix(conf, "user app on >pw ~app:* +@read\n"), conf)
}

func TestQuoteConf(t *testing.T) {
	for in, want := range map[string]string{
		"/tmp/x":   "/tmp/x",
		"":         `""`,
		"/tmp/a b": `"/tmp/a b"`,
		`a"b`:      `"a\"b"`,
		`a\b`:      `"a\\b"`,
		"/tmp/日本":  "/tmp/日本",
	} {
		assert.Equal(t, want, quoteConf(in), "quoteConf(%q)", in)
	}
}

func TestReservePort(t *testing.T) {
	seen := map[int]bool{}
	for range 50 {
		p, err := reservePort(true)
		require.NoError(t, err)
		assert.GreaterOrEqual(t, p, portLow)
		assert.Less(t, p, portHigh)
		assert.False(t, seen[p], "port %d handed out twice", p)
		seen[p] = true
	}
	for p := range seen {
		releasePort(p)
	}
	portMu.Lock()
	defer portMu.Unlock()
	assert.Empty(t, reserved)
}

func TestReadReply(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want any
	}{
		{"+OK\r\n", "OK"},
		{"-ERR bad\r\n", ReplyError("ERR bad")},
		{":42\r\n", int64(42)},
		{"$3\r\nfoo\r\n", "foo"},
		{"$0\r\n\r\n", ""},
		{"$-1\r\n", nil},
		{"*-1\r\n", nil},
		{"*3\r\n:1\r\n$1\r\na\r\n*1\r\n-E x\r\n", []any{int64(1), "a", []any{ReplyError("E x")}}},
		{"$5\r\na\r\nbc\r\n", "a\r\nbc"},
	} {
		got, err := readReply(bufio.NewReader(strings.NewReader(tc.in)))
		require.NoError(t, err, "%q", tc.in)
		assert.Equal(t, tc.want, got, "%q", tc.in)
	}
	for _, bad := range []string{"", "+OK\n", ":x\r\n", "$-2\r\n", "$99999999999\r\n", "$3\r\nab", "$2\r\nabcd", "*2\r\n:1\r\n", "%1\r\n"} {
		_, err := readReply(bufio.NewReader(strings.NewReader(bad)))
		assert.Error(t, err, "%q", bad)
	}
	assert.Equal(t, "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n", string(encodeCommand([]string{"GET", "k"})))
}

func TestParseClusterNodes(t *testing.T) {
	const reply = `07c37dfeb235213a872192d90877d0cd55635b91 127.0.0.1:30004@31004,host-a slave e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 0 1426238317239 4 connected
67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1 127.0.0.1:30002@31002 master - 0 1426238316232 2 connected 5461-10922
e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 127.0.0.1:30001@31001 myself,master - 0 0 1 connected 0-5460 [5461->-67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1]
292f8b365bb7edb5e285caf0b7e6ddc7265d2f4f 127.0.0.1:30003@31003 master,fail - 0 1426238318243 3 connected 10923-16382 16383
`
	view, err := parseClusterNodes(reply)
	require.NoError(t, err)
	require.Len(t, view, 4)
	assert.Equal(t, 30004, view[0].port)
	assert.True(t, view[0].has("slave"))
	assert.Empty(t, view[0].slots)
	assert.Equal(t, [][2]int{{5461, 10922}}, view[1].slots)
	assert.True(t, view[2].has("myself"))
	assert.Equal(t, [][2]int{{0, 5460}}, view[2].slots)
	assert.True(t, view[3].has("fail"))
	assert.Equal(t, [][2]int{{10923, 16382}, {16383, 16383}}, view[3].slots)

	_, err = parseClusterNodes("abc 127.0.0.1:1@2 master")
	assert.Error(t, err)
	_, err = parseClusterNodes("a 127.0.0.1:1@2 master - 0 0 1 connected x-y")
	assert.Error(t, err)
}

func TestParseInfo(t *testing.T) {
	got := parseInfo("# Cluster\r\ncluster_state:ok\r\ncluster_slots_ok:16384\r\n")
	assert.Equal(t, map[string]string{"cluster_state": "ok", "cluster_slots_ok": "16384"}, got)
}

func TestNewTLSCerts(t *testing.T) {
	c := NewTLSCerts(t)
	for _, f := range []string{c.CAFile, c.CertFile, c.KeyFile, c.ClientCertFile, c.ClientKeyFile} {
		assert.FileExists(t, f)
	}
	srv, err := loadCert(c.CertFile)
	require.NoError(t, err)
	_, err = srv.Verify(x509.VerifyOptions{Roots: c.CAPool, DNSName: "127.0.0.1"})
	assert.NoError(t, err)
	_, err = srv.Verify(x509.VerifyOptions{Roots: c.CAPool, DNSName: "localhost"})
	assert.NoError(t, err)
	cli := c.ClientCert.Leaf
	require.NotNil(t, cli)
	_, err = cli.Verify(x509.VerifyOptions{Roots: c.CAPool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	assert.NoError(t, err)
	cfg := c.ClientConfig()
	assert.Equal(t, "127.0.0.1", cfg.ServerName)
	assert.Same(t, c.CAPool, cfg.RootCAs)
}

// fakeTB records Fatalf and Skip instead of ending the real test.
type fakeTB struct {
	testing.TB
	failed, skipped bool
	msg             string
	cleanups        []func()
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.failed = true
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}
func (f *fakeTB) Skip(...any)          { f.skipped = true; runtime.Goexit() }
func (f *fakeTB) Skipf(string, ...any) { f.skipped = true; runtime.Goexit() }
func (f *fakeTB) SkipNow()             { f.skipped = true; runtime.Goexit() }
func (f *fakeTB) Cleanup(fn func())    { f.cleanups = append(f.cleanups, fn) }

// runFake runs fn with a fakeTB on its own goroutine (Fatalf ends it with
// runtime.Goexit) and then runs the cleanups fn registered.
func runFake(t *testing.T, fn func(tb testing.TB)) *fakeTB {
	ft := &fakeTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(ft)
	}()
	<-done
	for i := len(ft.cleanups) - 1; i >= 0; i-- {
		ft.cleanups[i]()
	}
	return ft
}

func loadCert(path string) (*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, fmt.Errorf("%s: no PEM block", path)
	}
	return x509.ParseCertificate(blk.Bytes)
}
