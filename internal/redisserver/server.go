package redisserver

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// AdminUser is the ACL user that every server gets for the harness's own
// connections; it has every right and a random password ([Server.Admin]).
const AdminUser = "redisserver-admin"

const (
	defaultStartTimeout   = 10 * time.Second
	defaultClusterTimeout = 30 * time.Second
	defaultStopTimeout    = 5 * time.Second
	defaultNodeTimeout    = time.Second
	pollInterval          = 10 * time.Millisecond
	startAttempts         = 5  // port races with other processes
	logTailLines          = 30 // lines of redis.log shown on failure
	killWait              = 10 * time.Second
)

// Option configures the servers started by [StartSingle] and [StartCluster].
type Option func(*config)

type config struct {
	lines        []string  // extra config lines, in the order given
	tls          *TLSCerts // nil: no TLS port
	startTimeout time.Duration
	stopTimeout  time.Duration
	nodeTimeout  time.Duration
	err          error // first invalid option

	// Set by StartCluster, not by options.
	cluster   bool
	adminPass string // shared by every node of a cluster
}

func newConfig(opts []Option) (*config, error) {
	c := &config{stopTimeout: defaultStopTimeout, nodeTimeout: defaultNodeTimeout}
	for _, o := range opts {
		if o == nil {
			return nil, errors.New("nil Option")
		}
		o(c)
	}
	if c.err != nil {
		return nil, c.err
	}
	return c, nil
}

func (c *config) fail(err error) {
	if c.err == nil {
		c.err = err
	}
}

// WithConfig appends lines to the server's config file, after the
// package's own lines, so they win where both set a directive. Each line is
// one redis.conf directive written as in redis.conf, e.g. "maxmemory 10mb",
// "maxmemory-policy allkeys-lru", "requirepass secret", "user default off".
// A line must not contain a line break.
func WithConfig(lines ...string) Option {
	return func(c *config) {
		for _, l := range lines {
			if strings.ContainsAny(l, "\r\n") {
				c.fail(fmt.Errorf("WithConfig: line %q contains a line break", l))
				return
			}
			c.lines = append(c.lines, l)
		}
	}
}

// WithACLUser adds the ACL user name with password and rules, i.e. the
// config line "user <name> on ><password> <rules...>". The caller supplies
// every rule, e.g. "~app:*", "&app:*", "+@read", "+evalsha", "-@dangerous".
// Name, password and rules must be non-empty and contain no whitespace.
func WithACLUser(name, password string, rules ...string) Option {
	return func(c *config) {
		words := append([]string{name, password}, rules...)
		for _, w := range words {
			if w == "" || strings.ContainsAny(w, " \t\r\n") {
				c.fail(fmt.Errorf("WithACLUser(%q): empty word or whitespace in name, password or rule %q", name, w))
				return
			}
		}
		if name == AdminUser {
			c.fail(fmt.Errorf("WithACLUser: %q is the harness's own user", name))
			return
		}
		c.lines = append(c.lines, "user "+name+" on >"+password+" "+strings.Join(rules, " "))
	}
}

// WithTLS gives the server a TLS port ([Server.TLSAddr]) next to its plain
// port, with the certificate made by [NewTLSCerts] and tls-auth-clients no.
// The plain port stays open (the harness uses it). For TLS between cluster
// nodes add WithConfig("tls-cluster yes", "tls-replication yes").
func WithTLS(certs *TLSCerts) Option {
	return func(c *config) {
		if certs == nil {
			c.fail(errors.New("WithTLS: nil certs"))
			return
		}
		c.tls = certs
	}
}

// WithStartTimeout sets how long to wait for a server to answer PING
// (default 10s) and for a cluster to become healthy (default 30s).
func WithStartTimeout(d time.Duration) Option {
	return func(c *config) {
		if d <= 0 {
			c.fail(fmt.Errorf("WithStartTimeout: %v is not positive", d))
			return
		}
		c.startTimeout = d
	}
}

// WithStopTimeout sets how long cleanup waits after SIGTERM before it sends
// SIGKILL (default 5s).
func WithStopTimeout(d time.Duration) Option {
	return func(c *config) {
		if d <= 0 {
			c.fail(fmt.Errorf("WithStopTimeout: %v is not positive", d))
			return
		}
		c.stopTimeout = d
	}
}

// WithClusterNodeTimeout sets cluster-node-timeout for [StartCluster]
// (default 1s, so a killed master is failed over within a few seconds).
// [StartSingle] ignores it.
func WithClusterNodeTimeout(d time.Duration) Option {
	return func(c *config) {
		if d < time.Millisecond {
			c.fail(fmt.Errorf("WithClusterNodeTimeout: %v is below 1ms", d))
			return
		}
		c.nodeTimeout = d
	}
}

func (c *config) pingTimeout() time.Duration {
	if c.startTimeout > 0 {
		return c.startTimeout
	}
	return defaultStartTimeout
}

func (c *config) clusterTimeout() time.Duration {
	if c.startTimeout > 0 {
		return c.startTimeout
	}
	return defaultClusterTimeout
}

// Server is one redis-server process started by this package.
type Server struct {
	t         testing.TB
	cfg       *config
	bin       string
	dir       string
	confPath  string
	logPath   string
	outPath   string
	adminPass string

	mu      sync.Mutex
	port    int
	tlsPort int
	proc    *process // nil when not running
}

// process is one run of redis-server.
type process struct {
	cmd     *exec.Cmd
	done    chan struct{} // closed once the process has been reaped
	err     error         // cmd.Wait's result, valid after done
	stopped bool          // SIGSTOP sent and no SIGCONT since; guarded by Server.mu
}

// StartSingle starts one redis-server on a free loopback port, waits until
// it answers PING, and registers a t.Cleanup that stops it. The test fails
// (never skips) when redis-server is not on PATH or does not come up.
func StartSingle(t testing.TB, opts ...Option) *Server {
	t.Helper()
	cfg, err := newConfig(opts)
	if err != nil {
		t.Fatalf("redisserver: %v", err)
	}
	bin := lookPath(t, "redis-server")
	s, err := start(t, bin, cfg)
	if err != nil {
		t.Fatalf("redisserver: %v", err)
	}
	return s
}

// lookPath finds name on PATH or fails the test.
func lookPath(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("redisserver: %s not found on PATH (%v); install it, e.g. with .ci/install-redis.sh (apt-get install redis-server redis-tools)", name, err)
	}
	return p
}

func randomPassword() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b)
}

// start creates the server's directory, registers its cleanup and launches
// it, picking new ports when another process took the chosen one.
func start(t testing.TB, bin string, cfg *config) (*Server, error) {
	dir := t.TempDir() // before t.Cleanup below, so the process stops before the dir goes
	pass := cfg.adminPass
	if pass == "" {
		pass = randomPassword()
	}
	s := &Server{
		t:         t,
		cfg:       cfg,
		bin:       bin,
		dir:       dir,
		confPath:  filepath.Join(dir, "redis.conf"),
		logPath:   filepath.Join(dir, "redis.log"),
		outPath:   filepath.Join(dir, "stdout.log"),
		adminPass: pass,
	}
	t.Cleanup(s.cleanup)
	var lastErr error
	for range startAttempts {
		if err := s.pickPorts(); err != nil {
			return nil, err
		}
		if err := os.WriteFile(s.confPath, s.configFile(), 0o600); err != nil {
			return nil, err
		}
		// A node that lost a port race must not keep the nodes.conf it wrote.
		if err := os.Remove(filepath.Join(dir, "nodes.conf")); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
		err := s.launch()
		if err == nil {
			return s, nil
		}
		lastErr = err
		if !errors.Is(err, errPortInUse) {
			return nil, err
		}
		s.releasePorts()
	}
	return nil, fmt.Errorf("gave up after %d port collisions: %w", startAttempts, lastErr)
}

// reserve is reservePort; tests replace it to force a port collision.
var reserve = reservePort

func (s *Server) pickPorts() error {
	p, err := reserve(s.cfg.cluster)
	if err != nil {
		return err
	}
	tp := 0
	if s.cfg.tls != nil {
		if tp, err = reserve(false); err != nil {
			releasePort(p)
			return err
		}
	}
	s.mu.Lock()
	s.port, s.tlsPort = p, tp
	s.mu.Unlock()
	return nil
}

func (s *Server) releasePorts() {
	s.mu.Lock()
	p, tp := s.port, s.tlsPort
	s.port, s.tlsPort = 0, 0
	s.mu.Unlock()
	releasePort(p)
	releasePort(tp)
}

// configFile renders redis.conf: the package's defaults, then the options'
// lines (later lines win in redis.conf).
func (s *Server) configFile() []byte {
	var b bytes.Buffer
	w := func(format string, a ...any) { fmt.Fprintf(&b, format+"\n", a...) }
	w("# written by github.com/tripline/tripline/internal/redisserver")
	w("port %d", s.port)
	w("bind 127.0.0.1")
	w("daemonize no")
	w(`save ""`)
	w("appendonly no")
	w("dir %s", quoteConf(s.dir))
	w("logfile %s", quoteConf(s.logPath))
	w("shutdown-timeout 0")
	w("enable-debug-command local")
	w("repl-diskless-sync-delay 0")
	w("user %s on >%s ~* &* +@all", AdminUser, s.adminPass)
	w("masteruser %s", AdminUser)
	w("masterauth %s", s.adminPass)
	if c := s.cfg.tls; c != nil {
		w("tls-port %d", s.tlsPort)
		w("tls-cert-file %s", quoteConf(c.CertFile))
		w("tls-key-file %s", quoteConf(c.KeyFile))
		w("tls-ca-cert-file %s", quoteConf(c.CAFile))
		w("tls-auth-clients no")
	}
	if s.cfg.cluster {
		w("cluster-enabled yes")
		w("cluster-config-file %s", quoteConf(filepath.Join(s.dir, "nodes.conf")))
		w("cluster-node-timeout %d", s.cfg.nodeTimeout.Milliseconds())
	}
	for _, l := range s.cfg.lines {
		w("%s", l)
	}
	return b.Bytes()
}

// quoteConf quotes v for redis.conf when it holds characters that would
// split or escape it.
func quoteConf(v string) string {
	if v != "" && !strings.ContainsAny(v, " \t\"'\\") {
		return v
	}
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`)
	return `"` + r.Replace(v) + `"`
}

var errPortInUse = errors.New("port already in use")

// launch starts redis-server with the current config file and waits until it
// answers PING. On failure the process is killed and reaped.
func (s *Server) launch() error {
	logOff := fileSize(s.logPath)
	outOff := fileSize(s.outPath)
	out, err := os.OpenFile(s.outPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(s.bin, s.confPath)
	cmd.Dir = s.dir
	cmd.Stdout = out // an *os.File: exec starts no copying goroutine
	cmd.Stderr = out
	cmd.SysProcAttr = sysProcAttr()
	err = cmd.Start()
	out.Close()
	if err != nil {
		return fmt.Errorf("start %s: %w", s.bin, err)
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	s.mu.Lock()
	s.proc = p
	s.mu.Unlock()

	err = s.waitReady(p)
	if err == nil {
		return nil
	}
	s.mu.Lock()
	s.proc = nil
	s.mu.Unlock()
	_ = s.kill(p)
	logs := readFrom(s.outPath, outOff) + readFrom(s.logPath, logOff)
	if strings.Contains(logs, "already in use") {
		return fmt.Errorf("%s: %w", s.addr(), errPortInUse)
	}
	return fmt.Errorf("redis-server on %s (config %s): %w\n--- output ---\n%s", s.addr(), s.confPath, err, lastLines(logs, logTailLines))
}

// waitReady polls PING (as AdminUser) until it answers PONG, the process
// exits or the start timeout passes.
func (s *Server) waitReady(p *process) error {
	timeout := s.cfg.pingTimeout()
	deadline := time.Now().Add(timeout)
	var lastErr error
	for {
		select {
		case <-p.done:
			return fmt.Errorf("exited during start: %v", p.err)
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 250*time.Millisecond)
		v, err := s.doCtx(ctx, "PING")
		cancel()
		if err == nil && v == "PONG" {
			return nil
		}
		if err == nil {
			err = fmt.Errorf("PING answered %v", v)
		}
		lastErr = err
		if time.Now().After(deadline) {
			return fmt.Errorf("no PONG within %v: %v", timeout, lastErr)
		}
		select {
		case <-p.done:
		case <-time.After(pollInterval):
		}
	}
}

// kill sends SIGKILL to p (in case it still runs) and waits until it is
// reaped.
func (s *Server) kill(p *process) error {
	if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("SIGKILL pid %d: %w", p.cmd.Process.Pid, err)
	}
	select {
	case <-p.done:
		return nil
	case <-time.After(killWait):
		return fmt.Errorf("pid %d not reaped %v after SIGKILL", p.cmd.Process.Pid, killWait)
	}
}

// terminate stops p gracefully: SIGCONT (it may be stopped), SIGTERM, and
// SIGKILL when it has not exited after the stop timeout.
func (s *Server) terminate(p *process) error {
	if sigCont != nil {
		_ = p.cmd.Process.Signal(sigCont)
	}
	if err := p.cmd.Process.Signal(sigTerm); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return s.kill(p)
	}
	select {
	case <-p.done:
		return nil
	case <-time.After(s.cfg.stopTimeout):
		s.t.Logf("redisserver: %s did not exit %v after SIGTERM; sending SIGKILL", s.addr(), s.cfg.stopTimeout)
		return s.kill(p)
	}
}

func (s *Server) cleanup() {
	s.mu.Lock()
	p := s.proc
	s.proc = nil
	s.mu.Unlock()
	if p != nil {
		if err := s.terminate(p); err != nil {
			s.t.Errorf("redisserver: stopping %s: %v", s.addr(), err)
		}
	}
	if s.t.Failed() {
		if tail := lastLines(readFrom(s.outPath, 0)+readFrom(s.logPath, 0), logTailLines); tail != "" {
			s.t.Logf("redisserver: last lines of %s's output (%s):\n%s", s.addr(), s.dir, tail)
		}
	}
	s.releasePorts()
}

// current returns the running process or fails the test.
func (s *Server) current(op string) *process {
	s.t.Helper()
	s.mu.Lock()
	p := s.proc
	s.mu.Unlock()
	if p == nil {
		s.t.Fatalf("redisserver: %s on %s: the server is not running", op, s.addr())
	}
	return p
}

// Addr returns "127.0.0.1:<port>", the plain (non-TLS) address.
func (s *Server) Addr() string { return s.addr() }

func (s *Server) addr() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port()))
}

// Port returns the plain port.
func (s *Server) Port() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.port
}

// TLSAddr returns "127.0.0.1:<tls-port>", or "" when the server was started
// without [WithTLS].
func (s *Server) TLSAddr() string {
	p := s.TLSPort()
	if p == 0 {
		return ""
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(p))
}

// TLSPort returns the TLS port, or 0 without [WithTLS].
func (s *Server) TLSPort() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tlsPort
}

// Pid returns the process id of the running redis-server, or 0 when it is
// not running (killed and not restarted, or stopped by cleanup).
func (s *Server) Pid() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return 0
	}
	return s.proc.cmd.Process.Pid
}

// Running reports whether the process runs (a SIGSTOPped server runs).
func (s *Server) Running() bool { return s.Pid() != 0 }

// live reports whether the server runs and is not SIGSTOPped.
func (s *Server) live() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.proc != nil && !s.proc.stopped
}

// Dir returns the server's directory (config, logs, nodes.conf).
func (s *Server) Dir() string { return s.dir }

// LogPath returns the path of the server's redis.log.
func (s *Server) LogPath() string { return s.logPath }

// Admin returns the harness's ACL user and its password on this server, for
// a test that needs a client with every right while the default user is off.
func (s *Server) Admin() (user, password string) { return AdminUser, s.adminPass }

// String describes the server for test logs.
func (s *Server) String() string {
	return fmt.Sprintf("redis-server %s (pid %d)", s.addr(), s.Pid())
}

// Kill sends SIGKILL and waits until the process is reaped. The port stays
// reserved for [Server.Restart].
func (s *Server) Kill() {
	s.t.Helper()
	p := s.current("Kill")
	s.mu.Lock()
	s.proc = nil
	s.mu.Unlock()
	if err := s.kill(p); err != nil {
		s.t.Fatalf("redisserver: Kill %s: %v", s.addr(), err)
	}
}

// Restart starts a fresh redis-server on the same port(s) with the same
// config and waits until it answers PING. A server that still runs is
// killed (SIGKILL) first. Data is gone (nothing is persisted); a cluster
// node keeps its nodes.conf, so it rejoins the cluster with its old node id
// (as a replica when its slots were failed over meanwhile).
func (s *Server) Restart() {
	s.t.Helper()
	s.mu.Lock()
	p := s.proc
	s.proc = nil
	s.mu.Unlock()
	if p != nil {
		if err := s.kill(p); err != nil {
			s.t.Fatalf("redisserver: Restart %s: %v", s.addr(), err)
		}
	}
	if err := s.launch(); err != nil {
		s.t.Fatalf("redisserver: Restart: %v", err)
	}
}

// Stop sends SIGSTOP: the server keeps its connections but answers nothing
// until [Server.Cont]. Cleanup resumes a stopped server before stopping it.
func (s *Server) Stop() {
	s.t.Helper()
	s.signal("Stop", sigStop, true)
}

// Cont sends SIGCONT to a server stopped by [Server.Stop].
func (s *Server) Cont() {
	s.t.Helper()
	s.signal("Cont", sigCont, false)
}

func (s *Server) signal(op string, sig os.Signal, stopped bool) {
	s.t.Helper()
	if sig == nil {
		s.t.Fatalf("redisserver: %s is not supported on this OS", op)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.proc
	if p == nil {
		s.t.Fatalf("redisserver: %s %s: the server is not running", op, net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)))
	}
	if err := p.cmd.Process.Signal(sig); err != nil {
		s.t.Fatalf("redisserver: %s pid %d: %v", op, p.cmd.Process.Pid, err)
	}
	p.stopped = stopped
}

// Do runs one command as [AdminUser] over a new connection to the plain
// port and returns the reply: a status or bulk string as string, an integer
// as int64, a null as nil, an array as []any; an error reply is returned as a
// [ReplyError] error. Without a deadline in ctx the command gets 5s. Do is
// safe to call from any goroutine.
func (s *Server) Do(ctx context.Context, args ...string) (any, error) {
	return s.doCtx(ctx, args...)
}

func (s *Server) doCtx(ctx context.Context, args ...string) (any, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultCommandTimeout)
		defer cancel()
	}
	c, err := dialResp(ctx, s.addr(), AdminUser, s.adminPass)
	if err != nil {
		return nil, err
	}
	defer c.close()
	return c.do(ctx, args...)
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// readFrom returns the content of path from offset off ("" when missing).
func readFrom(path string, off int64) string {
	b, err := os.ReadFile(path)
	if err != nil || off >= int64(len(b)) {
		return ""
	}
	return string(b[off:])
}

// lastLines returns the last n lines of s.
func lastLines(s string, n int) string {
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return ""
	}
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
