package redisserver

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// SentinelMasterName is the name under which the Sentinels of
// [StartSentinel] monitor the master (redis.FailoverOptions.MasterName).
const SentinelMasterName = "tripline"

// Sentinel timings. down-after-milliseconds and failover-timeout are set in
// each Sentinel's config; the periods (SENTINEL DEBUG, Redis 7.0+) replace
// the defaults of 10s (INFO to replicas), 2s (hello messages; a demoted
// master is reconfigured 4 periods after it was seen still claiming to be
// master) and 1s (asking the other Sentinels whether the master is down).
// With them a SENTINEL FAILOVER switches in about 1s and an unreachable
// master is replaced in 2-4s.
const (
	sentinelDownAfter       = time.Second
	sentinelFailoverTimeout = 3 * time.Second
	sentinelPeriod          = 200 * time.Millisecond
	// sentinelTiltPeriod replaces TILT's 30s: a Sentinel that sees its
	// timer jump (a starved machine) stops acting for this long.
	sentinelTiltPeriod = time.Second
)

// Sentinel is a master, its replicas and the Redis Sentinels that monitor
// them, started by [StartSentinel]. Which server is the master changes on
// failover: ask [Sentinel.Master].
type Sentinel struct {
	t         testing.TB
	pass      string    // AdminUser's password on every server and Sentinel
	servers   []*Server // the master at start, then the replicas
	sentinels []*Server
	paused    []*Server // replicas cut off by PauseReplication
}

// StartSentinel starts a master and replicas replica servers (each with
// "replicaof" the master in its config) and sentinels Sentinel processes
// (`redis-server <conf> --sentinel`, each with a config file of its own that
// it rewrites) monitoring the master as [SentinelMasterName] with quorum
// sentinels/2+1, down-after-milliseconds 1000 and failover-timeout 3000. It
// waits until [Sentinel.WaitHealthy] holds. opts apply to the master and the
// replicas, not to the Sentinels. Every process is stopped by t.Cleanup
// (Sentinels first). replicas and sentinels must be at least 1. The test
// fails (never skips) when redis-server is missing or the setup does not
// become healthy within the start timeout (default 30s).
//
// The short periods are set with SENTINEL DEBUG, which needs Redis 7.0 or
// later; on older servers the test fails.
//
// Every server and Sentinel shares one [AdminUser] password: replicas use it
// to reach their master, the Sentinels to reach the servers and each other.
// Clients use the default user (no password), as on any [Server].
//
// A server restarted with [Server.Restart] reads its config file, which
// Sentinel may have rewritten (it sends CONFIG REWRITE with every
// REPLICAOF): a killed master comes back as an empty master and Sentinel
// turns it into a replica of the new one about a second later.
func StartSentinel(t testing.TB, replicas, sentinels int, opts ...Option) *Sentinel {
	t.Helper()
	if replicas < 1 {
		t.Fatalf("redisserver: StartSentinel: need at least 1 replica to fail over to, got %d", replicas)
	}
	if sentinels < 1 {
		t.Fatalf("redisserver: StartSentinel: need at least 1 Sentinel, got %d", sentinels)
	}
	cfg, err := newConfig(opts)
	if err != nil {
		t.Fatalf("redisserver: %v", err)
	}
	cfg.adminPass = randomPassword()
	bin := lookPath(t, "redis-server")
	s := &Sentinel{t: t, pass: cfg.adminPass}

	master, err := start(t, bin, cfg)
	if err != nil {
		t.Fatalf("redisserver: StartSentinel: master: %v", err)
	}
	s.servers = append(s.servers, master)
	rcfg := *cfg
	rcfg.lines = append(slices.Clone(cfg.lines), "replicaof 127.0.0.1 "+strconv.Itoa(master.Port()))
	for i := range replicas {
		r, err := start(t, bin, &rcfg)
		if err != nil {
			t.Fatalf("redisserver: StartSentinel: replica %d of %d: %v", i+1, replicas, err)
		}
		s.servers = append(s.servers, r)
	}

	// The sentinel binary is redis-server with --sentinel after the config
	// file; start runs "<bin> <config>", so bin is a script that execs
	// redis-server with the flag (same pid, and the process is still named
	// redis-server, so .ci/redis-leftovers.sh sees it).
	wrapper := filepath.Join(t.TempDir(), "redis-sentinel.sh")
	script := "#!/bin/sh\nexec " + shellQuote(bin) + " \"$@\" --sentinel\n"
	if err := os.WriteFile(wrapper, []byte(script), 0o700); err != nil {
		t.Fatalf("redisserver: StartSentinel: %v", err)
	}
	n := SentinelMasterName
	scfg := &config{
		startTimeout: cfg.startTimeout,
		stopTimeout:  cfg.stopTimeout,
		nodeTimeout:  cfg.nodeTimeout,
		adminPass:    cfg.adminPass,
		lines: []string{
			fmt.Sprintf("sentinel monitor %s 127.0.0.1 %d %d", n, master.Port(), sentinels/2+1),
			fmt.Sprintf("sentinel down-after-milliseconds %s %d", n, sentinelDownAfter.Milliseconds()),
			fmt.Sprintf("sentinel failover-timeout %s %d", n, sentinelFailoverTimeout.Milliseconds()),
			fmt.Sprintf("sentinel auth-user %s %s", n, AdminUser),
			fmt.Sprintf("sentinel auth-pass %s %s", n, cfg.adminPass),
			"sentinel sentinel-user " + AdminUser,
			"sentinel sentinel-pass " + cfg.adminPass,
		},
	}
	for i := range sentinels {
		sn, err := start(t, wrapper, scfg)
		if err != nil {
			t.Fatalf("redisserver: StartSentinel: Sentinel %d of %d: %v", i+1, sentinels, err)
		}
		s.sentinels = append(s.sentinels, sn)
		ms := strconv.FormatInt(sentinelPeriod.Milliseconds(), 10)
		if _, err := sn.Do(context.Background(), "SENTINEL", "DEBUG",
			"info-period", ms, "publish-period", ms, "ask-period", ms,
			"tilt-period", strconv.FormatInt(sentinelTiltPeriod.Milliseconds(), 10)); err != nil {
			t.Fatalf("redisserver: StartSentinel: SENTINEL DEBUG on %s (Redis 7.0+ needed): %v", sn.Addr(), err)
		}
	}
	s.WaitHealthy(cfg.clusterTimeout())
	return s
}

// shellQuote quotes v for /bin/sh.
func shellQuote(v string) string {
	return "'" + strings.ReplaceAll(v, "'", `'\''`) + "'"
}

// MasterName returns [SentinelMasterName].
func (s *Sentinel) MasterName() string { return SentinelMasterName }

// Servers returns the master and replicas in start order (the master at
// start first; roles change on failover).
func (s *Sentinel) Servers() []*Server { return slices.Clone(s.servers) }

// Sentinels returns the Sentinel processes, in start order.
func (s *Sentinel) Sentinels() []*Server { return slices.Clone(s.sentinels) }

// SentinelAddrs returns the address of every Sentinel, for
// redis.FailoverOptions.SentinelAddrs (or UniversalOptions.Addrs with
// MasterName set).
func (s *Sentinel) SentinelAddrs() []string {
	out := make([]string, len(s.sentinels))
	for i, sn := range s.sentinels {
		out[i] = sn.Addr()
	}
	return out
}

// Master returns the server that the first running, not stopped Sentinel
// reports as master (SENTINEL GET-MASTER-ADDR-BY-NAME). It fails the test
// when no Sentinel answers or the address is not one of the servers. During
// a failover the answer may be the old master.
func (s *Sentinel) Master() *Server {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, sn := range s.sentinels {
		if !sn.live() {
			continue
		}
		srv, err := s.masterPer(ctx, sn)
		if err != nil {
			s.t.Fatalf("redisserver: %v", err)
		}
		return srv
	}
	s.t.Fatalf("redisserver: Sentinel.Master: no Sentinel is running")
	return nil
}

// MasterAddr returns the address of [Sentinel.Master].
func (s *Sentinel) MasterAddr() string {
	s.t.Helper()
	return s.Master().Addr()
}

// masterPer asks Sentinel sn which server is the master.
func (s *Sentinel) masterPer(ctx context.Context, sn *Server) (*Server, error) {
	v, err := sn.doCtx(ctx, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", SentinelMasterName)
	if err != nil {
		return nil, fmt.Errorf("SENTINEL GET-MASTER-ADDR-BY-NAME on %s: %w", sn.Addr(), err)
	}
	a, _ := v.([]any)
	if len(a) != 2 {
		return nil, fmt.Errorf("SENTINEL GET-MASTER-ADDR-BY-NAME on %s: unexpected reply %v", sn.Addr(), v)
	}
	host, _ := a[0].(string)
	port, _ := a[1].(string)
	for _, srv := range s.servers {
		if strconv.Itoa(srv.Port()) == port && (host == "127.0.0.1" || host == "localhost") {
			return srv, nil
		}
	}
	return nil, fmt.Errorf("Sentinel %s reports master %s:%s, which is not a server of this setup", sn.Addr(), host, port)
}

// Replicas returns the running, not stopped servers whose ROLE is slave, in
// start order.
func (s *Sentinel) Replicas() []*Server {
	s.t.Helper()
	var out []*Server
	for _, srv := range s.servers {
		if !srv.live() {
			continue
		}
		role, _, err := roleOf(context.Background(), srv)
		if err != nil {
			s.t.Fatalf("redisserver: %v", err)
		}
		if role == "slave" {
			out = append(out, srv)
		}
	}
	return out
}

// roleOf returns srv's ROLE and, for a replica, its master's port.
func roleOf(ctx context.Context, srv *Server) (string, int, error) {
	v, err := srv.doCtx(ctx, "ROLE")
	if err != nil {
		return "", 0, fmt.Errorf("ROLE on %s: %w", srv.Addr(), err)
	}
	a, ok := v.([]any)
	if !ok || len(a) == 0 {
		return "", 0, fmt.Errorf("ROLE on %s: unexpected reply %v", srv.Addr(), v)
	}
	role, _ := a[0].(string)
	if role == "slave" && len(a) > 2 {
		port, _ := a[2].(int64)
		return role, int(port), nil
	}
	return role, 0, nil
}

// Failover sends SENTINEL FAILOVER to the first running, not stopped
// Sentinel (a failover without agreement, as if the master were down; the
// master keeps running and is demoted to a replica once a Sentinel sees it
// still claims to be master, about a second after the switch) and waits as
// [Sentinel.WaitFailover] does. It returns the new master.
//
// Sentinel aborts a failover when it does not see the promoted replica as
// master within failover-timeout (3s), and does not retry one that was
// asked for. On a starved machine another Sentinel can turn the promoted
// replica back into a replica first (4 publish periods after it claimed to
// be master), so Failover asks again while that Sentinel still reports the
// old master once failover-timeout and a second have passed.
func (s *Sentinel) Failover(timeout time.Duration) *Server {
	s.t.Helper()
	old := s.Master()
	deadline := time.Now().Add(timeout)
	for {
		s.requestFailover(old, deadline)
		again := time.Now().Add(sentinelFailoverTimeout + time.Second)
		for {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			m, err := s.switched(ctx, old)
			cancel()
			if err == nil {
				return m
			}
			if time.Now().After(deadline) {
				s.t.Fatalf("redisserver: no failover from %s within %v: %v", old.Addr(), timeout, err)
			}
			if time.Now().After(again) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// requestFailover sends SENTINEL FAILOVER to the first running, not stopped
// Sentinel, unless that Sentinel reports a master other than old already
// (a failover that is ending). A failover in progress (INPROG) is left to
// end; NOGOODSLAVE (no replica looked fit yet: its INFO too old) is asked
// again until deadline.
func (s *Sentinel) requestFailover(old *Server, deadline time.Time) {
	s.t.Helper()
	for {
		sn := s.firstLiveSentinel()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if m, err := s.masterPer(ctx, sn); err == nil && m != old {
			cancel()
			return
		}
		_, err := sn.doCtx(ctx, "SENTINEL", "FAILOVER", SentinelMasterName)
		cancel()
		if err == nil || strings.HasPrefix(err.Error(), "INPROG") {
			return
		}
		if !strings.HasPrefix(err.Error(), "NOGOODSLAVE") || time.Now().After(deadline) {
			s.t.Fatalf("redisserver: SENTINEL FAILOVER on %s: %v", sn.Addr(), err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *Sentinel) firstLiveSentinel() *Server {
	s.t.Helper()
	for _, sn := range s.sentinels {
		if sn.live() {
			return sn
		}
	}
	s.t.Fatalf("redisserver: no Sentinel is running")
	return nil
}

// WaitFailover polls (every 20ms) until every running, not stopped Sentinel
// reports the same master, other than old, and that server answers ROLE
// master. It returns that server; it fails the test after timeout. Use it
// after killing or stopping the master ([Server.Kill], [Server.Stop]):
// Sentinel notices in down-after-milliseconds (1s) and promotes a replica
// within a few seconds more.
func (s *Sentinel) WaitFailover(old *Server, timeout time.Duration) *Server {
	s.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		m, err := s.switched(ctx, old)
		cancel()
		if err == nil {
			return m
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("redisserver: no failover from %s within %v: %v", old.Addr(), timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// switched returns the new master if every live Sentinel reports the same
// one, other than old, and it answers ROLE master.
func (s *Sentinel) switched(ctx context.Context, old *Server) (*Server, error) {
	m, err := s.agreedMaster(ctx)
	if err != nil {
		return nil, err
	}
	if m == old {
		return nil, fmt.Errorf("the Sentinels still report %s", old.Addr())
	}
	if !m.live() {
		return nil, fmt.Errorf("the Sentinels report %s, which is not running", m.Addr())
	}
	role, _, err := roleOf(ctx, m)
	if err != nil {
		return nil, err
	}
	if role != "master" {
		return nil, fmt.Errorf("the Sentinels report %s, whose ROLE is %s", m.Addr(), role)
	}
	return m, nil
}

// agreedMaster returns the master every live Sentinel reports.
func (s *Sentinel) agreedMaster(ctx context.Context) (*Server, error) {
	var m *Server
	for _, sn := range s.sentinels {
		if !sn.live() {
			continue
		}
		got, err := s.masterPer(ctx, sn)
		if err != nil {
			return nil, err
		}
		if m != nil && got != m {
			return nil, fmt.Errorf("Sentinels disagree: %s and %s", m.Addr(), got.Addr())
		}
		m = got
	}
	if m == nil {
		return nil, errors.New("no Sentinel is running")
	}
	return m, nil
}

// WaitHealthy polls (every 50ms) until every running, not stopped Sentinel
// reports the same master, that server answers ROLE master, every other
// running, not stopped server is its replica with the link up, and every
// Sentinel sees the master as plain "master" (no s_down, o_down or failover
// in progress), knows every other live Sentinel and sees every live replica
// as plain "slave" with its link ok. So after a failover it also waits for
// the old master to be demoted (or, restarted, to rejoin). It fails the test
// after timeout with the last reason.
func (s *Sentinel) WaitHealthy(timeout time.Duration) {
	s.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := s.health(ctx)
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("redisserver: Sentinel setup not healthy after %v: %v", timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *Sentinel) health(ctx context.Context) error {
	m, err := s.agreedMaster(ctx)
	if err != nil {
		return err
	}
	if !m.live() {
		return fmt.Errorf("the Sentinels report %s, which is not running", m.Addr())
	}
	role, _, err := roleOf(ctx, m)
	if err != nil {
		return err
	}
	if role != "master" {
		return fmt.Errorf("the Sentinels report %s, whose ROLE is %s", m.Addr(), role)
	}
	var replicas []*Server
	for _, srv := range s.servers {
		if srv == m || !srv.live() {
			continue
		}
		role, port, err := roleOf(ctx, srv)
		if err != nil {
			return err
		}
		if role != "slave" || port != m.Port() {
			return fmt.Errorf("%s is %s (master port %d), not a replica of %s", srv.Addr(), role, port, m.Addr())
		}
		v, err := srv.doCtx(ctx, "INFO", "replication")
		if err != nil {
			return fmt.Errorf("INFO replication on %s: %w", srv.Addr(), err)
		}
		if st := parseInfo(v)["master_link_status"]; st != "up" {
			return fmt.Errorf("replica %s: master_link_status:%s", srv.Addr(), st)
		}
		replicas = append(replicas, srv)
	}
	var live []*Server
	for _, sn := range s.sentinels {
		if sn.live() {
			live = append(live, sn)
		}
	}
	for _, sn := range live {
		v, err := sn.doCtx(ctx, "SENTINEL", "MASTER", SentinelMasterName)
		if err != nil {
			return fmt.Errorf("SENTINEL MASTER on %s: %w", sn.Addr(), err)
		}
		if f := pairs(v)["flags"]; f != "master" {
			return fmt.Errorf("Sentinel %s sees the master %s as %q", sn.Addr(), m.Addr(), f)
		}
		v, err = sn.doCtx(ctx, "SENTINEL", "SENTINELS", SentinelMasterName)
		if err != nil {
			return fmt.Errorf("SENTINEL SENTINELS on %s: %w", sn.Addr(), err)
		}
		known := map[string]string{}
		for _, e := range list(v) {
			p := pairs(e)
			known[p["port"]] = p["flags"]
		}
		for _, other := range live {
			if other == sn {
				continue
			}
			if f, ok := known[strconv.Itoa(other.Port())]; !ok || f != "sentinel" {
				return fmt.Errorf("Sentinel %s does not see Sentinel %s as healthy (flags %q)", sn.Addr(), other.Addr(), f)
			}
		}
		v, err = sn.doCtx(ctx, "SENTINEL", "REPLICAS", SentinelMasterName)
		if err != nil {
			return fmt.Errorf("SENTINEL REPLICAS on %s: %w", sn.Addr(), err)
		}
		seen := map[string]map[string]string{}
		for _, e := range list(v) {
			p := pairs(e)
			seen[p["port"]] = p
		}
		for _, r := range replicas {
			p := seen[strconv.Itoa(r.Port())]
			if p == nil || p["flags"] != "slave" || p["master-link-status"] != "ok" {
				return fmt.Errorf("Sentinel %s does not see replica %s as healthy (%v)", sn.Addr(), r.Addr(), p)
			}
		}
	}
	return nil
}

// list returns a reply as an array ([] for anything else).
func list(v any) []any {
	a, _ := v.([]any)
	return a
}

// pairs reads a flat array of field, value, ... (a Sentinel's description
// of an instance) into a map.
func pairs(v any) map[string]string {
	a := list(v)
	out := make(map[string]string, len(a)/2)
	for i := 0; i+1 < len(a); i += 2 {
		k, _ := a[i].(string)
		val, _ := a[i+1].(string)
		out[k] = val
	}
	return out
}

// PauseReplication cuts every running, not stopped replica off the current
// master, as if replication lagged: each gets a wrong masterauth and its
// link is closed (CLIENT KILL TYPE master), so it cannot reconnect. It
// returns once the master has no replica connected and every replica's link
// is down. Writes the master acknowledges from then on reach no replica: a
// failover before [Sentinel.ResumeReplication] loses them. Call
// ResumeReplication before Sentinel promotes one of them (Sentinel sends
// CONFIG REWRITE with the promotion, which would keep the wrong password in
// the config file).
func (s *Sentinel) PauseReplication() {
	s.t.Helper()
	if len(s.paused) > 0 {
		s.t.Fatalf("redisserver: PauseReplication: replication is already paused")
	}
	m := s.Master()
	replicas := s.Replicas()
	if len(replicas) == 0 {
		s.t.Fatalf("redisserver: PauseReplication: no replica is running")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s.paused = replicas
	for _, r := range replicas {
		for _, cmd := range [][]string{{"CONFIG", "SET", "masterauth", "paused-" + randomPassword()}, {"CLIENT", "KILL", "TYPE", "master"}} {
			if _, err := r.doCtx(ctx, cmd...); err != nil {
				s.t.Fatalf("redisserver: PauseReplication: %s on %s: %v", strings.Join(cmd[:2], " "), r.Addr(), err)
			}
		}
	}
	for {
		err := s.cutOff(ctx, m, replicas)
		if err == nil {
			return
		}
		select {
		case <-ctx.Done():
			s.t.Fatalf("redisserver: PauseReplication: %v", err)
		case <-time.After(pollInterval):
		}
	}
}

// cutOff returns nil when m has no replica connected and every replica's
// link is down.
func (s *Sentinel) cutOff(ctx context.Context, m *Server, replicas []*Server) error {
	v, err := m.doCtx(ctx, "INFO", "replication")
	if err != nil {
		return fmt.Errorf("INFO replication on %s: %w", m.Addr(), err)
	}
	if n := parseInfo(v)["connected_slaves"]; n != "0" {
		return fmt.Errorf("master %s: connected_slaves:%s", m.Addr(), n)
	}
	for _, r := range replicas {
		v, err := r.doCtx(ctx, "INFO", "replication")
		if err != nil {
			return fmt.Errorf("INFO replication on %s: %w", r.Addr(), err)
		}
		if st := parseInfo(v)["master_link_status"]; st != "down" {
			return fmt.Errorf("replica %s: master_link_status:%s", r.Addr(), st)
		}
	}
	return nil
}

// ResumeReplication gives the replicas that [Sentinel.PauseReplication] cut
// off their password back (those still running); they reconnect within a
// second, to the master of the moment. It does not wait: use
// [Sentinel.WaitHealthy].
func (s *Sentinel) ResumeReplication() {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, r := range s.paused {
		if !r.Running() {
			continue
		}
		if _, err := r.doCtx(ctx, "CONFIG", "SET", "masterauth", s.pass); err != nil {
			s.t.Fatalf("redisserver: ResumeReplication: CONFIG SET on %s: %v", r.Addr(), err)
		}
	}
	s.paused = nil
}

// String describes the setup for test logs.
func (s *Sentinel) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Sentinel %q: servers", SentinelMasterName)
	for _, srv := range s.servers {
		b.WriteString(" " + srv.Addr())
	}
	b.WriteString(", Sentinels")
	for _, sn := range s.sentinels {
		b.WriteString(" " + sn.Addr())
	}
	return b.String()
}
