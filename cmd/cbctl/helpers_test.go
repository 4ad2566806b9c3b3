package main

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tripline/tripline/internal/testutil"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the output")

// outcome is what one run of cbctl produced.
type outcome struct {
	stdout, stderr string
	code           int
}

// testApp is cbctl with an empty environment (so a REDIS_URL of the machine
// running the tests is never used) and "tester" as the OS user.
func testApp(stdout, stderr *testutil.SyncBuffer, env map[string]string) *app {
	return &app{
		stdout: stdout,
		stderr: stderr,
		getenv: func(k string) string { return env[k] },
		osUser: func() string { return "tester" },
	}
}

// cbctl runs one command in-process.
func cbctl(t *testing.T, env map[string]string, args ...string) outcome {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	var stdout, stderr testutil.SyncBuffer
	code := testApp(&stdout, &stderr, env).run(ctx, args)
	return outcome{stdout: stdout.String(), stderr: stderr.String(), code: code}
}

// golden compares got with testdata/name.golden, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		require.NoError(t, os.MkdirAll("testdata", 0o755))
		require.NoError(t, os.WriteFile(path, []byte(got), 0o644))
		return
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "missing golden file: run go test -update")
	assert.Equal(t, string(want), got, "output differs from %s (go test -update rewrites it)", path)
}

// lines splits output into its non-empty lines.
func lines(s string) []string {
	var out []string
	for l := range strings.SplitSeq(s, "\n") {
		if l != "" {
			out = append(out, l)
		}
	}
	return out
}
