// Command demo shows tripline's shared circuit at work: a flaky upstream
// HTTP service, and three replicas of a client service that call it through
// Breakers sharing one circuit in Redis. The trip happens once and every
// replica sees it; in half-open exactly one replica probes; when the
// upstream recovers the circuit closes for all.
//
//	go run ./cmd/demo                     # everything in one process, embedded Redis
//	REDIS_URL=redis://localhost:6379 go run ./cmd/demo   # a real Redis: watch it with cbctl
//	demo --role upstream --upstream-addr :8080           # one process per role (docker-compose)
//	demo --role replica                                  # reads UPSTREAM_URL, REDIS_URL, REPLICA_NAME
//
// With no REDIS_URL the demo runs an embedded miniredis, so it needs no
// setup. It stops after --duration (default 20s; 0: until interrupted) and
// prints a summary.
//
// On a terminal it redraws a live table in place, fitted to the terminal's
// size ($COLUMNS and $LINES if the terminal does not tell, else 80x24):
// long cells are cut and the latest events that fit are shown. Elsewhere (a
// pipe, CI) it prints one plain line per event.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tripline/tripline/internal/redact"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// The environment variables the demo reads, each the default of a flag.
const (
	envRedisURL    = "REDIS_URL"    // --redis
	envUpstreamURL = "UPSTREAM_URL" // --upstream-url
	envReplicaName = "REPLICA_NAME" // --name
)

// envVars lists every environment variable the demo reads.
var envVars = []string{envRedisURL, envUpstreamURL, envReplicaName}

// breakerConfig is the circuit every replica uses.
type breakerConfig struct {
	circuit     string
	threshold   int
	openTimeout time.Duration
}

// config is the demo's command line.
type config struct {
	role         string
	duration     time.Duration
	upstreamAddr string
	upstreamURL  string
	redisURL     string
	name         string
	replicas     int
	prefix       string
	schedText    string
	sched        schedule
	interval     time.Duration
	display      string
	breakerConfig
}

// Roles.
const (
	roleAll      = "all"      // upstream, replicas and display in one process
	roleUpstream = "upstream" // the flaky upstream alone
	roleReplica  = "replica"  // one replica alone
)

const defaultSchedule = "up=3s,down=4s,up=5s,down=4s,up"

// newFlagSet defines the demo's flags on cfg. The compose test parses
// docker-compose.yml's commands with it.
func newFlagSet(cfg *config) *flag.FlagSet {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.StringVar(&cfg.role, "role", roleAll, "what to run: all, upstream or replica")
	fs.DurationVar(&cfg.duration, "duration", 20*time.Second, "stop after this long and print a summary; 0: run until interrupted")
	fs.StringVar(&cfg.upstreamAddr, "upstream-addr", "127.0.0.1:0", "where the upstream listens (roles all and upstream)")
	fs.StringVar(&cfg.upstreamURL, "upstream-url", "", "the upstream to call (role replica; default $"+envUpstreamURL+")")
	fs.StringVar(&cfg.redisURL, "redis", "", "Redis URL (default $"+envRedisURL+"; role all without it: an embedded miniredis)")
	fs.StringVar(&cfg.name, "name", "", "this replica's name (role replica; default $"+envReplicaName+", else the host name)")
	fs.IntVar(&cfg.replicas, "replicas", 3, "how many replicas (role all)")
	fs.StringVar(&cfg.prefix, "prefix", "tripline", "the store's key prefix (cbctl --prefix)")
	fs.StringVar(&cfg.circuit, "circuit", "demo-upstream", "the circuit's name")
	fs.IntVar(&cfg.threshold, "threshold", 3, "consecutive failures that trip the circuit")
	fs.DurationVar(&cfg.openTimeout, "open-timeout", 1500*time.Millisecond, "how long the circuit stays open before a probe")
	fs.StringVar(&cfg.schedText, "schedule", defaultSchedule, "the upstream's schedule: up=DURATION,down=DURATION,...; a last phase without a duration lasts for ever, else it repeats")
	fs.DurationVar(&cfg.interval, "interval", 100*time.Millisecond, "time between one replica's calls")
	fs.StringVar(&cfg.display, "display", "auto", "auto (a live table on a terminal, else lines), table or lines")
	return fs
}

// parseArgs reads the command line and the environment.
func parseArgs(args []string, getenv func(string) string, stderr io.Writer) (*config, error) {
	cfg := &config{}
	fs := newFlagSet(cfg)
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if cfg.redisURL == "" {
		cfg.redisURL = getenv(envRedisURL)
	}
	if cfg.upstreamURL == "" {
		cfg.upstreamURL = getenv(envUpstreamURL)
	}
	if cfg.name == "" {
		cfg.name = getenv(envReplicaName)
	}
	if cfg.name == "" {
		cfg.name, _ = os.Hostname()
	}
	var err error
	if cfg.sched, err = parseSchedule(cfg.schedText); err != nil {
		return nil, err
	}
	switch {
	case cfg.role != roleAll && cfg.role != roleUpstream && cfg.role != roleReplica:
		return nil, fmt.Errorf("--role %q: want all, upstream or replica", cfg.role)
	case cfg.duration < 0:
		return nil, fmt.Errorf("--duration %s: want 0 or more", cfg.duration)
	case cfg.replicas < 1 || cfg.replicas > 26:
		return nil, fmt.Errorf("--replicas %d: want 1 to 26", cfg.replicas)
	case cfg.interval <= 0:
		return nil, fmt.Errorf("--interval %s: want a positive duration", cfg.interval)
	case cfg.threshold < 1:
		return nil, fmt.Errorf("--threshold %d: want 1 or more", cfg.threshold)
	case cfg.openTimeout < time.Millisecond:
		return nil, fmt.Errorf("--open-timeout %s: want 1ms or more", cfg.openTimeout)
	case cfg.display != "auto" && cfg.display != "table" && cfg.display != "lines":
		return nil, fmt.Errorf("--display %q: want auto, table or lines", cfg.display)
	case cfg.role == roleReplica && cfg.upstreamURL == "":
		return nil, fmt.Errorf("--role replica needs --upstream-url or $%s", envUpstreamURL)
	case cfg.role == roleReplica && cfg.redisURL == "":
		return nil, fmt.Errorf("--role replica needs --redis or $%s (replicas in separate processes share a real Redis)", envRedisURL)
	}
	return cfg, nil
}

// run is the demo: it returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	redis.SetLogger(discardLogger{})
	cfg, err := parseArgs(args, os.Getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "demo: %v\n", err)
		return 2
	}
	if cfg.duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.duration)
		defer cancel()
	}
	switch cfg.role {
	case roleUpstream:
		err = runUpstream(ctx, cfg, stdout)
	case roleReplica:
		err = runReplica(ctx, cfg, stdout)
	default:
		var res *result
		res, err = runAll(ctx, cfg, stdout, screenOf(stdout, os.Getenv))
		if err == nil {
			res.print(stdout)
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "demo: %s\n", redactErr(err, cfg.redisURL))
		return 1
	}
	return 0
}

// discardLogger drops go-redis's own log lines.
type discardLogger struct{}

func (discardLogger) Printf(context.Context, string, ...any) {}

// redactErr is err's text with the password of redisURL hidden, in every
// spelling, even when redisURL is too broken to parse.
func redactErr(err error, redisURL string) string {
	return redact.String(err.Error(), redact.Secrets(redisURL))
}
