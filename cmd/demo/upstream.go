package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// phase is one stretch of the upstream's schedule.
type phase struct {
	up  bool
	dur time.Duration // 0: for ever (only the last phase)
}

// schedule is when the flaky upstream answers and when it fails. If the last
// phase has a duration, the schedule repeats.
type schedule []phase

// parseSchedule reads "up=3s,down=5s,up": phases in order, each "up" or
// "down" with a duration; the last may omit it to last for ever.
func parseSchedule(text string) (schedule, error) {
	var s schedule
	parts := strings.Split(text, ",")
	for i, part := range parts {
		part = strings.TrimSpace(part)
		word, durText, hasDur := strings.Cut(part, "=")
		var p phase
		switch word {
		case "up":
			p.up = true
		case "down":
		default:
			return nil, fmt.Errorf("schedule %q: phase %q: want up=DURATION or down=DURATION", text, part)
		}
		if hasDur {
			d, err := time.ParseDuration(durText)
			if err != nil || d <= 0 {
				return nil, fmt.Errorf("schedule %q: phase %q: want a positive duration", text, part)
			}
			p.dur = d
		} else if i != len(parts)-1 {
			return nil, fmt.Errorf("schedule %q: phase %q: only the last phase may omit its duration", text, part)
		}
		s = append(s, p)
	}
	if len(s) == 0 {
		return nil, fmt.Errorf("schedule %q is empty", text)
	}
	return s, nil
}

// at returns the phase in force at elapsed time t since the start, with its
// start and end (end is zero for a phase that lasts for ever).
func (s schedule) at(t time.Duration) (p phase, start, end time.Duration) {
	var cycle time.Duration // the schedule's length if it repeats, else 0
	if s[len(s)-1].dur > 0 {
		for _, ph := range s {
			cycle += ph.dur
		}
	}
	var base time.Duration // the start of the current repetition
	if cycle > 0 {
		base = t - t%cycle
		t %= cycle
	}
	from := base
	for _, ph := range s {
		if ph.dur == 0 {
			return ph, from, 0
		}
		if t < from-base+ph.dur {
			return ph, from, from + ph.dur
		}
		from += ph.dur
	}
	panic("unreachable: a repeating schedule covers its cycle")
}

// downStarts lists when each down phase starts within the first d.
func (s schedule) downStarts(d time.Duration) []time.Duration {
	var starts []time.Duration
	for t := time.Duration(0); t < d; {
		p, start, end := s.at(t)
		if !p.up {
			starts = append(starts, start)
		}
		if end == 0 {
			break
		}
		t = end
	}
	return starts
}

// String renders the schedule as parseSchedule reads it.
func (s schedule) String() string {
	parts := make([]string, len(s))
	for i, p := range s {
		word := "down"
		if p.up {
			word = "up"
		}
		if p.dur > 0 {
			word += "=" + p.dur.String()
		}
		parts[i] = word
	}
	return strings.Join(parts, ",")
}

// upstream is the flaky HTTP service the replicas call: 200 while its
// schedule says up, 503 while it says down.
type upstream struct {
	sched schedule
	start time.Time
	srv   *http.Server
	ln    net.Listener

	mu     sync.Mutex            // guards unused
	unused map[net.Conn]struct{} // connections that have carried no call yet
}

// closeGrace bounds how long close waits for calls in flight. The upstream
// answers at once, so only a client that stalls mid-call needs it.
const closeGrace = 500 * time.Millisecond

// startUpstream listens on addr and serves until close. Its schedule starts
// now.
func startUpstream(addr string, sched schedule) (*upstream, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("upstream: listen on %s: %w", addr, err)
	}
	u := &upstream{sched: sched, start: time.Now(), ln: ln, unused: map[net.Conn]struct{}{}}
	u.srv = &http.Server{Handler: u, ReadHeaderTimeout: 5 * time.Second, ConnState: u.track}
	u.srv.RegisterOnShutdown(u.closeUnused)
	go func() { _ = u.srv.Serve(ln) }()
	return u, nil
}

// track keeps the set of connections that have carried no call yet.
func (u *upstream) track(c net.Conn, st http.ConnState) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if st == http.StateNew {
		u.unused[c] = struct{}{}
	} else {
		delete(u.unused, c)
	}
}

// closeUnused runs when Shutdown starts, after the listener is closed. An
// http.Transport often dials a connection for a call that another
// connection then serves, and keeps it unused. Shutdown closes idle
// connections but waits up to 5s for one that carried no request yet
// (net/http treats a new connection as busy); closing those here lets
// Shutdown return as soon as the calls in flight are answered.
func (u *upstream) closeUnused() {
	u.mu.Lock()
	defer u.mu.Unlock()
	for c := range u.unused {
		_ = c.Close()
	}
}

// ServeHTTP answers one call according to the schedule.
func (u *upstream) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	if p, _, _ := u.sched.at(time.Since(u.start)); !p.up {
		http.Error(w, "upstream failing (scheduled outage)", http.StatusServiceUnavailable)
		return
	}
	_, _ = fmt.Fprintln(w, "ok")
}

// url is where the upstream can be called.
func (u *upstream) url() string { return "http://" + u.ln.Addr().String() + "/" }

// close stops the upstream: the calls in flight are answered, then every
// connection is closed. A call still running after closeGrace is cut off.
func (u *upstream) close() error {
	ctx, cancel := context.WithTimeout(context.Background(), closeGrace)
	defer cancel()
	err := u.srv.Shutdown(ctx)
	if errors.Is(err, context.DeadlineExceeded) {
		err = u.srv.Close()
	}
	return err
}
