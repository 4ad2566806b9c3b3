package redisserver

import (
	"errors"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
)

// Client ports come from [portLow, portHigh); the cluster bus port is
// port+busOffset. Both ranges stay below Linux's default ephemeral range
// (32768-60999), so outgoing connections cannot take them, and away from
// 6379.
const (
	portLow   = 12000
	portHigh  = 22000
	busOffset = 10000
)

var (
	portMu   sync.Mutex
	reserved = map[int]bool{} // ports handed out in this process and not released
)

// reservePort picks a port p in [portLow, portHigh) that no other server of
// this process holds and on which 127.0.0.1 can listen now; with bus, p+10000
// must be free too. The port stays reserved until releasePort, so a killed
// server can be restarted on it. Another process can still take it between
// this check and redis-server's bind; the caller retries then.
func reservePort(bus bool) (int, error) {
	portMu.Lock()
	defer portMu.Unlock()
	for range 500 {
		p := portLow + rand.IntN(portHigh-portLow)
		// Bus ports (22000-31999) never overlap client ports, so only
		// client ports need tracking.
		if reserved[p] {
			continue
		}
		if !canListen(p) || (bus && !canListen(p+busOffset)) {
			continue
		}
		reserved[p] = true
		return p, nil
	}
	return 0, errors.New("no free loopback port found in 500 tries")
}

// releasePort makes p available again; 0 is ignored.
func releasePort(p int) {
	if p == 0 {
		return
	}
	portMu.Lock()
	delete(reserved, p)
	portMu.Unlock()
}

func canListen(p int) bool {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
	if err != nil {
		return false
	}
	l.Close()
	return true
}
