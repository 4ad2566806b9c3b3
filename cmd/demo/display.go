package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	redisstore "github.com/tripline/tripline/store/redis"
)

// display shows the demo live: either a table redrawn every 200ms (on a
// terminal) or one line per event.
type display struct {
	out      io.Writer
	cfg      *config
	backend  string
	since    func() time.Duration
	table    bool
	replicas []*replica
	observer *redisstore.Store

	mu     sync.Mutex // guards out and recent
	recent []string   // the last lines, for the table
}

const recentLines = 14

func newDisplay(out io.Writer, cfg *config, backend string, since func() time.Duration, tty bool) *display {
	d := &display{out: out, cfg: cfg, backend: backend, since: since}
	d.table = cfg.display == "table" || (cfg.display == "auto" && tty)
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
		if len(d.recent) > recentLines {
			d.recent = d.recent[len(d.recent)-recentLines:]
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

// finish draws the last frame.
func (d *display) finish() {
	if d.table {
		d.redraw(context.Background())
	}
}

// redraw paints the table over the previous frame.
func (d *display) redraw(ctx context.Context) {
	var b strings.Builder
	b.WriteString("\x1b[H\x1b[2J") // home, clear
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
	fmt.Fprintf(&b, "tripline demo  %.1fs%s  %d replicas, circuit %q, %s, prefix %q  (Ctrl-C stops)\n",
		elapsed.Seconds(), total, len(d.replicas), d.cfg.circuit, d.backend, d.cfg.prefix)
	fmt.Fprintf(&b, "upstream: %s\n", upText)
	loadCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 150*time.Millisecond)
	snap, err := d.observer.Load(loadCtx, d.cfg.circuit)
	cancel()
	if err != nil {
		fmt.Fprintf(&b, "circuit %q: cannot read: %v\n\n", d.cfg.circuit, err)
	} else {
		fmt.Fprintf(&b, "in the store: %s, generation %d, failures %d, probes %d\n\n",
			snap.State, snap.Generation, snap.Failures, snap.Probes)
	}
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "REPLICA\tSEES\tCALLS\tOK\tFAILED\tREJECTED\tPROBES\tTRIPS\tLAST")
	for _, r := range d.replicas {
		s := r.snapshot()
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%s\n",
			r.name, s.sees(), s.Calls, s.OK, s.Failed, s.Rejected, s.Probes, s.Trips, s.Last)
	}
	_ = tw.Flush()
	b.WriteString("\nevents:\n")
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, line := range d.recent {
		b.WriteString(line + "\n")
	}
	_, _ = io.WriteString(d.out, b.String())
}
