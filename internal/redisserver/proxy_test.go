package redisserver

import (
	"bufio"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// noLeaks checks, after every other cleanup of t (proxy, echo server) has
// run, that no goroutine was left behind.
func noLeaks(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) })
}

// echoServer answers every line with the same line, and counts the lines it
// received (so a test can tell that a request arrived even when its reply
// was dropped). No Redis needed.
type echoServer struct {
	ln    net.Listener
	wg    sync.WaitGroup
	mu    sync.Mutex
	lines int
	conns []net.Conn
}

func startEcho(t *testing.T) *echoServer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	e := &echoServer{ln: ln}
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			e.mu.Lock()
			e.conns = append(e.conns, c)
			e.mu.Unlock()
			e.wg.Add(1)
			go func() {
				defer e.wg.Done()
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					e.mu.Lock()
					e.lines++
					e.mu.Unlock()
					if _, err := c.Write([]byte(line)); err != nil {
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		e.mu.Lock()
		for _, c := range e.conns {
			c.Close()
		}
		e.mu.Unlock()
		e.wg.Wait()
	})
	return e
}

func (e *echoServer) received() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.lines
}

// roundTrip sends line on c and reads the answer with a deadline.
func roundTrip(c net.Conn, r *bufio.Reader, line string, timeout time.Duration) (string, error) {
	if err := c.SetDeadline(time.Now().Add(timeout)); err != nil {
		return "", err
	}
	if _, err := c.Write([]byte(line + "\n")); err != nil {
		return "", err
	}
	s, err := r.ReadString('\n')
	if len(s) > 0 {
		s = s[:len(s)-1]
	}
	return s, err
}

func dialProxy(t *testing.T, p *Proxy) (net.Conn, *bufio.Reader) {
	c, err := net.Dial("tcp", p.Addr())
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c, bufio.NewReader(c)
}

func TestProxyForwards(t *testing.T) {
	noLeaks(t)
	e := startEcho(t)
	p := StartProxy(t, e.ln.Addr().String())
	c, r := dialProxy(t, p)
	got, err := roundTrip(c, r, "hello", time.Second)
	require.NoError(t, err)
	assert.Equal(t, "hello", got)
	assert.Equal(t, ProxyStats{Accepted: 1, Open: 1}, p.Stats())
}

func TestProxyLatency(t *testing.T) {
	noLeaks(t)
	e := startEcho(t)
	p := StartProxy(t, e.ln.Addr().String())
	c, r := dialProxy(t, p)
	p.SetLatency(50 * time.Millisecond)
	begin := time.Now()
	got, err := roundTrip(c, r, "slow", time.Second)
	require.NoError(t, err)
	assert.Equal(t, "slow", got)
	assert.GreaterOrEqual(t, time.Since(begin), 50*time.Millisecond)
	p.SetLatency(0)
}

func TestProxyDropReplies(t *testing.T) {
	noLeaks(t)
	e := startEcho(t)
	p := StartProxy(t, e.ln.Addr().String())
	c, r := dialProxy(t, p)
	_, err := roundTrip(c, r, "before", time.Second)
	require.NoError(t, err)

	p.DropReplies(true)
	_, err = roundTrip(c, r, "lost", 100*time.Millisecond)
	var ne net.Error
	require.ErrorAs(t, err, &ne)
	assert.True(t, ne.Timeout())
	require.Eventually(t, func() bool { return e.received() == 2 }, time.Second, time.Millisecond,
		"the request must reach the server even though its reply is dropped")

	p.DropReplies(false)
	// The connection that lost a reply stays mute; a new one works.
	_, err = roundTrip(c, r, "still lost", 100*time.Millisecond)
	require.ErrorAs(t, err, &ne)
	c2, r2 := dialProxy(t, p)
	got, err := roundTrip(c2, r2, "fresh", time.Second)
	require.NoError(t, err)
	assert.Equal(t, "fresh", got)
	assert.Equal(t, int64(len("lost\nstill lost\n")), p.Stats().DroppedBytes)
}

func TestProxyMuteOpen(t *testing.T) {
	noLeaks(t)
	e := startEcho(t)
	p := StartProxy(t, e.ln.Addr().String())
	c, r := dialProxy(t, p)
	_, err := roundTrip(c, r, "x", time.Second)
	require.NoError(t, err)

	p.MuteOpen()
	_, err = roundTrip(c, r, "lost", 100*time.Millisecond)
	var ne net.Error
	require.ErrorAs(t, err, &ne)
	assert.True(t, ne.Timeout())

	c2, r2 := dialProxy(t, p)
	got, err := roundTrip(c2, r2, "fresh", time.Second)
	require.NoError(t, err)
	assert.Equal(t, "fresh", got)
}

func TestProxyResetAll(t *testing.T) {
	noLeaks(t)
	e := startEcho(t)
	p := StartProxy(t, e.ln.Addr().String())
	c, r := dialProxy(t, p)
	_, err := roundTrip(c, r, "x", time.Second)
	require.NoError(t, err)

	p.ResetAll()
	_, err = roundTrip(c, r, "y", time.Second)
	require.Error(t, err)
	assert.True(t, errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.EOF) || errors.Is(err, syscall.EPIPE), "got %v", err)

	c2, r2 := dialProxy(t, p)
	got, err := roundTrip(c2, r2, "z", time.Second)
	require.NoError(t, err)
	assert.Equal(t, "z", got)
	st := p.Stats()
	assert.Equal(t, 1, st.Reset)
	assert.Equal(t, 2, st.Accepted)
	require.Eventually(t, func() bool { return p.Stats().Open == 1 }, time.Second, time.Millisecond)
}

func TestProxyClose(t *testing.T) {
	noLeaks(t)
	e := startEcho(t)
	p := StartProxy(t, e.ln.Addr().String())
	c, r := dialProxy(t, p)
	_, err := roundTrip(c, r, "x", time.Second)
	require.NoError(t, err)
	p.Close()
	_, err = roundTrip(c, r, "y", time.Second)
	assert.Error(t, err)
	_, err = net.DialTimeout("tcp", p.Addr(), time.Second)
	assert.Error(t, err)
	p.Close() // twice is fine
}

func TestProxyTargetDown(t *testing.T) {
	noLeaks(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	ln.Close()
	p := StartProxy(t, addr)
	c, r := dialProxy(t, p)
	_, err = roundTrip(c, r, "x", time.Second)
	assert.Error(t, err, "the proxy closes a client whose server cannot be reached")
	assert.False(t, errors.Is(err, os.ErrDeadlineExceeded), "closed at once, not left hanging: %v", err)
}
