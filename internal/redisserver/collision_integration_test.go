//go:build integration

package redisserver

import (
	"net"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestPortCollisionRetried takes the port handed to the first attempt (as
// another process could between the free-port check and redis-server's
// bind) and checks that start picks another port and succeeds.
func TestPortCollisionRetried(t *testing.T) {
	for _, cluster := range []bool{false, true} {
		t.Run("cluster="+strconv.FormatBool(cluster), func(t *testing.T) {
			p, err := reservePort(true)
			require.NoError(t, err)
			busy := p
			if cluster {
				busy = p + busOffset // the bus port is taken, the client port is free
			}
			l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(busy)))
			require.NoError(t, err)
			defer l.Close()

			calls := 0
			reserve = func(bus bool) (int, error) {
				calls++
				if calls == 1 {
					return p, nil
				}
				return reservePort(bus)
			}
			defer func() { reserve = reservePort }()

			var srv *Server
			if cluster {
				cfg, err := newConfig(nil)
				require.NoError(t, err)
				cfg.cluster = true
				srv, err = start(t, lookPath(t, "redis-server"), cfg)
				require.NoError(t, err)
			} else {
				srv = StartSingle(t)
			}
			assert.Equal(t, 2, calls)
			assert.NotEqual(t, p, srv.Port())
			v, err := srv.Do(t.Context(), "PING")
			require.NoError(t, err)
			assert.Equal(t, "PONG", v)
		})
	}
}
