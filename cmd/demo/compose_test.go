package main

import (
	"bufio"
	"bytes"
	"errors"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// This machine has no Docker engine, so docker-compose.yml and the
// Dockerfile are checked here as far as that is possible without one: the
// compose file loads and validates (compose-go: schema, interpolation,
// consistency), its build contexts and Dockerfile exist, the Dockerfile
// builds static binaries into the paths the services run, and every
// service's command and environment are accepted by the demo's real flag
// set. cmd/cbctl checks the cbctl service the same way.

const repoRoot = "../.."

// demoImage is the image the upstream service builds and the others run.
const demoImage = "tripline-demo:local"

// loadCompose loads docker-compose.yml with the given profiles, with no
// environment from the machine running the test.
func loadCompose(t *testing.T, profiles ...string) *types.Project {
	t.Helper()
	opts, err := cli.NewProjectOptions(
		[]string{filepath.Join(repoRoot, "docker-compose.yml")},
		cli.WithWorkingDirectory(repoRoot),
		cli.WithEnv(nil),
		cli.WithProfiles(profiles),
	)
	require.NoError(t, err)
	p, err := cli.ProjectFromOptions(t.Context(), opts)
	require.NoError(t, err, "docker-compose.yml must load and validate")
	return p
}

func TestComposeServices(t *testing.T) {
	p := loadCompose(t)
	assert.Equal(t, "tripline-demo", p.Name)
	assert.ElementsMatch(t, []string{"redis", "upstream", "replica1", "replica2", "replica3"}, p.ServiceNames())
	assert.Equal(t, []string{"cbctl"}, p.DisabledServiceNames(), "cbctl only runs on demand (profile tools)")

	all := loadCompose(t, "tools")
	assert.ElementsMatch(t, []string{"redis", "upstream", "replica1", "replica2", "replica3", "cbctl"}, all.ServiceNames())

	redisSvc, err := p.GetService("redis")
	require.NoError(t, err)
	assert.Equal(t, "redis:7.0", redisSvc.Image, "the official image, pinned to the only version the tests run against")
	require.NotNil(t, redisSvc.HealthCheck)
	for _, name := range []string{"replica1", "replica2", "replica3"} {
		svc, err := p.GetService(name)
		require.NoError(t, err)
		assert.Equal(t, types.ServiceConditionHealthy, svc.DependsOn["redis"].Condition, name)
		assert.Contains(t, svc.DependsOn, "upstream", name)
	}
}

// TestComposeBuildsTheImageOnce: every demo service used to carry the same
// build section, so compose built one tag several times at once. The
// upstream service builds it now; the others only run it, and never look
// for it on a registry.
func TestComposeBuildsTheImageOnce(t *testing.T) {
	p := loadCompose(t, "*")
	var builders, users []string
	for _, svc := range p.Services {
		if svc.Build != nil {
			builders = append(builders, svc.Name)
		}
		if svc.Image != demoImage {
			continue
		}
		users = append(users, svc.Name)
		assert.Equal(t, types.PullPolicyNever, svc.PullPolicy, "%s: %s exists only where it was built", svc.Name, demoImage)
	}
	assert.Equal(t, []string{"upstream"}, builders, "one service builds")
	assert.ElementsMatch(t, []string{"upstream", "replica1", "replica2", "replica3", "cbctl"}, users, "every other service runs %s", demoImage)
	for _, name := range []string{"replica1", "replica2", "replica3"} {
		svc, err := p.GetService(name)
		require.NoError(t, err)
		assert.Contains(t, svc.DependsOn, "upstream", "%s starts after the service that builds its image", name)
	}
}

func TestComposeBuildsFromTheDockerfile(t *testing.T) {
	p := loadCompose(t, "*")
	svc, err := p.GetService("upstream")
	require.NoError(t, err)
	require.NotNil(t, svc.Build)
	info, err := os.Stat(svc.Build.Context)
	require.NoError(t, err, "build context")
	assert.True(t, info.IsDir(), "build context is a folder")
	_, err = os.Stat(filepath.Join(svc.Build.Context, svc.Build.Dockerfile))
	require.NoError(t, err, "Dockerfile")
	abs, err := filepath.Abs(repoRoot)
	require.NoError(t, err)
	assert.Equal(t, abs, svc.Build.Context, "builds the repository")
	assert.Equal(t, demoImage, svc.Image)
	assert.FileExists(t, filepath.Join(svc.Build.Context, "go.mod"))
}

// dockerfile is what TestDockerfile reads from the Dockerfile.
type dockerfile struct {
	stages   []string // the image of each FROM
	runs     []string // RUN lines, continuations joined
	envs     []string
	installs []string // COPY --from=... destinations in the last stage, by binary
}

func readDockerfile(t *testing.T) dockerfile {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot, "Dockerfile"))
	require.NoError(t, err)
	var d dockerfile
	var logical []string
	var cur strings.Builder
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasSuffix(line, "\\") {
			cur.WriteString(strings.TrimSuffix(line, "\\") + " ")
			continue
		}
		cur.WriteString(line)
		logical = append(logical, cur.String())
		cur.Reset()
	}
	require.NoError(t, sc.Err())
	for _, l := range logical {
		word, rest, _ := strings.Cut(l, " ")
		switch strings.ToUpper(word) {
		case "FROM":
			d.stages = append(d.stages, strings.Fields(rest)[0])
		case "RUN":
			d.runs = append(d.runs, rest)
		case "ENV":
			d.envs = append(d.envs, rest)
		case "COPY":
			if strings.HasPrefix(rest, "--from=") {
				f := strings.Fields(rest)
				for _, src := range f[1 : len(f)-1] {
					d.installs = append(d.installs, filepath.Join(f[len(f)-1], filepath.Base(src)))
				}
			}
		}
	}
	return d
}

func TestDockerfile(t *testing.T) {
	d := readDockerfile(t)
	require.GreaterOrEqual(t, len(d.stages), 2, "multi-stage")
	assert.Regexp(t, `^golang:`, d.stages[0], "builds with the Go image")
	final := d.stages[len(d.stages)-1]
	assert.True(t, final == "scratch" || strings.HasPrefix(final, "gcr.io/distroless/static"), "final stage %q is scratch or distroless/static", final)
	assert.Contains(t, d.envs, "CGO_ENABLED=0", "static binaries")
	build := strings.Join(d.runs, "\n")
	for _, pkg := range []string{"./cmd/cbctl", "./cmd/demo"} {
		assert.Regexp(t, regexp.MustCompile(`go build .*-o /out/`+filepath.Base(pkg)+` `+regexp.QuoteMeta(pkg)), build)
	}
	assert.ElementsMatch(t, []string{"/usr/local/bin/cbctl", "/usr/local/bin/demo"}, d.installs)

	// The image's modules: no `go mod download`, which fetches every module
	// go.mod lists, the tests' too; go build fetches what it imports.
	for _, run := range d.runs {
		assert.NotRegexp(t, `go mod download\s*($|&&|;)`, run, "downloads the tests' modules too")
	}
	assert.Contains(t, build, "--mount=type=cache,target=/go/pkg/mod", "modules survive a code change")

	// Every entrypoint in the compose file is a binary the image has.
	p := loadCompose(t, "*")
	for _, svc := range p.Services {
		if svc.Image != demoImage {
			continue
		}
		require.Len(t, svc.Entrypoint, 1, svc.Name)
		assert.Contains(t, d.installs, svc.Entrypoint[0], svc.Name)
	}

	// The build context keeps what the build needs.
	ignore, err := os.ReadFile(filepath.Join(repoRoot, ".dockerignore"))
	require.NoError(t, err)
	for _, needed := range []string{"go.mod", "go.sum", "cmd", "breaker", "store", "scripts"} {
		for _, pattern := range strings.Fields(string(ignore)) {
			if strings.HasPrefix(pattern, "#") {
				continue
			}
			matched, err := filepath.Match(pattern, needed)
			require.NoError(t, err)
			assert.False(t, matched, ".dockerignore pattern %q drops %s", pattern, needed)
		}
	}
}

// demoServices returns the services that run the demo binary.
func demoServices(t *testing.T, p *types.Project) []types.ServiceConfig {
	t.Helper()
	var out []types.ServiceConfig
	for _, svc := range p.Services {
		if len(svc.Entrypoint) > 0 && svc.Entrypoint[0] == "/usr/local/bin/demo" {
			out = append(out, svc)
		}
	}
	slices.SortFunc(out, func(a, b types.ServiceConfig) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// TestComposeCommandsMatchTheDemo parses every demo service's command with
// the demo's own flag set and its environment as the demo reads it.
func TestComposeCommandsMatchTheDemo(t *testing.T) {
	p := loadCompose(t)
	services := demoServices(t, p)
	require.Len(t, services, 4, "upstream and three replicas")

	var upstreamPort string
	names := map[string]bool{}
	for _, svc := range services {
		t.Run(svc.Name, func(t *testing.T) {
			env := map[string]string{}
			for k, v := range svc.Environment {
				assert.Contains(t, envVars, k, "the demo reads no %s", k)
				require.NotNil(t, v, "%s has a value", k)
				env[k] = *v
			}
			var stderr bytes.Buffer
			cfg, err := parseArgs(svc.Command, func(k string) string { return env[k] }, &stderr)
			require.NoError(t, err, "command %q: %s", svc.Command, stderr.String())
			assert.Zero(t, cfg.duration, "runs until stopped")
			switch cfg.role {
			case roleUpstream:
				assert.Equal(t, "upstream", svc.Name)
				_, port, err := net.SplitHostPort(cfg.upstreamAddr)
				require.NoError(t, err)
				upstreamPort = port
				assert.Contains(t, svc.Expose, port, "the port is exposed to the replicas")
			case roleReplica:
				assert.NotContains(t, names, cfg.name, "replica names are unique")
				names[cfg.name] = true
				assert.Equal(t, svc.Name, cfg.name)
				u, err := url.Parse(cfg.upstreamURL)
				require.NoError(t, err)
				assert.Equal(t, "upstream", u.Hostname(), "calls the upstream service")
				r, err := url.Parse(cfg.redisURL)
				require.NoError(t, err)
				assert.Equal(t, "redis", r.Hostname(), "uses the redis service")
				assert.Equal(t, "6379", r.Port())
			default:
				t.Errorf("role %q has no place in docker-compose.yml", cfg.role)
			}
		})
	}
	require.NotEmpty(t, upstreamPort)
	for _, svc := range services {
		if u := svc.Environment[envUpstreamURL]; u != nil {
			parsed, err := url.Parse(*u)
			require.NoError(t, err)
			assert.Equal(t, upstreamPort, parsed.Port(), "%s calls the port the upstream listens on", svc.Name)
		}
	}
	assert.Len(t, names, 3)
}

// testOnlyModules are required by go.mod for tests alone. The image's go
// build must not need them: it would download them (compose-go alone
// brings a dozen more).
var testOnlyModules = []string{
	"github.com/compose-spec/compose-go/v2",
	"github.com/stretchr/testify",
	"go.uber.org/goleak",
	"pgregory.net/rapid",
	"github.com/mattn/go-shellwords",
}

// TestImageNeedsNoTestModules asks the go command which modules the
// binaries' packages come from: what go build downloads in the image.
func TestImageNeedsNoTestModules(t *testing.T) {
	cmd := exec.CommandContext(t.Context(), "go", "list", "-deps", "-f", "{{with .Module}}{{.Path}}{{end}}", "./cmd/cbctl", "./cmd/demo")
	cmd.Dir = repoRoot
	out, err := cmd.Output()
	require.NoError(t, err, "go list: %s", errOutput(err))
	modules := strings.Fields(string(out))
	require.Contains(t, modules, "github.com/redis/go-redis/v9", "go list answered")
	for _, m := range testOnlyModules {
		assert.NotContains(t, modules, m, "a binary imports a test-only module: the image would download it")
	}
}

// errOutput is the standard error of a failed command, if err carries it.
func errOutput(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return string(ee.Stderr)
	}
	return ""
}
