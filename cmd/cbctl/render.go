package main

import (
	"encoding/json"
	"fmt"
	"io"
	"runtime/debug"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/tripline/tripline/breaker"
	redisstore "github.com/tripline/tripline/store/redis"
)

// version is set at build time: -ldflags "-X main.version=v1.2.3".
var version = ""

func versionString() string {
	v := version
	goVersion := "unknown"
	if info, ok := debug.ReadBuildInfo(); ok {
		goVersion = info.GoVersion
		if v == "" {
			v = info.Main.Version
		}
	}
	if v == "" || v == "(devel)" {
		v = "devel"
	}
	return fmt.Sprintf("cbctl %s (%s)", v, goVersion)
}

// circuitJSON is one circuit in -o json output. Its fields are documented
// in doc.go; keep them stable.
type circuitJSON struct {
	Name        string        `json:"name"`
	State       string        `json:"state"`
	Generation  uint64        `json:"generation"`
	Failures    int           `json:"failures"`
	Successes   int           `json:"successes"`
	Probes      int           `json:"probes"`
	LastFailure *time.Time    `json:"last_failure"`
	OpenedAt    *time.Time    `json:"opened_at"`
	RetryAt     *time.Time    `json:"retry_at"`
	RetryInMS   *int64        `json:"retry_in_ms"`
	Override    *overrideJSON `json:"override"`
}

type overrideJSON struct {
	Mode   string     `json:"mode"`
	Actor  string     `json:"actor"`
	Reason string     `json:"reason"`
	At     time.Time  `json:"at"`
	Until  *time.Time `json:"until"`
}

// eventJSON is one transition in watch -o json output (one object a line).
type eventJSON struct {
	Time       time.Time `json:"time"`
	Name       string    `json:"name"`
	From       string    `json:"from"`
	To         string    `json:"to"`
	Generation uint64    `json:"generation"`
	Cause      string    `json:"cause"`
}

func optTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

// retryIn is how long until a call may probe an open circuit, and whether
// that is known: it is not for a circuit that is not open, nor for one
// forced open without expiry.
func retryIn(s breaker.Snapshot, now time.Time) (time.Duration, bool) {
	if s.State != breaker.StateOpen || s.RetryAt.IsZero() {
		return 0, false
	}
	return max(s.RetryAt.Sub(now), 0), true
}

func toJSON(s breaker.Snapshot, now time.Time) circuitJSON {
	c := circuitJSON{
		Name:        s.Name,
		State:       s.State.String(),
		Generation:  s.Generation,
		Failures:    s.Failures,
		Successes:   s.Successes,
		Probes:      s.Probes,
		LastFailure: optTime(s.LastFailure),
		OpenedAt:    optTime(s.OpenedAt),
		RetryAt:     optTime(s.RetryAt),
	}
	if d, ok := retryIn(s, now); ok {
		ms := d.Milliseconds()
		c.RetryInMS = &ms
	}
	if o := s.Override; o != nil {
		c.Override = &overrideJSON{
			Mode:   o.Mode.String(),
			Actor:  o.Actor,
			Reason: o.Reason,
			At:     o.At.UTC(),
			Until:  optTime(o.Until),
		}
	}
	return c
}

func listJSON(snaps []breaker.Snapshot, now time.Time) []circuitJSON {
	out := make([]circuitJSON, 0, len(snaps)) // [] rather than null when empty
	for _, s := range snaps {
		out = append(out, toJSON(s, now))
	}
	return out
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// writeListTable prints one line per circuit:
//
//	NAME      STATE  FAILURES  GENERATION  PROBE IN  OVERRIDE
//	payments  open   0         3           42s       -
func writeListTable(w io.Writer, snaps []breaker.Snapshot, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSTATE\tFAILURES\tGENERATION\tPROBE IN\tOVERRIDE")
	for _, s := range snaps {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%s\n",
			shown(s.Name), s.State, s.Failures, s.Generation, probeIn(s, now), overrideSummary(s.Override, now))
	}
	return tw.Flush()
}

// probeIn says when the next probe may run: a duration while open,
// "now" once due, "held" while forced open without expiry, "probing" while
// half-open with a probe out, "-" otherwise.
func probeIn(s breaker.Snapshot, now time.Time) string {
	switch s.State {
	case breaker.StateOpen:
		if d, ok := retryIn(s, now); ok {
			if d == 0 {
				return "now"
			}
			return shortDuration(d)
		}
		return "held"
	case breaker.StateHalfOpen:
		if s.Probes > 0 {
			return "probing"
		}
		return "now"
	}
	return "-"
}

// overrideSummary is the OVERRIDE column: "force-open 9m58s left by alice:
// deploy", "force-close until reset by bob: ...", or "-".
func overrideSummary(o *breaker.Override, now time.Time) string {
	if o == nil {
		return "-"
	}
	var b strings.Builder
	b.WriteString(o.Mode.String())
	if o.Until.IsZero() {
		b.WriteString(" until reset")
	} else {
		fmt.Fprintf(&b, " %s left", shortDuration(max(o.Until.Sub(now), 0)))
	}
	if o.Actor != "" {
		fmt.Fprintf(&b, " by %s", shown(o.Actor))
	}
	if o.Reason != "" {
		fmt.Fprintf(&b, ": %s", shown(oneLine(o.Reason)))
	}
	return b.String()
}

// writeGetTable prints one circuit as "field: value" lines.
func writeGetTable(w io.Writer, s breaker.Snapshot, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 0, 1, ' ', 0)
	row := func(k, v string) { fmt.Fprintf(tw, "%s:\t%s\n", k, v) }
	row("name", shown(s.Name))
	row("state", s.State.String())
	row("generation", fmt.Sprint(s.Generation))
	row("failures", fmt.Sprint(s.Failures))
	row("successes", fmt.Sprint(s.Successes))
	row("probes", fmt.Sprint(s.Probes))
	row("last failure", stamp(s.LastFailure, now))
	row("opened at", stamp(s.OpenedAt, now))
	row("retry at", stamp(s.RetryAt, now))
	row("probe in", probeIn(s, now))
	if o := s.Override; o == nil {
		row("override", "none")
	} else {
		row("override", o.Mode.String())
		row("  actor", orDash(shown(o.Actor)))
		row("  reason", orDash(shown(oneLine(o.Reason))))
		row("  set at", stamp(o.At, now))
		if o.Until.IsZero() {
			row("  until", "reset")
		} else {
			row("  until", stamp(o.Until, now))
		}
	}
	return tw.Flush()
}

// stamp renders a time with its distance from now: "2026-01-02T15:04:05Z
// (3s ago)", or "-" for the zero time.
func stamp(t, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	ts := t.UTC().Format(time.RFC3339)
	switch d := t.Sub(now); {
	case d > 0:
		return fmt.Sprintf("%s (in %s)", ts, shortDuration(d))
	case d < 0:
		return fmt.Sprintf("%s (%s ago)", ts, shortDuration(-d))
	}
	return ts + " (now)"
}

// shortDuration renders d compactly: "850ms", "42s", "9m58s", "2h05m".
func shortDuration(d time.Duration) string {
	switch {
	case d < time.Second:
		return fmt.Sprintf("%dms", d.Milliseconds())
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d/time.Second))
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d/time.Minute), int(d%time.Minute/time.Second))
	}
	return fmt.Sprintf("%dh%02dm", int(d/time.Hour), int(d%time.Hour/time.Minute))
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// shown is s as the table and text output print it: as is when every
// character is printable, else quoted with Go escapes, so that a name
// holding "\n" or an escape sequence can neither add rows to a table nor
// send control codes to the operator's terminal. JSON output needs no such
// care: its encoder escapes control characters.
func shown(s string) string {
	if !utf8.ValidString(s) || strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 {
		return strconv.Quote(s)
	}
	return s
}

// oneLine keeps an operator's reason from breaking the table.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// describeApply is the line open, close and reset print.
func describeApply(name string, c breaker.Command, r breaker.Result) string {
	var b strings.Builder
	b.WriteString(shown(name) + ": ")
	switch c.Kind {
	case breaker.CommandForceOpen:
		b.WriteString("forced open")
	case breaker.CommandForceClose:
		b.WriteString("forced closed")
	default:
		b.WriteString("reset")
	}
	if c.Kind != breaker.CommandReset {
		if c.TTL > 0 {
			fmt.Fprintf(&b, " for %s", c.TTL)
		} else {
			b.WriteString(" until reset")
		}
	}
	fmt.Fprintf(&b, " by %s", shown(c.Actor))
	if c.Reason != "" {
		fmt.Fprintf(&b, " (%s)", shown(oneLine(c.Reason)))
	}
	if t := r.Transition; t.Changed() {
		fmt.Fprintf(&b, "; %s -> %s, generation %d", t.From, t.To, r.Generation)
	} else {
		fmt.Fprintf(&b, "; now %s, generation %d", r.State, r.Generation)
	}
	return b.String()
}

// writeEvent prints one transition for watch.
func writeEvent(w io.Writer, format string, ev redisstore.Event) error {
	if format == "json" {
		b, err := json.Marshal(eventJSON{
			Time: ev.At.UTC(), Name: ev.Name, From: ev.From.String(), To: ev.To.String(),
			Generation: ev.Generation, Cause: ev.Cause,
		})
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "%s\n", b)
		return err
	}
	line := fmt.Sprintf("%s  %s  %s -> %s  generation %d",
		ev.At.UTC().Format("2006-01-02T15:04:05.000Z07:00"), shown(ev.Name), ev.From, ev.To, ev.Generation)
	if ev.Cause != "" {
		line += "  (" + shown(ev.Cause) + ")"
	}
	_, err := fmt.Fprintln(w, line)
	return err
}
