package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/tripline/tripline/breaker"
	redisstore "github.com/tripline/tripline/store/redis"
)

// circuitJSON is one circuit in -o json output. Its fields are documented
// in docs/cbctl.md; keep them stable.
type circuitJSON struct {
	Name        string        `json:"name"`
	State       string        `json:"state"`
	ProbeDue    bool          `json:"probe_due"`
	Stored      bool          `json:"stored"`
	Generation  uint64        `json:"generation"`
	Failures    *int          `json:"failures"`
	Successes   int           `json:"successes"`
	Probes      int           `json:"probes"`
	LastFailure *time.Time    `json:"last_failure"`
	OpenedAt    *time.Time    `json:"opened_at"`
	RetryAt     *time.Time    `json:"retry_at"`
	RetryInMS   *int64        `json:"retry_in_ms"`
	Override    *overrideJSON `json:"override"`
	Followers   *int          `json:"followers"`
	Error       *string       `json:"error"`
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
	Event      string    `json:"event"` // "transition"
	Name       string    `json:"name"`
	From       string    `json:"from"`
	To         string    `json:"to"`
	Generation uint64    `json:"generation"`
	Cause      string    `json:"cause"`
}

// gapJSON is a break in watch -o json output: the stream was interrupted,
// or it resumed.
type gapJSON struct {
	Time  time.Time `json:"time"`
	Event string    `json:"event"`           // "interrupted" or "resumed"
	Error string    `json:"error,omitempty"` // why it was interrupted
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

// probeDue reports that an open circuit's retry time has passed: Redis
// still holds it open, and the next call moves it to half-open and probes.
func probeDue(s breaker.Snapshot, now time.Time) bool {
	d, ok := retryIn(s, now)
	return ok && d == 0
}

// failures is the count shown for a circuit: the scripts clear it when the
// circuit trips (scripts/lua/lib.lua, transition), so while open or
// half-open Redis holds no count, and it is not known.
func failures(s breaker.Snapshot) (int, bool) {
	if s.State != breaker.StateClosed {
		return 0, false
	}
	return s.Failures, true
}

// stateLabel is the STATE shown in tables: the state, "open, probe due"
// once an open circuit's retry time has passed, or "corrupt".
func stateLabel(e redisstore.Entry, now time.Time) string {
	switch {
	case e.Err != nil:
		return stateCorrupt
	case probeDue(e.Snapshot, now):
		return "open, probe due"
	}
	return e.State.String()
}

func toJSON(e redisstore.Entry, now time.Time) circuitJSON {
	s := e.Snapshot
	if e.Err != nil {
		msg := e.Err.Error()
		return circuitJSON{Name: s.Name, State: stateCorrupt, Stored: true, Error: &msg}
	}
	c := circuitJSON{
		Name:        s.Name,
		State:       s.State.String(),
		ProbeDue:    probeDue(s, now),
		Stored:      true,
		Generation:  s.Generation,
		Successes:   s.Successes,
		Probes:      s.Probes,
		LastFailure: optTime(s.LastFailure),
		OpenedAt:    optTime(s.OpenedAt),
		RetryAt:     optTime(s.RetryAt),
	}
	if n, ok := failures(s); ok {
		c.Failures = &n
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

func listJSON(entries []redisstore.Entry, now time.Time) []circuitJSON {
	out := make([]circuitJSON, 0, len(entries)) // [] rather than null when empty
	for _, e := range entries {
		out = append(out, toJSON(e, now))
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
//	NAME      STATE            FAILURES  GENERATION  PROBE IN  OVERRIDE
//	payments  open, probe due  -         3           now       -
//	search    closed           2         0           -         -
func writeListTable(w io.Writer, entries []redisstore.Entry, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSTATE\tFAILURES\tGENERATION\tPROBE IN\tOVERRIDE")
	for _, e := range entries {
		if e.Err != nil {
			fmt.Fprintf(tw, "%s\t%s\t-\t-\t-\t-\n", shown(e.Name), stateCorrupt)
			continue
		}
		s := e.Snapshot
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n",
			shown(s.Name), stateLabel(e, now), failuresCell(s), s.Generation, probeIn(s, now), overrideSummary(s.Override, now))
	}
	return tw.Flush()
}

// failuresCell is the FAILURES column: the count while closed, "-" while
// open or half-open, when Redis holds none.
func failuresCell(s breaker.Snapshot) string {
	if n, ok := failures(s); ok {
		return strconv.Itoa(n)
	}
	return "-"
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

// newGetWriter aligns get's "field: value" lines.
func newGetWriter(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 0, 1, ' ', 0) }

// writeGetTable prints one circuit as "field: value" lines.
func writeGetTable(w io.Writer, s breaker.Snapshot, now time.Time) error {
	tw := newGetWriter(w)
	row := func(k, v string) { fmt.Fprintf(tw, "%s:\t%s\n", k, v) }
	row("name", shown(s.Name))
	row("state", stateLabel(redisstore.Entry{Snapshot: s}, now))
	row("generation", fmt.Sprint(s.Generation))
	if n, ok := failures(s); ok {
		row("failures", strconv.Itoa(n))
	} else {
		row("failures", "- (Redis clears the count when the circuit trips)")
	}
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

// shown is s as the table and text output print it: as is when it reads
// unambiguously, else quoted with Go escapes. Quoted are: a character that
// is not printable, so that a name holding "\n" or an escape sequence can
// neither add rows to a table nor send control codes to the operator's
// terminal; spaces at either end or two in a row, which a table would
// show as a blank or as a column break; and a leading '"', which would
// look quoted already. JSON output needs no such care: its encoder escapes
// control characters and quotes every string.
func shown(s string) string {
	if s == "" {
		return s
	}
	if !utf8.ValidString(s) || strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 ||
		strings.TrimSpace(s) != s || strings.Contains(s, "  ") || s[0] == '"' {
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
		return writeJSONLine(w, eventJSON{
			Time: ev.At.UTC(), Event: "transition", Name: ev.Name, From: ev.From.String(), To: ev.To.String(),
			Generation: ev.Generation, Cause: ev.Cause,
		})
	}
	line := fmt.Sprintf("%s  %s  %s -> %s  generation %d",
		ev.At.UTC().Format(eventTime), shown(ev.Name), ev.From, ev.To, ev.Generation)
	if ev.Cause != "" {
		line += "  (" + shown(ev.Cause) + ")"
	}
	_, err := fmt.Fprintln(w, line)
	return err
}

// eventTime is the layout of watch's times: milliseconds, UTC.
const eventTime = "2006-01-02T15:04:05.000Z07:00"

// writeJSONLine prints v as one line of JSON.
func writeJSONLine(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}
