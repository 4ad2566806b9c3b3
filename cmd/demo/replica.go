package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/tripline/tripline/breaker"
)

// view is how one replica sees the circuit, from its own last call.
type view uint8

const (
	viewUnknown  view = iota // no call yet
	viewClosed               // its last call was admitted in the closed state
	viewOpen                 // its last call was rejected: the circuit is open
	viewHalfOpen             // rejected: half-open, another replica holds the probe
	viewProbing              // it holds the probe
)

func (v view) String() string {
	switch v {
	case viewClosed:
		return "closed"
	case viewOpen:
		return "open"
	case viewHalfOpen:
		return "half-open"
	case viewProbing:
		return "probing"
	}
	return "-"
}

// transition is one state change, as the replica that made it saw it.
type transition struct {
	at       time.Duration // since the demo started
	replica  string
	from, to breaker.State
}

// stats are one replica's counts.
type stats struct {
	Calls, OK, Failed, Rejected, Probes, Trips int
	SawOpen                                    bool
	View                                       view
	Last                                       string // what its last call did

	// From the Breaker's Snapshot after each call. With the default
	// degraded mode (FallbackLocal) Do returns no error for a store outage:
	// the Breaker decides calls locally, and only Snapshot tells.
	Degraded      bool   // the store could not answer: the Breaker decides locally
	StoreErrors   uint64 // store calls that failed on this replica's Breaker
	DegradedCalls uint64 // calls it decided without the store
}

// sees is the SEES column: the view, marked while degraded.
func (s stats) sees() string {
	if s.Degraded {
		return s.View.String() + " (degraded)"
	}
	return s.View.String()
}

// replica is one instance of a client service: its own Redis client, its
// own Breaker, calling the upstream through it.
type replica struct {
	name      string
	url       string
	threshold int
	br        *breaker.Breaker
	http      *http.Client
	since     func() time.Duration // time since the demo started
	report    func(line string)    // a line for the log
	onMove    func(transition)     // every transition this replica made

	mu    sync.Mutex // guards what follows
	st    stats
	moved bool          // the call in progress made a transition ...
	to    breaker.State // ... and this is where it left the circuit
}

// newReplica builds a replica whose Breaker uses store.
func newReplica(name, url string, store breaker.Store, cfg breakerConfig, since func() time.Duration,
	report func(string), onMove func(transition)) (*replica, error) {
	// Each replica has its own connection pool, as a separate process
	// would. Replicas sharing http.DefaultTransport, which keeps 2 idle
	// connections per host, closed and dialled connections all the time,
	// and a connection dialled for a call that another then served stayed
	// unused.
	transport := http.DefaultTransport.(*http.Transport).Clone()
	r := &replica{
		name:      name,
		url:       url,
		threshold: cfg.threshold,
		http:      &http.Client{Timeout: time.Second, Transport: transport},
		since:     since,
		report:    report,
		onMove:    onMove,
	}
	br, err := breaker.New(cfg.circuit, breaker.Config{
		FailureThreshold: cfg.threshold,
		Timeout:          cfg.openTimeout,
		ProbeTimeout:     2 * time.Second,
		Store:            store,
		OnStateChange:    r.onStateChange,
	})
	if err != nil {
		return nil, err
	}
	r.br = br
	return r, nil
}

// onStateChange runs in the replica's own goroutine, inside Do, for each
// transition this replica's calls made. The replica that moves the circuit
// to half-open holds its one probe.
func (r *replica) onStateChange(_ string, from, to breaker.State) {
	t := transition{at: r.since(), replica: r.name, from: from, to: to}
	r.mu.Lock()
	r.moved, r.to = true, to
	var note string
	switch {
	case from == breaker.StateClosed && to == breaker.StateOpen:
		r.st.Trips++
		r.st.SawOpen = true
		note = fmt.Sprintf("failure %d in a row, counted across the fleet: tripped it", r.threshold)
	case from == breaker.StateOpen && to == breaker.StateHalfOpen:
		r.st.Probes++
		note = "open timeout over: this replica runs the one probe"
	case from == breaker.StateHalfOpen && to == breaker.StateOpen:
		note = "probe failed: open again"
	case from == breaker.StateHalfOpen && to == breaker.StateClosed:
		note = "probe succeeded: closed again, for every replica"
	default:
		note = "override ended or changed"
	}
	r.mu.Unlock()
	r.report(fmt.Sprintf("%-10s %s -> %s  (%s)", r.name, from, to, note))
	if r.onMove != nil {
		r.onMove(t)
	}
}

// run calls the upstream once per interval until ctx is done, then closes
// its idle connections so the upstream can stop at once.
func (r *replica) run(ctx context.Context, interval time.Duration) {
	defer r.http.CloseIdleConnections()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		r.call(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// call makes one call through the breaker and updates the replica's view.
func (r *replica) call(ctx context.Context) {
	// A call in flight when the demo stops finishes on its own: cancelling
	// it would count as a success (context.Canceled is not a failure) and
	// could close a half-open circuit.
	err := r.br.Do(context.WithoutCancel(ctx), r.get)
	snapCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
	snap, snapErr := r.br.Snapshot(snapCtx)
	cancel()

	r.mu.Lock()
	defer r.mu.Unlock()
	wasDegraded := r.st.Degraded
	if snapErr == nil {
		r.st.Degraded, r.st.StoreErrors, r.st.DegradedCalls = snap.Degraded, snap.StoreErrors, snap.DegradedCalls
	}
	switch {
	case r.st.Degraded && !wasDegraded:
		r.report(fmt.Sprintf("%-10s degraded: the store does not answer, this replica decides calls locally", r.name))
	case !r.st.Degraded && wasDegraded:
		r.report(fmt.Sprintf("%-10s store answers again: back on the shared circuit (%d calls decided locally so far)",
			r.name, r.st.DegradedCalls))
	}
	moved, to := r.moved, r.to
	r.moved = false
	before := r.st.View
	var oe *breaker.OpenError
	var se *breaker.StoreError
	switch {
	case errors.As(err, &oe):
		r.st.Rejected++
		if oe.State == breaker.StateOpen {
			r.st.View, r.st.SawOpen = viewOpen, true
			if oe.RetryAfter > 0 {
				r.st.Last = fmt.Sprintf("rejected: open, probe in %s", oe.RetryAfter.Round(10*time.Millisecond))
			} else {
				r.st.Last = "rejected: forced open"
			}
		} else {
			r.st.View = viewHalfOpen
			r.st.Last = "rejected: half-open, another replica holds the probe"
		}
	case errors.As(err, &se):
		// Not an outage in FallbackLocal mode (see stats); counted in
		// StoreErrors by the Breaker.
		r.st.Last = "store error: " + se.Err.Error()
		return
	case err != nil:
		r.st.Calls++
		r.st.Failed++
		r.st.View = viewClosed
		r.st.Last = "call failed: " + err.Error()
	default:
		r.st.Calls++
		r.st.OK++
		r.st.View = viewClosed
		r.st.Last = "call ok"
	}
	if moved {
		// This call moved the circuit; its transition line said so.
		r.st.View = stateView(to)
		if to == breaker.StateHalfOpen {
			r.st.View = viewProbing // its probe's outcome was not recorded
		}
		return
	}
	if r.st.View != before && before != viewUnknown {
		r.report(fmt.Sprintf("%-10s sees %s  (%s)", r.name, r.st.View, r.st.Last))
	}
}

func stateView(s breaker.State) view {
	switch s {
	case breaker.StateOpen:
		return viewOpen
	case breaker.StateHalfOpen:
		return viewHalfOpen
	}
	return viewClosed
}

// get is the protected call: one GET to the upstream.
func (r *replica) get(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.url, nil)
	if err != nil {
		return err
	}
	resp, err := r.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("upstream answered %d", resp.StatusCode)
	}
	return nil
}

// snapshot returns the replica's counts.
func (r *replica) snapshot() stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.st
}
