package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"os/user"
	"strings"
	"syscall"

	"github.com/redis/go-redis/v9"

	"github.com/tripline/tripline/internal/redact"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// Exit codes.
const (
	exitOK      = 0 // the command did what was asked
	exitFailure = 1 // it could not: Redis unreachable, nothing stored for a circuit to change, ...
	exitUsage   = 2 // the command line is wrong
)

// run is cbctl: it parses args, runs the command and returns the exit code.
// Output goes to stdout; errors go to stderr as one line, with every
// password removed.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return (&app{stdout: stdout, stderr: stderr, getenv: os.Getenv, osUser: osUser}).run(ctx, args)
}

// app holds what a run of cbctl depends on, so tests can replace it.
type app struct {
	stdout, stderr io.Writer
	getenv         func(string) string
	osUser         func() string // the default --actor
}

func (a *app) run(ctx context.Context, args []string) int {
	// go-redis logs some failures to os.Stderr by itself; cbctl reports
	// errors once, in its own words.
	redis.SetLogger(discardLogger{})
	secrets := argSecrets(append([]string{a.getenv("REDIS_URL")}, args...))
	root := a.commands()
	// cobra reads the process's arguments when given nil: run reads only
	// its own.
	root.SetArgs(append([]string{}, args...))
	root.SetOut(a.stdout)
	root.SetErr(a.stderr)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return exitOK
	}
	code := exitUsage
	var ee *exitError
	if errors.As(err, &ee) {
		code = ee.code
	}
	fmt.Fprintf(a.stderr, "cbctl: %s\n", redact.String(err.Error(), secrets))
	if code == exitUsage {
		fmt.Fprintf(a.stderr, "Run '%s --help' for usage.\n", cmd.CommandPath())
	}
	return code
}

// exitError carries the exit code of an error.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// usageErrorf reports a bad command line (exit code 2).
func usageErrorf(format string, args ...any) error {
	return &exitError{code: exitUsage, err: fmt.Errorf(format, args...)}
}

// failure marks err as a failure to do the command (exit code 1), unless it
// already carries a code.
func failure(err error) error {
	if err == nil {
		return nil
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return err
	}
	return &exitError{code: exitFailure, err: err}
}

// argSecrets collects the password of every URL in args, so that no message
// can print one, even for a URL too broken to parse.
func argSecrets(args []string) []string {
	var secrets []string
	for _, arg := range args {
		secrets = append(secrets, redact.Secrets(arg)...)
		for field := range strings.SplitSeq(arg, ",") {
			secrets = append(secrets, redact.Secrets(field)...)
		}
	}
	redact.SortSecrets(secrets)
	return secrets
}

// osUser is the name of the user running cbctl: the default actor.
func osUser() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	if name := os.Getenv("USER"); name != "" {
		return name
	}
	return "unknown"
}

// discardLogger drops go-redis's own log lines.
type discardLogger struct{}

func (discardLogger) Printf(context.Context, string, ...any) {}
