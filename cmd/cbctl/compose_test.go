package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/mattn/go-shellwords"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tripline/tripline/internal/testutil"
)

// The cbctl service of docker-compose.yml (the rest is checked in
// cmd/demo). No Docker engine here: the file is loaded and validated with
// compose-go, and the command lines it runs or documents are parsed by
// cbctl's own command tree.

const composeFile = "../../docker-compose.yml"

func loadCbctlService(t *testing.T) types.ServiceConfig {
	t.Helper()
	opts, err := cli.NewProjectOptions([]string{composeFile},
		cli.WithWorkingDirectory("../.."), cli.WithEnv(nil), cli.WithProfiles([]string{"tools"}))
	require.NoError(t, err)
	p, err := cli.ProjectFromOptions(t.Context(), opts)
	require.NoError(t, err)
	svc, err := p.GetService("cbctl")
	require.NoError(t, err)
	return svc
}

// checkCommandLine parses args with cbctl's command tree, without running
// anything: the command exists, its flags and arguments are accepted.
func checkCommandLine(t *testing.T, args []string) {
	t.Helper()
	a := testApp(&testutil.SyncBuffer{}, &testutil.SyncBuffer{}, nil)
	root := a.commands()
	cmd, rest, err := root.Find(args)
	require.NoError(t, err, "%q", args)
	require.NotEqual(t, root, cmd, "%q names a command", args)
	require.NoError(t, cmd.ParseFlags(rest), "%q", args)
	require.NoError(t, cmd.ValidateArgs(cmd.Flags().Args()), "%q", args)
	require.NoError(t, cmd.ValidateRequiredFlags(), "%q", args)
	if cmd.Name() == "open" || cmd.Name() == "close" {
		reason, err := cmd.Flags().GetString("reason")
		require.NoError(t, err)
		assert.NotEmpty(t, reason, "%q: open and close need --reason", args)
	}
}

func TestComposeCbctlService(t *testing.T) {
	svc := loadCbctlService(t)
	assert.Equal(t, []string{"tools"}, svc.Profiles, "docker compose run cbctl, not up")
	assert.Equal(t, types.ShellCommand{"/usr/local/bin/cbctl"}, svc.Entrypoint)
	checkCommandLine(t, svc.Command)

	env := map[string]string{}
	for k, v := range svc.Environment {
		assert.Equal(t, "REDIS_URL", k, "cbctl reads no other variable")
		require.NotNil(t, v)
		env[k] = *v
	}
	conn, err := parseConn("", "", env["REDIS_URL"])
	require.NoError(t, err)
	assert.Equal(t, "redis:6379", conn.single.Addr, "the redis service")
}

// TestComposeDocumentedCommands checks the cbctl command lines that the
// comments of docker-compose.yml tell users to run.
func TestComposeDocumentedCommands(t *testing.T) {
	data, err := os.ReadFile(filepath.Clean(composeFile))
	require.NoError(t, err)
	const prefix = "docker compose run --rm cbctl "
	found := 0
	for line := range strings.SplitSeq(string(data), "\n") {
		line = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), "#"))
		if !strings.HasPrefix(line, prefix) {
			continue
		}
		line, _, _ = strings.Cut(line, " #") // a comment after the command
		args, err := shellwords.Parse(strings.TrimPrefix(line, prefix))
		require.NoError(t, err, line)
		checkCommandLine(t, args)
		found++
	}
	assert.GreaterOrEqual(t, found, 4, "the file documents list, watch, open and reset")
}
