package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/tripline/tripline/breaker"
)

// display shows the demo live: either a table redrawn in place every 200ms
// (on a terminal) or one line per event.
type display struct {
	out      io.Writer
	cfg      *config
	backend  string
	since    func() time.Duration
	table    bool
	size     func() (width, height int) // the screen's size, read at each frame
	replicas []*replica
	observer loader

	mu     sync.Mutex // guards out and recent
	recent []string   // the last lines, for the table
}

// loader reads a circuit's state: the display's view of the store.
type loader interface {
	Load(ctx context.Context, name string) (breaker.Snapshot, error)
}

// maxRecent is how many events the table keeps; a screen shows the latest
// that fit.
const maxRecent = 200

func newDisplay(out io.Writer, cfg *config, backend string, since func() time.Duration, scr screen) *display {
	d := &display{out: out, cfg: cfg, backend: backend, since: since, size: scr.size}
	if d.size == nil {
		d.size = func() (int, int) { return defaultWidth, defaultHeight }
	}
	d.table = cfg.display == "table" || (cfg.display == "auto" && scr.tty)
	if !d.table {
		fmt.Fprintf(out, "tripline demo: %d replicas share circuit %q in %s; upstream schedule %s; running %s\n",
			cfg.replicas, cfg.circuit, backend, cfg.sched, durationText(cfg.duration))
		fmt.Fprintf(out, "breaker: trips after %d consecutive failures, stays open %s, then one probe\n",
			cfg.threshold, cfg.openTimeout)
	}
	return d
}

func durationText(d time.Duration) string {
	if d == 0 {
		return "until interrupted"
	}
	return "for " + d.String()
}

// log records one event line, stamped with the time since the start.
func (d *display) log(line string) {
	d.logAt(d.since(), line)
}

func (d *display) logAt(at time.Duration, line string) {
	line = fmt.Sprintf("%7.2fs  %s", at.Seconds(), line)
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.table {
		d.recent = append(d.recent, line)
		if len(d.recent) > maxRecent {
			d.recent = d.recent[len(d.recent)-maxRecent:]
		}
		return
	}
	fmt.Fprintln(d.out, line)
}

// run shows the upstream's phases and, in table mode, redraws until ctx is
// done.
func (d *display) run(ctx context.Context) {
	const frame = 200 * time.Millisecond
	timer := time.NewTimer(0)
	defer timer.Stop()
	lastStart := time.Duration(-1)
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		now := d.since()
		p, start, end := d.cfg.sched.at(now)
		if start != lastStart {
			d.logAt(start, fmt.Sprintf("%-10s %s", "upstream", phaseText(p)))
			lastStart = start
		}
		if d.table {
			d.redraw(ctx)
		}
		// Wake for the next frame, or at the next phase change if sooner,
		// so the log tells the phase change when it happens.
		next := frame
		if end > 0 && end-now < next {
			next = end - now
		}
		timer.Reset(next)
	}
}

// finish draws the last frame and moves below it.
func (d *display) finish() {
	if d.table {
		d.redraw(context.Background())
		_, _ = io.WriteString(d.out, "\n")
	}
}

// redraw paints the table over the previous frame, fitted to the screen.
func (d *display) redraw(ctx context.Context) {
	w, h := d.size()
	text := paint(d.frame(ctx).fit(w, h))
	d.mu.Lock()
	defer d.mu.Unlock()
	_, _ = io.WriteString(d.out, text)
}

// frame is one picture of the live table, before it is fitted to a screen.
type frame struct {
	head   []string // the demo, the upstream, the circuit in the store
	table  []string // the replicas, a header line first
	events []string // the latest events, oldest first
}

// frame takes the picture: the replicas' counts and the store's state now.
func (d *display) frame(ctx context.Context) frame {
	var f frame
	elapsed := d.since()
	p, _, end := d.cfg.sched.at(elapsed)
	upText := phaseText(p)
	if end > 0 {
		upText += fmt.Sprintf(" (until %.1fs)", end.Seconds())
	}
	total := ""
	if d.cfg.duration > 0 {
		total = " of " + d.cfg.duration.String()
	}
	var trips, probes int
	for _, r := range d.replicas {
		s := r.snapshot()
		trips, probes = trips+s.Trips, probes+s.Probes
	}
	f.head = append(f.head,
		fmt.Sprintf("tripline demo  %.1fs%s  fleet-wide: %s, %s  (Ctrl-C stops)",
			elapsed.Seconds(), total, plural(trips, "trip"), plural(probes, "probe")),
		fmt.Sprintf("%d replicas, circuit %q, %s, prefix %q", len(d.replicas), d.cfg.circuit, d.backend, d.cfg.prefix),
		"upstream: "+upText)
	loadCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 150*time.Millisecond)
	snap, err := d.observer.Load(loadCtx, d.cfg.circuit)
	cancel()
	if err != nil {
		f.head = append(f.head, fmt.Sprintf("in the store: cannot read: %v", err))
	} else {
		f.head = append(f.head, fmt.Sprintf("in the store: %s, generation %d, failures %d, probes %d",
			snap.State, snap.Generation, snap.Failures, snap.Probes))
	}

	// Who tripped and who probed is in the events: the columns that fit 80
	// characters are those that change at every call.
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "REPLICA\tSEES\tOK\tFAILED\tREJECTED\tLAST CALL")
	for _, r := range d.replicas {
		s := r.snapshot()
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%s\n", r.name, s.sees(), s.OK, s.Failed, s.Rejected, s.Last)
	}
	_ = tw.Flush()
	f.table = strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")

	d.mu.Lock()
	f.events = slices.Clone(d.recent)
	d.mu.Unlock()
	return f
}

// fit returns the frame's lines for a screen of width x height: the latest
// events that fit below the table, every line cut to width-1 columns (a
// character in the last column makes some terminals wrap), and at most
// height lines.
func (f frame) fit(width, height int) []string {
	width, height = max(width, 2), max(height, 1)
	lines := slices.Concat(f.head, []string{""}, f.table)
	// The events, if at least one fits under their title.
	if room := height - len(lines) - 2; room > 0 {
		lines = append(lines, "", "events:")
		lines = append(lines, f.events[max(0, len(f.events)-room):]...)
	}
	lines = lines[:min(len(lines), height)]
	for i, l := range lines {
		lines[i] = cut(l, width-1)
	}
	return lines
}

// cut shortens line to at most n characters, marking a cut with "…", and
// blanks control characters, which would move the cursor.
func cut(line string, n int) string {
	r := []rune(line)
	for i, c := range r {
		if unicode.IsControl(c) {
			r[i] = ' '
		}
	}
	if len(r) > n {
		r = append(r[:n-1], '…')
	}
	return string(r)
}

// paint draws lines from the top left corner of the screen over what is
// there. Each line clears the rest of its row and the last clears the rest
// of the screen, with no full clear, which makes the screen flicker. The
// cursor stays at the end of the last line, so the screen never scrolls.
func paint(lines []string) string {
	var b strings.Builder
	b.WriteString(cursorHome)
	for i, l := range lines {
		if i > 0 {
			b.WriteString("\n")
		}
		b.WriteString(l)
		b.WriteString(clearLine)
	}
	b.WriteString(clearBelow)
	return b.String()
}

// The terminal controls paint uses (ECMA-48).
const (
	cursorHome = "\x1b[H" // move to row 1, column 1
	clearLine  = "\x1b[K" // erase to the end of the line
	clearBelow = "\x1b[J" // erase to the end of the screen
)
