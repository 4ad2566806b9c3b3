package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	redisstore "github.com/tripline/tripline/store/redis"
)

func (a *app) watchCmd(g *globalFlags) *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "watch [NAME...]",
		Short: "Print each state transition as it happens (all circuits, or those named) until interrupted",
		Long: `Print each state transition as it happens (all circuits, or those named)
until interrupted.

Transitions go to stdout. When the subscription is lost (Redis went away,
the connection broke or stopped answering), watch says so on stderr and
keeps trying; once it is back it says so again. Transitions published in
between are missed: cbctl list shows the state. With -o json both are
also objects on stdout: {"event": "interrupted"} and {"event": "resumed"}.`,
		Args: func(_ *cobra.Command, args []string) error {
			for _, name := range args {
				if err := checkName(name); err != nil {
					return err
				}
			}
			return nil
		},
		RunE: action(func(cmd *cobra.Command, names []string) error {
			if err := checkOutput(out); err != nil {
				return err
			}
			s, err := a.connect(g)
			if err != nil {
				return err
			}
			defer s.close()
			s.timeout = 0 // watch runs until interrupted
			return a.watch(cmd.Context(), s, out, names)
		}),
	}
	addOutputFlag(cmd.Flags(), &out)
	return cmd
}

func (a *app) watch(ctx context.Context, s *session, out string, names []string) error {
	events, err := s.store.WatchGaps(ctx, names...)
	if err != nil {
		return s.fail("watch", accessWatch, err)
	}
	// The subscription is live: say so on stderr, so stdout holds
	// transitions only.
	fmt.Fprintf(a.stderr, "watching %s on %s; interrupt to stop\n", s.store.Channel(), s.conn.describe())
	// A break in the stream carries no Redis time: it is stamped with
	// this machine's clock when cbctl reads it.
	var lostAt time.Time
	for ev := range events {
		switch ev.Kind {
		case redisstore.EventLost:
			lostAt = time.Now()
			err = a.watchGap(out, lostAt, "interrupted", s.lostCause(ev.Err),
				"watch interrupted: %s; transitions published until it resumes may be missed", s.lostCause(ev.Err))
		case redisstore.EventResumed:
			at := time.Now()
			err = a.watchGap(out, at, "resumed", "",
				"watch resumed after %s; transitions in that time may have been missed: cbctl list shows the state now",
				shortDuration(max(at.Sub(lostAt), 0)))
		default:
			err = writeEvent(a.stdout, out, ev)
		}
		if err != nil {
			return err
		}
	}
	if ctx.Err() != nil {
		return nil // interrupted: the normal end of watch
	}
	return s.fail("watch", accessWatch, errors.New("subscription closed"))
}

// watchGap reports a break in watch's stream: a line on stderr, with the
// local time, and with -o json an object on stdout too, so that a program
// reading the stream knows.
func (a *app) watchGap(out string, at time.Time, event, cause, format string, args ...any) error {
	fmt.Fprintf(a.stderr, "%s  %s\n", at.UTC().Format(eventTime), fmt.Sprintf(format, args...))
	if out != "json" {
		return nil
	}
	return writeJSONLine(a.stdout, gapJSON{Time: at.UTC(), Event: event, Error: cause})
}

// lostCause says why the subscription was lost, in the words of fail,
// without the hints about addresses, ports and TLS that only help a
// connection that never worked.
func (s *session) lostCause(err error) string {
	if err == nil {
		err = io.ErrUnexpectedEOF
	}
	return s.causeLive(accessWatch, err)
}
