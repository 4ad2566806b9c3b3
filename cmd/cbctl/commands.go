package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/tripline/tripline/breaker"
	redisstore "github.com/tripline/tripline/store/redis"
)

// globalFlags are the connection flags every command that talks to Redis
// takes.
type globalFlags struct {
	redisURL string
	cluster  string
	prefix   string
	timeout  time.Duration
}

// commands builds the command tree.
func (a *app) commands() *cobra.Command {
	var g globalFlags
	root := &cobra.Command{
		Use:   "cbctl",
		Short: "See and steer tripline circuit breakers shared through Redis",
		Long: `cbctl shows and steers the circuits that tripline breakers share through Redis.

Connection: --redis URL (redis:// or rediss://, user and password in the URL),
or the REDIS_URL environment variable, or --cluster host:port,... for Redis
Cluster. --prefix must match the prefix the services use (default "tripline").

Exit codes: 0 success, 1 failure (Redis unreachable or refusing, nothing
stored for the circuit to change, ...), 2 bad usage. The reference is
docs/cbctl.md in tripline's repository.`,
		SilenceErrors: true,
		SilenceUsage:  true,
		RunE: func(*cobra.Command, []string) error {
			return usageErrorf("missing command")
		},
	}
	root.CompletionOptions.DisableDefaultCmd = true
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return &exitError{code: exitUsage, err: err}
	})
	pf := root.PersistentFlags()
	pf.StringVar(&g.redisURL, "redis", "", "Redis URL: redis://[user:password@]host:port[/db] or rediss://... (default $REDIS_URL)")
	pf.StringVar(&g.cluster, "cluster", "", "Redis Cluster nodes: host:port,host:port,... (an entry may be a redis:// URL carrying the password)")
	pf.StringVar(&g.prefix, "prefix", "tripline", "key prefix the services' stores use")
	pf.DurationVar(&g.timeout, "timeout", 10*time.Second, "how long a command may take (not watch)")

	root.AddCommand(
		a.listCmd(&g),
		a.getCmd(&g),
		a.overrideCmd(&g, "open", breaker.CommandForceOpen,
			"Force a circuit open: every replica rejects calls until reset or --for ends"),
		a.overrideCmd(&g, "close", breaker.CommandForceClose,
			"Force a circuit closed: every replica admits calls (still counted, never tripping) until reset or --for ends"),
		a.resetCmd(&g),
		a.watchCmd(&g),
		a.versionCmd(),
	)
	return root
}

// action wraps a command's body: its errors are failures (exit code 1)
// unless they say otherwise.
func action(f func(cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error { return failure(f(cmd, args)) }
}

// nameArg accepts exactly one circuit name.
func nameArg(_ *cobra.Command, args []string) error {
	switch {
	case len(args) == 0:
		return usageErrorf("missing circuit NAME")
	case len(args) > 1:
		return usageErrorf("one circuit NAME expected, got %d arguments", len(args))
	}
	return checkName(args[0])
}

func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usageErrorf("%s takes no arguments, got %q", cmd.Name(), strings.Join(args, " "))
	}
	return nil
}

func checkName(name string) error {
	switch {
	case name == "":
		return usageErrorf("circuit name is empty")
	case len(name) > breaker.MaxNameLen:
		return usageErrorf("circuit name is %d bytes, longer than %d", len(name), breaker.MaxNameLen)
	case !utf8.ValidString(name):
		return usageErrorf("circuit name %q is not valid UTF-8", name)
	}
	return nil
}

// addOutputFlag adds -o to a read command.
func addOutputFlag(fs *pflag.FlagSet, out *string) {
	fs.StringVarP(out, "output", "o", "table", "output format: table or json")
}

func checkOutput(out string) error {
	if out != "table" && out != "json" {
		return usageErrorf("-o %q: want table or json", out)
	}
	return nil
}

// session is an open connection to the circuits under one prefix.
type session struct {
	conn    *connSpec
	client  redis.UniversalClient
	store   *redisstore.Store
	timeout time.Duration // --timeout; 0 for watch, which runs until interrupted
}

// connect opens the store the flags describe. Usage errors come back with
// exit code 2; nothing is dialled yet.
func (a *app) connect(g *globalFlags) (*session, error) {
	if g.prefix == "" {
		return nil, usageErrorf("--prefix is empty")
	}
	if g.timeout <= 0 {
		return nil, usageErrorf("--timeout %s: want a positive duration", g.timeout)
	}
	conn, err := parseConn(g.redisURL, g.cluster, a.getenv("REDIS_URL"))
	if err != nil {
		return nil, err
	}
	if conn.single != nil {
		conn.single.ContextTimeoutEnabled = true
	} else {
		conn.cluster.ContextTimeoutEnabled = true
	}
	client := conn.client()
	// --timeout bounds every command as a whole; the store's own short
	// per-call deadline is for services on their hot path, not for operators.
	// Strict: cbctl keeps no local views, so it never subscribes and is not
	// counted among the prefix's followers.
	store := redisstore.New(client, redisstore.WithPrefix(g.prefix), redisstore.WithCallTimeout(0), redisstore.WithStrict())
	if err := store.Err(); err != nil {
		// Only the flags reach New: a prefix with '{', '}' or too long.
		_ = store.Close()
		_ = client.Close()
		msg := strings.TrimPrefix(err.Error(), "redisstore: invalid store: ")
		msg = strings.TrimPrefix(strings.TrimPrefix(msg, fmt.Sprintf("prefix %q ", g.prefix)), "prefix ")
		return nil, usageErrorf("--prefix %q: %s", g.prefix, msg)
	}
	return &session{conn: conn, client: client, store: store, timeout: g.timeout}, nil
}

func (s *session) close() {
	_ = s.store.Close()
	_ = s.client.Close()
}

// withSession connects as the flags say and runs fn with a ctx bounded by
// --timeout, then closes the connection. list, get, open, close and reset
// use it; watch runs until interrupted, without the timeout.
func (a *app) withSession(ctx context.Context, g *globalFlags, fn func(context.Context, *session) error) error {
	s, err := a.connect(g)
	if err != nil {
		return err
	}
	defer s.close()
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	return fn(ctx, s)
}

// fail turns the error of a call to Redis into one line: the action, the
// target, and the cause in the operator's terms (explain, in errors.go),
// without any password.
func (s *session) fail(what string, acc access, err error) error {
	if errors.Is(err, context.Canceled) {
		return fmt.Errorf("%s: interrupted", what)
	}
	return errors.New(what + ": " + s.cause(acc, err))
}

// cause is "TARGET: CAUSE (DETAIL)" for an error of a call to Redis: the
// part of fail's line after the action, also used in notes.
func (s *session) cause(acc access, err error) string { return s.explain(acc, false, err) }

// causeLive is cause for a connection that had worked (watch lost it): the
// hints about the address, port and TLS do not apply.
func (s *session) causeLive(acc access, err error) string { return s.explain(acc, true, err) }

func (s *session) explain(acc access, live bool, err error) string {
	fc := failContext{
		access:  acc,
		user:    s.conn.redact(s.conn.user()), // go-redis takes a lone userinfo, a password to some, for the user
		prefix:  s.store.Prefix(),
		channel: s.store.Channel(),
		timeout: s.timeout,
		tls:     s.conn.usesTLS(),
		live:    live,
	}
	return s.conn.redact(fmt.Sprintf("%s: %s", s.conn.describe(), explain(err, fc)))
}

// now reads the Redis server's clock, the clock the circuits' times come
// from.
func (s *session) now(ctx context.Context) (time.Time, error) {
	t, err := s.client.Time(ctx).Result()
	if err != nil {
		return time.Time{}, s.fail("read server time", accessRead, err)
	}
	return t.UTC(), nil
}

// mutation is what open, close and reset share.
type mutation struct {
	ttl    time.Duration
	reason string
	actor  string
	create bool
}

func (a *app) mutationFlags(fs *pflag.FlagSet, m *mutation, kind breaker.CommandKind) {
	if kind == breaker.CommandReset {
		// The apply script takes a reset's actor and reason but keeps
		// neither: the override it removes goes with its own, and the
		// event it publishes says only "reset".
		fs.StringVar(&m.reason, "reason", "", "why, printed in cbctl's confirmation line only: reset removes the override, stores no reason and publishes none")
		fs.StringVar(&m.actor, "actor", "", "who gives the command, printed in the confirmation line only (default: the OS user, "+a.osUser()+")")
	} else {
		fs.DurationVar(&m.ttl, "for", 0, "how long the override holds, e.g. 10m (default: until reset; without an end it may lapse once no replica has called the circuit for half the store's idle TTL, 12h by default)")
		fs.StringVar(&m.reason, "reason", "", "why: stored with the override, shown by get and list until it ends")
		fs.StringVar(&m.actor, "actor", "", "who gives the command, stored with the override (default: the OS user, "+a.osUser()+")")
	}
	fs.BoolVar(&m.create, "create", false, "act even if the store holds no state for the circuit")
}

func (a *app) overrideCmd(g *globalFlags, use string, kind breaker.CommandKind, short string) *cobra.Command {
	var m mutation
	cmd := &cobra.Command{
		Use:   use + " NAME --reason TEXT [--for 10m]",
		Short: short,
		Args:  nameArg,
		RunE: action(func(cmd *cobra.Command, args []string) error {
			if m.ttl < 0 {
				return usageErrorf("--for %s: want a positive duration", m.ttl)
			}
			if m.ttl > 0 && m.ttl < time.Millisecond {
				return usageErrorf("--for %s: want at least 1ms", m.ttl)
			}
			if strings.TrimSpace(m.reason) == "" {
				return usageErrorf("--reason is required: say why, for the next operator")
			}
			return a.apply(cmd.Context(), g, args[0], kind, m)
		}),
	}
	a.mutationFlags(cmd.Flags(), &m, kind)
	return cmd
}

func (a *app) resetCmd(g *globalFlags) *cobra.Command {
	var m mutation
	cmd := &cobra.Command{
		Use:   "reset NAME [--reason TEXT]",
		Short: "Close a circuit, clear its counters and remove any override, for every replica",
		Args:  nameArg,
		RunE: action(func(cmd *cobra.Command, args []string) error {
			return a.apply(cmd.Context(), g, args[0], breaker.CommandReset, m)
		}),
	}
	a.mutationFlags(cmd.Flags(), &m, breaker.CommandReset)
	return cmd
}

// apply sends an operator's command through the store's Apply, the same
// script the library's Reset, ForceOpen and ForceClose use.
func (a *app) apply(ctx context.Context, g *globalFlags, name string, kind breaker.CommandKind, m mutation) error {
	if m.actor == "" {
		m.actor = a.osUser()
	}
	if len(m.reason) > redisstore.MaxNoteLen || len(m.actor) > redisstore.MaxNoteLen {
		return usageErrorf("--reason and --actor may be at most %d bytes", redisstore.MaxNoteLen)
	}
	c := breaker.Command{Kind: kind, TTL: m.ttl, Actor: m.actor, Reason: m.reason, IfExists: !m.create}
	return a.withSession(ctx, g, func(ctx context.Context, s *session) error {
		r, err := s.store.Apply(ctx, name, c)
		if errors.Is(err, breaker.ErrUnknownCircuit) {
			return fmt.Errorf("circuit %s: nothing stored under prefix %q: it is closed with no failure counted, or the name or --prefix is wrong (give --create to %s it anyway)",
				shown(name), s.store.Prefix(), kind)
		}
		if err != nil {
			return s.fail(kind.String()+" circuit "+shown(name), accessChange, err)
		}
		_, err = fmt.Fprintln(a.stdout, describeApply(name, c, r))
		return err
	})
}

func (a *app) versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print cbctl's version",
		Args:  noArgs,
		RunE: action(func(*cobra.Command, []string) error {
			_, err := fmt.Fprintln(a.stdout, versionString())
			return err
		}),
	}
}
