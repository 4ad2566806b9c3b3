package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tripline/tripline/internal/testutil"
	"github.com/tripline/tripline/store/memory"
)

// TestUpstreamShutdownSkipsUnusedConnections: `demo --duration 3s`
// sometimes ended 2s late. An http.Transport had dialled a connection that
// carried no call, and http.Server.Shutdown waits up to 5s for such a
// connection; close gave up after 2s. The upstream now closes unused
// connections when Shutdown starts, so Shutdown returns as soon as the
// calls in flight are answered.
func TestUpstreamShutdownSkipsUnusedConnections(t *testing.T) {
	u, err := startUpstream("127.0.0.1:0", schedule{{up: true}})
	require.NoError(t, err)

	// An idle keep-alive connection, after one call.
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	resp, err := client.Get(u.url())
	require.NoError(t, err)
	_, err = io.Copy(io.Discard, resp.Body)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())

	// A connection that never carries a call.
	unused, err := net.Dial("tcp", u.ln.Addr().String())
	require.NoError(t, err)
	defer unused.Close()
	testutil.WaitFor(t, "the upstream to accept the unused connection", func() bool {
		u.mu.Lock()
		defer u.mu.Unlock()
		return len(u.unused) == 1
	})

	// net/http stops waiting for a connection that sent nothing once it is
	// 5s old: a deadline below that tells waiting from not waiting.
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- u.srv.Shutdown(ctx) }()
	assert.NoError(t, <-done, "Shutdown waited for a connection that carried no call")

	require.NoError(t, unused.SetReadDeadline(time.Now().Add(5*time.Second)))
	_, err = unused.Read(make([]byte, 1))
	assert.ErrorIs(t, err, io.EOF, "the upstream closed the unused connection")
}

// TestUpstreamCloseCutsOffAStalledCall: close waits closeGrace for a call in
// flight, then drops it rather than hold the demo's end.
func TestUpstreamCloseCutsOffAStalledCall(t *testing.T) {
	u, err := startUpstream("127.0.0.1:0", schedule{{up: true}})
	require.NoError(t, err)
	stalled, err := net.Dial("tcp", u.ln.Addr().String())
	require.NoError(t, err)
	defer stalled.Close()
	unused := func() int {
		u.mu.Lock()
		defer u.mu.Unlock()
		return len(u.unused)
	}
	testutil.WaitFor(t, "the upstream to accept the connection", func() bool { return unused() == 1 })
	// A call whose body never comes: the upstream reads the header, then
	// waits for the body before it answers. The call stays in flight.
	_, err = io.WriteString(stalled, "POST / HTTP/1.1\r\nHost: upstream\r\nContent-Length: 10\r\n\r\n")
	require.NoError(t, err)
	testutil.WaitFor(t, "the upstream to read the header", func() bool { return unused() == 0 })

	assert.NoError(t, u.close())
	require.NoError(t, stalled.SetReadDeadline(time.Now().Add(5*time.Second)))
	_, err = stalled.Read(make([]byte, 1))
	assert.ErrorIs(t, err, io.EOF, "close dropped the stalled call")
}

// TestReplicaClosesItsConnectionsWhenItStops: each replica has its own
// connection pool, as a separate process would, and closes it when it
// stops, so the upstream has nothing left to wait for.
func TestReplicaClosesItsConnectionsWhenItStops(t *testing.T) {
	var mu sync.Mutex
	open := map[net.Conn]bool{}
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	up.Config.ConnState = func(c net.Conn, st http.ConnState) {
		mu.Lock()
		defer mu.Unlock()
		open[c] = st != http.StateClosed && st != http.StateHijacked
	}
	up.Start()
	defer up.Close()
	openConns := func() int {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, o := range open {
			if o {
				n++
			}
		}
		return n
	}

	cfg := breakerConfig{circuit: "c", threshold: 3, openTimeout: time.Second}
	var reps []*replica
	for _, name := range []string{"r1", "r2"} {
		r, err := newReplica(name, up.URL, memory.New(), cfg, func() time.Duration { return 0 }, func(string) {}, nil)
		require.NoError(t, err)
		reps = append(reps, r)
	}
	assert.False(t, reps[0].http.Transport == reps[1].http.Transport, "each replica has its own pool")

	ctx, cancel := context.WithCancel(t.Context())
	cancel() // run makes one call, then stops
	for _, r := range reps {
		r.call(t.Context())
		r.run(ctx, time.Hour)
		assert.Equal(t, 2, r.snapshot().OK, r.name)
	}
	testutil.WaitFor(t, "the upstream to see every connection closed", func() bool { return openConns() == 0 })
}
