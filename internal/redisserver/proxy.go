package redisserver

import (
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// Proxy is a TCP proxy on a free loopback port in front of one address
// (usually a [Server]), for faults that signals cannot make: added latency,
// replies lost after the server executed the command, and connection
// resets. Clients connect to [Proxy.Addr] instead of the server. A Proxy is
// closed by t.Cleanup; all its methods are safe to call from any goroutine.
type Proxy struct {
	t      testing.TB
	target string
	ln     net.Listener
	wg     sync.WaitGroup

	mu       sync.Mutex
	latency  time.Duration
	dropping bool
	closed   bool
	conns    map[*proxyConn]struct{}
	stats    ProxyStats
}

// ProxyStats counts what a [Proxy] did so far.
type ProxyStats struct {
	// Accepted is the number of client connections accepted.
	Accepted int
	// Open is the number of client connections open now.
	Open int
	// Reset is the number of client connections reset by [Proxy.ResetAll].
	Reset int
	// DroppedBytes is the number of reply bytes discarded while
	// [Proxy.DropReplies] was on.
	DroppedBytes int64
}

type proxyConn struct {
	client, server net.Conn
	poisoned       bool // a reply was dropped: the rest of this connection's replies go too; guarded by Proxy.mu
}

// StartProxy listens on a free loopback port and forwards each connection
// to target (host:port). It fails the test when it cannot listen.
func StartProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("redisserver: proxy listen: %v", err)
	}
	p := &Proxy{t: t, target: target, ln: ln, conns: map[*proxyConn]struct{}{}}
	p.wg.Add(1)
	go p.acceptLoop()
	t.Cleanup(p.Close)
	return p
}

// Addr returns the proxy's address, "127.0.0.1:<port>".
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// SetLatency delays every chunk of bytes from the server to the client by d
// (0 turns it off): each reply arrives at least d late.
func (p *Proxy) SetLatency(d time.Duration) {
	p.mu.Lock()
	p.latency = max(d, 0)
	p.mu.Unlock()
}

// DropReplies, while on, discards the bytes the server sends back on every
// connection, new ones included (so a client's connection handshake fails
// too): the server runs the command, the client never hears of it and times
// out. See [Proxy.MuteOpen] for losing replies on open connections only.
// A connection that lost a reply keeps losing them until it is closed (the
// reply stream is out of step), so after DropReplies(false) only
// connections opened since, or never hit, get replies again.
func (p *Proxy) DropReplies(on bool) {
	p.mu.Lock()
	p.dropping = on
	p.mu.Unlock()
}

// MuteOpen makes every connection open now lose all further replies (until
// it is closed), while connections opened later work normally: the next
// command on a pooled connection runs on the server, its reply is lost, and
// a client that retries on a new connection runs it a second time.
func (p *Proxy) MuteOpen() {
	p.mu.Lock()
	for c := range p.conns {
		c.poisoned = true
	}
	p.mu.Unlock()
}

// ResetAll resets every open client connection (TCP RST) and closes its
// server side. New connections are accepted as before.
func (p *Proxy) ResetAll() {
	p.mu.Lock()
	conns := make([]*proxyConn, 0, len(p.conns))
	for c := range p.conns {
		conns = append(conns, c)
	}
	p.stats.Reset += len(conns)
	p.mu.Unlock()
	for _, c := range conns {
		if tc, ok := c.client.(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // Close then sends RST
		}
		c.client.Close()
		c.server.Close()
	}
}

// Stats returns the proxy's counters.
func (p *Proxy) Stats() ProxyStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.stats
	s.Open = len(p.conns)
	return s
}

// Close stops listening, closes every connection and waits for the
// proxy's goroutines to end. It is called by t.Cleanup; calling it earlier
// (to make the server unreachable) is fine.
func (p *Proxy) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	conns := make([]*proxyConn, 0, len(p.conns))
	for c := range p.conns {
		conns = append(conns, c)
	}
	p.mu.Unlock()
	p.ln.Close()
	for _, c := range conns {
		c.client.Close()
		c.server.Close()
	}
	p.wg.Wait()
}

func (p *Proxy) acceptLoop() {
	defer p.wg.Done()
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return // closed
		}
		p.wg.Add(1)
		go p.serve(client)
	}
}

// serve dials the target for one client connection and pumps bytes both
// ways until either side closes.
func (p *Proxy) serve(client net.Conn) {
	defer p.wg.Done()
	server, err := net.DialTimeout("tcp", p.target, time.Second)
	if err != nil {
		client.Close()
		return
	}
	c := &proxyConn{client: client, server: server}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		client.Close()
		server.Close()
		return
	}
	p.conns[c] = struct{}{}
	p.stats.Accepted++
	p.mu.Unlock()

	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = io.Copy(server, client) // requests pass untouched
		server.Close()
	}()
	p.pumpReplies(c)
	client.Close()
	server.Close()
	<-done

	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
}

// pumpReplies copies server -> client, applying latency and drops.
func (p *Proxy) pumpReplies(c *proxyConn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := c.server.Read(buf)
		if n > 0 {
			p.mu.Lock()
			lat := p.latency
			drop := p.dropping || c.poisoned
			if drop {
				c.poisoned = true
				p.stats.DroppedBytes += int64(n)
			}
			p.mu.Unlock()
			if lat > 0 {
				time.Sleep(lat)
			}
			if !drop {
				if _, werr := c.client.Write(buf[:n]); werr != nil {
					return
				}
			}
		}
		if err != nil {
			return // EOF, closed or reset: serve closes both sides
		}
	}
}
