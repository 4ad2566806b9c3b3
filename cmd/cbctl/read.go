package main

import (
	"context"
	"fmt"
	"io"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/tripline/tripline/breaker"
	redisstore "github.com/tripline/tripline/store/redis"
)

// stateCorrupt is the --state value, and the STATE shown, of a circuit
// whose data tripline cannot read.
const stateCorrupt = "corrupt"

func (a *app) listCmd(g *globalFlags) *cobra.Command {
	var out, stateFlag string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List every circuit under the prefix, sorted by name",
		Long: `List every circuit under the prefix, sorted by name.

A circuit Redis holds nothing for is not listed: a closed circuit writes
nothing until its first failure. An empty list says why on stderr.

--state open lists every circuit Redis holds as open, those whose retry
time has passed included: they show as "open, probe due" (the next call
moves them to half-open and probes). --state corrupt lists the circuits
whose data tripline cannot read (cbctl reset rewrites them).`,
		Args: noArgs,
		RunE: action(func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(out); err != nil {
				return err
			}
			keep, err := stateFilter(stateFlag)
			if err != nil {
				return err
			}
			return a.withSession(cmd.Context(), g, func(ctx context.Context, s *session) error {
				return a.list(ctx, s, out, stateFlag, keep)
			})
		}),
	}
	addOutputFlag(cmd.Flags(), &out)
	cmd.Flags().StringVar(&stateFlag, "state", "", "show only circuits in this state: closed, open, half-open or corrupt")
	return cmd
}

// stateFilter is the test --state asks for; nil keeps every circuit.
func stateFilter(flag string) (func(redisstore.Entry) bool, error) {
	if flag == "" {
		return nil, nil
	}
	if flag == stateCorrupt {
		return func(e redisstore.Entry) bool { return e.Err != nil }, nil
	}
	st, err := breaker.ParseState(flag)
	if err != nil {
		return nil, usageErrorf("--state %q: want closed, open, half-open or corrupt", flag)
	}
	return func(e redisstore.Entry) bool { return e.Err == nil && e.State == st }, nil
}

func (a *app) list(ctx context.Context, s *session, out, stateFlag string, keep func(redisstore.Entry) bool) error {
	all, err := s.store.List(ctx)
	if err != nil {
		return s.fail("list circuits", accessRead, err)
	}
	now, err := s.now(ctx)
	if err != nil {
		return err
	}
	entries := all
	if keep != nil {
		entries = make([]redisstore.Entry, 0, len(all))
		for _, e := range all {
			if keep(e) {
				entries = append(entries, e)
			}
		}
	}
	if out == "json" {
		err = writeJSON(a.stdout, listJSON(entries, now))
	} else {
		err = writeListTable(a.stdout, entries, now)
	}
	if err != nil {
		return err
	}
	// Notes go to stderr, so stdout stays the table or the JSON array.
	for _, e := range all {
		if e.Err != nil {
			fmt.Fprintf(a.stderr, "note: %s\n", explain(e.Err, failContext{}))
		}
	}
	if len(entries) == 0 {
		fmt.Fprintf(a.stderr, "note: %s\n", s.whyEmpty(ctx, len(all), stateFlag))
	}
	return nil
}

// whyEmpty says why list shows nothing: a --state that no circuit is in, a
// prefix in use whose circuits are all healthy, or a prefix nothing
// follows.
func (s *session) whyEmpty(ctx context.Context, listed int, stateFlag string) string {
	prefix := strconv.Quote(s.store.Prefix())
	if listed > 0 {
		return fmt.Sprintf("none of the %d circuits under prefix %s is %s", listed, prefix, stateFlag)
	}
	n, err := s.store.Subscribers(ctx)
	switch {
	case err != nil:
		return fmt.Sprintf("no circuit stored under prefix %s (%s); whether any replica follows the prefix is unknown: %s",
			prefix, healthyNote, s.cause(accessRead, err))
	case n == 0:
		return noPrefixUse(s.store.Prefix())
	}
	return fmt.Sprintf("no circuit stored under prefix %s: %s; %s", prefix, followersNote(n, s.store.Channel()), healthyNote)
}

// healthyNote is why Redis may hold nothing for a circuit in use.
const healthyNote = "a closed circuit writes nothing to Redis until its first failure"

// noPrefixUse is what cbctl says when Redis holds nothing under the prefix
// and nothing subscribes to its channel: most likely a wrong --prefix.
func noPrefixUse(prefix string) string {
	return fmt.Sprintf("nothing stored under prefix %s and no replica follows it: check --prefix", strconv.Quote(prefix))
}

// followersNote says how many subscriptions follow the prefix's channel.
func followersNote(n int, channel string) string {
	noun, verb := "subscriptions", "follow"
	if n == 1 {
		noun, verb = "subscription", "follows"
	}
	return fmt.Sprintf("%d %s to %s %s it (replicas' Stores in use, watchers)", n, noun, channel, verb)
}

func (a *app) getCmd(g *globalFlags) *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "get NAME",
		Short: "Show one circuit in full, including the override's who, why and when",
		Long: `Show one circuit in full, including the override's who, why and when.

A circuit Redis holds nothing for is shown as closed with nothing stored
(a healthy closed circuit writes nothing until its first failure), with
how many subscriptions follow the prefix. If nothing at all is stored
under the prefix and nothing follows it, get fails (exit 1): the prefix
is most likely wrong.`,
		Args: nameArg,
		RunE: action(func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(out); err != nil {
				return err
			}
			name := args[0]
			return a.withSession(cmd.Context(), g, func(ctx context.Context, s *session) error {
				return a.get(ctx, s, name, out)
			})
		}),
	}
	addOutputFlag(cmd.Flags(), &out)
	return cmd
}

func (a *app) get(ctx context.Context, s *session, name, out string) error {
	snap, found, err := s.store.Find(ctx, name)
	if err != nil {
		return s.fail("load circuit "+shown(name), accessRead, err)
	}
	snap.Name = name
	now, err := s.now(ctx)
	if err != nil {
		return err
	}
	if found {
		if out == "json" {
			return writeJSON(a.stdout, toJSON(redisstore.Entry{Snapshot: snap}, now))
		}
		return writeGetTable(a.stdout, snap, now)
	}
	u := s.prefixUse(ctx)
	if u.unused() {
		return fmt.Errorf("circuit %s: %s", shown(name), noPrefixUse(s.store.Prefix()))
	}
	if out == "json" {
		c := toJSON(redisstore.Entry{Snapshot: snap}, now)
		c.Stored = false
		if u.followersErr == "" {
			c.Followers = &u.followers
		}
		return writeJSON(a.stdout, c)
	}
	return writeMissingTable(a.stdout, name, s.store.Prefix(), s.store.Channel(), u)
}

// prefixUse is what Redis shows of the use of the prefix: how many
// subscriptions follow its channel, and whether any circuit is stored
// under it. Either may be unknown: an ACL may refuse PUBSUB.
type prefixUse struct {
	followers    int
	followersErr string // why followers is unknown, or ""
	stored       bool   // a circuit is stored under the prefix
	complete     bool   // the scan saw every key: !stored means none
	storedErr    string // why stored is unknown, or ""
}

func (s *session) prefixUse(ctx context.Context) prefixUse {
	var u prefixUse
	n, err := s.store.Subscribers(ctx)
	if err != nil {
		u.followersErr = s.cause(accessRead, err)
	}
	u.followers = n
	u.stored, u.complete, err = s.store.AnyStored(ctx)
	if err != nil {
		u.storedErr = s.cause(accessRead, err)
	}
	return u
}

// unused reports that nothing is stored under the prefix and nothing
// follows it, both for sure.
func (u prefixUse) unused() bool {
	return u.followersErr == "" && u.followers == 0 && u.storedErr == "" && u.complete && !u.stored
}

// writeMissingTable is get's table for a circuit Redis holds nothing for.
func writeMissingTable(w io.Writer, name, prefix, channel string, u prefixUse) error {
	tw := newGetWriter(w)
	row := func(k, v string) { fmt.Fprintf(tw, "%s:\t%s\n", k, v) }
	row("name", shown(name))
	row("state", "closed")
	row("stored", "nothing: "+healthyNote)
	switch {
	case u.followersErr != "":
		row("followers", "unknown: "+u.followersErr)
	case u.followers == 0:
		row("followers", fmt.Sprintf("none subscribe to %s (a replica whose Store is WithStrict never does)", channel))
	default:
		row("followers", followersNote(u.followers, channel))
	}
	q := strconv.Quote(prefix)
	switch {
	case u.storedErr != "":
		row("prefix", q+": unknown whether other circuits are stored: "+u.storedErr)
	case u.stored:
		row("prefix", q+": other circuits are stored")
	case u.complete:
		row("prefix", q+": no circuit is stored")
	default:
		row("prefix", q+": no circuit among the keys scanned")
	}
	return tw.Flush()
}
