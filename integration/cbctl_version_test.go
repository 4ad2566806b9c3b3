//go:build integration

package integration

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestCbctlVersionShowsCommit is issue 16's report: `cbctl version` showed
// no commit when built with `go build`. A binary built from a git checkout
// names its commit (the first 12 hex digits), the commit's time, and
// "modified" when the tree has changes.
//
// The module's files are copied into a fresh repository of their own: Go
// stamps the vcs settings only where .git is a directory, so a build in a
// git worktree (where .git is a file) carries none, and the checkout the
// test runs in may be either. -buildvcs=true asks for the stamp whatever
// GOFLAGS says; `go build`'s default, auto, stamps as well.
func TestCbctlVersionShowsCommit(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	run := func(dir, name string, args ...string) string {
		t.Helper()
		cmd := exec.CommandContext(ctx, name, args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "GIT_AUTHOR_NAME=test", "GIT_AUTHOR_EMAIL=test@example.com",
			"GIT_COMMITTER_NAME=test", "GIT_COMMITTER_EMAIL=test@example.com")
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s %v: %s", name, args, out)
		return strings.TrimSpace(string(out))
	}

	// The module's files as they are now, committed or not.
	repo := t.TempDir()
	files := run("..", "git", "ls-files", "--cached", "--others", "--exclude-standard", "-z")
	for f := range strings.SplitSeq(files, "\x00") {
		if f == "" {
			continue
		}
		data, err := os.ReadFile(filepath.Join("..", f))
		if os.IsNotExist(err) {
			continue // deleted in the working tree
		}
		require.NoError(t, err)
		require.NoError(t, os.MkdirAll(filepath.Join(repo, filepath.Dir(f)), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(repo, f), data, 0o644))
	}
	run(repo, "git", "init", "-q")
	run(repo, "git", "add", "-A")
	run(repo, "git", "commit", "-q", "-m", "snapshot")
	head := run(repo, "git", "rev-parse", "HEAD")

	version := func() string {
		t.Helper()
		bin := filepath.Join(t.TempDir(), "cbctl")
		run(repo, "go", "build", "-buildvcs=true", "-o", bin, "./cmd/cbctl")
		return run(repo, bin, "version")
	}
	stamp := `, commit ` + head[:12] + `, \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ`
	assert.Regexp(t, `^cbctl v0\.0\.0-\d{14}-`+head[:12]+`(\+dirty)? \(go[^,]+`+stamp+`\)$`, version())

	require.NoError(t, os.WriteFile(filepath.Join(repo, "README.md"), []byte("changed\n"), 0o644))
	assert.Regexp(t, `^cbctl v0\.0\.0-\d{14}-`+head[:12]+`(\+dirty)? \(go[^,]+`+stamp+`, modified\)$`, version())
}
