//go:build integration

package integration

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	var missing []string
	for _, bin := range []string{"redis-server", "redis-cli"} {
		if _, err := exec.LookPath(bin); err != nil {
			missing = append(missing, bin)
		}
	}
	if len(missing) > 0 {
		fmt.Fprintf(os.Stderr, "integration: %s not found on PATH; the integration tests need them and never skip.\n"+
			"Install them with .ci/install-redis.sh (apt-get install redis-server redis-tools).\n",
			strings.Join(missing, " and "))
		os.Exit(1)
	}
	if out, err := exec.Command("redis-server", "--version").Output(); err == nil {
		fmt.Fprintf(os.Stderr, "integration: %s", out)
	}
	// go-redis clients, pub/subs and cluster clients leave no goroutines
	// once closed (checked against go-redis v9.23), so no ignore options are
	// needed; a report here means a test did not close something.
	goleak.VerifyTestMain(m)
}
