//go:build integration

package main

import (
	"testing"

	"github.com/tripline/tripline/internal/redisserver"
)

// TestIntegrationDemoFleet runs the demo on a real redis-server, as with
// REDIS_URL set, and checks it as TestDemoFleet does.
func TestIntegrationDemoFleet(t *testing.T) {
	srv := redisserver.StartSingle(t)
	runFleet(t, map[string]string{envRedisURL: "redis://" + srv.Addr()})
}
