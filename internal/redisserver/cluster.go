package redisserver

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// clusterSlots is the number of hash slots of a Redis Cluster.
const clusterSlots = 16384

// Cluster is a Redis Cluster of redis-server processes started by
// [StartCluster].
type Cluster struct {
	t     testing.TB
	cfg   *config
	nodes []*Server
}

// StartCluster starts masters*(1+replicasPerMaster) redis-server processes
// with cluster-enabled yes (cluster-node-timeout 1s unless
// [WithClusterNodeTimeout] says otherwise), joins them with
// `redis-cli --cluster create ... --cluster-replicas replicasPerMaster
// --cluster-yes`, and waits until [Cluster.WaitHealthy] holds. Every node is
// stopped by t.Cleanup. masters must be at least 3 (redis-cli refuses
// fewer). The test fails when redis-server or redis-cli is missing or the
// cluster does not become healthy within the start timeout (default 30s).
func StartCluster(t testing.TB, masters, replicasPerMaster int, opts ...Option) *Cluster {
	t.Helper()
	if masters < 3 {
		t.Fatalf("redisserver: StartCluster: Redis Cluster needs at least 3 masters, got %d", masters)
	}
	if replicasPerMaster < 0 {
		t.Fatalf("redisserver: StartCluster: replicasPerMaster %d is negative", replicasPerMaster)
	}
	cfg, err := newConfig(opts)
	if err != nil {
		t.Fatalf("redisserver: %v", err)
	}
	cfg.cluster = true
	cfg.adminPass = randomPassword() // replicas authenticate to masters with it
	bin := lookPath(t, "redis-server")
	cli := lookPath(t, "redis-cli")

	c := &Cluster{t: t, cfg: cfg}
	n := masters * (1 + replicasPerMaster)
	for i := range n {
		s, err := start(t, bin, cfg)
		if err != nil {
			t.Fatalf("redisserver: StartCluster: node %d of %d: %v", i+1, n, err)
		}
		c.nodes = append(c.nodes, s)
	}

	args := []string{"--cluster", "create"}
	args = append(args, c.Addrs()...)
	args = append(args, "--cluster-replicas", strconv.Itoa(replicasPerMaster), "--cluster-yes", "--user", AdminUser)
	ctx, cancel := context.WithTimeout(context.Background(), cfg.clusterTimeout())
	defer cancel()
	cmd := exec.CommandContext(ctx, cli, args...)
	cmd.Env = append(os.Environ(), "REDISCLI_AUTH="+cfg.adminPass) // keeps the password off the command line
	cmd.WaitDelay = time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("redisserver: %s %s: %v\n%s", cli, strings.Join(args, " "), err, out)
	}
	c.WaitHealthy(cfg.clusterTimeout())
	return c
}

// Nodes returns every node in start order (masters and replicas alike; the
// roles are assigned by redis-cli and change on failover: see
// [Cluster.Masters]).
func (c *Cluster) Nodes() []*Server { return slices.Clone(c.nodes) }

// Addrs returns the plain address of every node, in start order. Any of
// them works as a seed for redis.ClusterOptions.Addrs.
func (c *Cluster) Addrs() []string {
	out := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		out[i] = n.Addr()
	}
	return out
}

// MasterAddrs returns the addresses of [Cluster.Masters].
func (c *Cluster) MasterAddrs() []string {
	c.t.Helper()
	var out []string
	for _, n := range c.Masters() {
		out = append(out, n.Addr())
	}
	return out
}

// Masters returns the running, not stopped nodes whose ROLE is master, in
// start order.
func (c *Cluster) Masters() []*Server {
	c.t.Helper()
	var out []*Server
	for _, n := range c.liveNodes() {
		if role, _ := c.role(n); role == "master" {
			out = append(out, n)
		}
	}
	return out
}

// Replicas returns the running, not stopped nodes whose ROLE is slave.
func (c *Cluster) Replicas() []*Server {
	c.t.Helper()
	var out []*Server
	for _, n := range c.liveNodes() {
		if role, _ := c.role(n); role == "slave" {
			out = append(out, n)
		}
	}
	return out
}

// ReplicasOf returns the running, not stopped nodes that replicate master.
func (c *Cluster) ReplicasOf(master *Server) []*Server {
	c.t.Helper()
	var out []*Server
	for _, n := range c.liveNodes() {
		if role, port := c.role(n); role == "slave" && port == master.Port() {
			out = append(out, n)
		}
	}
	return out
}

// role returns n's ROLE ("master" or "slave") and, for a replica, its
// master's port. It fails the test when n does not answer.
func (c *Cluster) role(n *Server) (string, int) {
	c.t.Helper()
	role, port, err := roleOf(context.Background(), n)
	if err != nil {
		c.t.Fatalf("redisserver: %v", err)
	}
	return role, port
}

// MasterForKey returns the node that serves key's hash slot, as seen by the
// first running, not stopped node.
func (c *Cluster) MasterForKey(key string) *Server {
	c.t.Helper()
	live := c.liveNodes()
	if len(live) == 0 {
		c.t.Fatalf("redisserver: MasterForKey: no node is running")
	}
	n := live[0]
	ctx := context.Background()
	v, err := n.Do(ctx, "CLUSTER", "KEYSLOT", key)
	if err != nil {
		c.t.Fatalf("redisserver: CLUSTER KEYSLOT on %s: %v", n.Addr(), err)
	}
	slot, _ := v.(int64)
	view, err := c.nodesView(ctx, n)
	if err != nil {
		c.t.Fatalf("redisserver: %v", err)
	}
	for _, e := range view {
		for _, r := range e.slots {
			if int(slot) >= r[0] && int(slot) <= r[1] {
				if s := c.byPort(e.port); s != nil {
					return s
				}
				c.t.Fatalf("redisserver: slot %d is served by %s, not a node of this cluster", slot, e.addr)
			}
		}
	}
	c.t.Fatalf("redisserver: slot %d of key %q is not served by any node (per %s)", slot, key, n.Addr())
	return nil
}

// WaitHealthy polls (every 50ms) until every running, not stopped node
// reports cluster_state:ok with all 16384 slots ok, every such node knows
// every other one and sees none of them failing, all of them agree on
// which node serves each slot and that node is one of them (so a killed
// master counts as replaced only once its slots moved to a live node), and
// every replica among them has its replication link up. It fails the test
// after timeout with the last reason.
func (c *Cluster) WaitHealthy(timeout time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := c.health(ctx)
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("redisserver: cluster not healthy after %v: %v", timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// WaitReplicated polls until every running, not stopped replica has
// received everything its master had written when WaitReplicated was
// called (slave_repl_offset >= the master's master_repl_offset), so a
// failover after it loses none of those writes. It fails the test after
// timeout.
func (c *Cluster) WaitReplicated(timeout time.Duration) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	type target struct {
		replica *Server
		offset  int64
	}
	var targets []target
	for _, m := range c.Masters() {
		v, err := m.Do(ctx, "INFO", "replication")
		if err != nil {
			c.t.Fatalf("redisserver: INFO replication on %s: %v", m.Addr(), err)
		}
		off, err := strconv.ParseInt(parseInfo(v)["master_repl_offset"], 10, 64)
		if err != nil {
			c.t.Fatalf("redisserver: master_repl_offset of %s: %v", m.Addr(), err)
		}
		for _, r := range c.ReplicasOf(m) {
			targets = append(targets, target{r, off})
		}
	}
	for _, tg := range targets {
		for {
			v, err := tg.replica.Do(ctx, "INFO", "replication")
			var got int64 = -1
			if err == nil {
				got, _ = strconv.ParseInt(parseInfo(v)["slave_repl_offset"], 10, 64)
			}
			if got >= tg.offset {
				break
			}
			select {
			case <-ctx.Done():
				c.t.Fatalf("redisserver: replica %s at offset %d (err %v), master's was %d, after %v", tg.replica.Addr(), got, err, tg.offset, timeout)
			case <-time.After(pollInterval):
			}
		}
	}
}

func (c *Cluster) liveNodes() []*Server {
	var out []*Server
	for _, n := range c.nodes {
		if n.live() {
			out = append(out, n)
		}
	}
	return out
}

func (c *Cluster) byPort(port int) *Server {
	for _, n := range c.nodes {
		if n.Port() == port {
			return n
		}
	}
	return nil
}

// health returns nil when the cluster is healthy as WaitHealthy describes,
// else the first reason it is not.
func (c *Cluster) health(ctx context.Context) error {
	live := c.liveNodes()
	if len(live) == 0 {
		return errors.New("no node is running")
	}
	livePorts := map[int]bool{}
	for _, n := range live {
		livePorts[n.Port()] = true
	}
	var refLayout string
	var refNode *Server
	for _, n := range live {
		v, err := n.doCtx(ctx, "CLUSTER", "INFO")
		if err != nil {
			return fmt.Errorf("CLUSTER INFO on %s: %w", n.Addr(), err)
		}
		info := parseInfo(v)
		if info["cluster_state"] != "ok" {
			return fmt.Errorf("%s: cluster_state:%s", n.Addr(), info["cluster_state"])
		}
		if info["cluster_slots_ok"] != strconv.Itoa(clusterSlots) {
			return fmt.Errorf("%s: cluster_slots_ok:%s", n.Addr(), info["cluster_slots_ok"])
		}
		view, err := c.nodesView(ctx, n)
		if err != nil {
			return err
		}
		seen := map[int]bool{}
		var ranges []string
		covered := 0
		var self *nodeEntry
		for i := range view {
			e := &view[i]
			if e.has("myself") {
				self = e
			}
			if livePorts[e.port] {
				seen[e.port] = true
				for _, f := range []string{"fail", "fail?", "handshake", "noaddr"} {
					if e.has(f) {
						return fmt.Errorf("%s sees %s as %s", n.Addr(), e.addr, f)
					}
				}
			}
			if len(e.slots) == 0 {
				continue
			}
			if !livePorts[e.port] || !e.has("master") {
				return fmt.Errorf("%s sees slots %v served by %s (%s), which is not a live master", n.Addr(), e.slots, e.addr, strings.Join(e.flags, ","))
			}
			for _, r := range e.slots {
				covered += r[1] - r[0] + 1
				ranges = append(ranges, fmt.Sprintf("%d-%d@%d", r[0], r[1], e.port))
			}
		}
		if covered != clusterSlots {
			return fmt.Errorf("%s sees %d of %d slots served", n.Addr(), covered, clusterSlots)
		}
		if len(seen) != len(live) {
			return fmt.Errorf("%s knows %d of the %d live nodes", n.Addr(), len(seen), len(live))
		}
		slices.Sort(ranges)
		layout := strings.Join(ranges, " ")
		if refNode == nil {
			refLayout, refNode = layout, n
		} else if layout != refLayout {
			return fmt.Errorf("%s and %s disagree on the slot layout", refNode.Addr(), n.Addr())
		}
		if self != nil && self.has("slave") {
			v, err := n.doCtx(ctx, "INFO", "replication")
			if err != nil {
				return fmt.Errorf("INFO replication on %s: %w", n.Addr(), err)
			}
			if st := parseInfo(v)["master_link_status"]; st != "up" {
				return fmt.Errorf("replica %s: master_link_status:%s", n.Addr(), st)
			}
		}
	}
	return nil
}

// nodeEntry is one line of CLUSTER NODES.
type nodeEntry struct {
	id    string
	addr  string // ip:port@busport[,hostname]
	port  int
	flags []string
	slots [][2]int // inclusive ranges; migrating/importing markers are skipped
}

func (e *nodeEntry) has(flag string) bool { return slices.Contains(e.flags, flag) }

func (c *Cluster) nodesView(ctx context.Context, n *Server) ([]nodeEntry, error) {
	v, err := n.doCtx(ctx, "CLUSTER", "NODES")
	if err != nil {
		return nil, fmt.Errorf("CLUSTER NODES on %s: %w", n.Addr(), err)
	}
	s, _ := v.(string)
	view, err := parseClusterNodes(s)
	if err != nil {
		return nil, fmt.Errorf("CLUSTER NODES on %s: %w", n.Addr(), err)
	}
	return view, nil
}

// parseClusterNodes parses the reply of CLUSTER NODES:
// <id> <ip:port@cport[,hostname]> <flags> <master> <ping-sent> <pong-recv>
// <config-epoch> <link-state> <slot> <slot> ...
func parseClusterNodes(s string) ([]nodeEntry, error) {
	var out []nodeEntry
	for _, line := range strings.Split(strings.TrimSpace(s), "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 8 {
			return nil, fmt.Errorf("short line %q", line)
		}
		e := nodeEntry{id: f[0], addr: f[1], flags: strings.Split(f[2], ",")}
		hostPort, _, _ := strings.Cut(f[1], "@")
		if i := strings.LastIndexByte(hostPort, ':'); i >= 0 {
			e.port, _ = strconv.Atoi(hostPort[i+1:])
		}
		for _, sl := range f[8:] {
			if strings.HasPrefix(sl, "[") {
				continue
			}
			lo, hi, isRange := strings.Cut(sl, "-")
			a, err := strconv.Atoi(lo)
			if err != nil {
				return nil, fmt.Errorf("bad slot %q in line %q", sl, line)
			}
			b := a
			if isRange {
				if b, err = strconv.Atoi(hi); err != nil {
					return nil, fmt.Errorf("bad slot range %q in line %q", sl, line)
				}
			}
			e.slots = append(e.slots, [2]int{a, b})
		}
		out = append(out, e)
	}
	return out, nil
}

// parseInfo parses an INFO or CLUSTER INFO reply into field -> value.
func parseInfo(v any) map[string]string {
	s, _ := v.(string)
	out := map[string]string{}
	for _, line := range strings.Split(s, "\n") {
		k, val, ok := strings.Cut(strings.TrimSpace(line), ":")
		if ok {
			out[k] = val
		}
	}
	return out
}
