package redisstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tripline/tripline/breaker"
)

// Event is one published transition, or, in a stream from WatchGaps, a
// break in the stream (Kind).
type Event struct {
	// Kind is EventTransition (the zero value) for a transition; the fields
	// below it are set only then.
	Kind EventKind
	// Err says, for EventLost, why the subscription was lost.
	Err error

	Name       string        // the circuit's name
	From, To   breaker.State // From == To for a reset of a closed circuit: the generation still moves
	Generation uint64        // the generation the transition started
	// At is the Redis time of the transition; zero for EventLost and
	// EventResumed, which no Redis time marks (the store reads no wall
	// clock).
	At time.Time
	// Cause is what made it: "timeout" (open to half-open), "outcome" (a
	// recorded failure or probe), "reset", "force-open" or "force-close".
	Cause string
	// RetryAt is, when To is open, the Redis time from which a probe will be
	// admitted (the end of the open timeout or of a ForceOpen TTL); zero
	// otherwise and for a ForceOpen without expiry.
	RetryAt time.Time
}

// EventKind says what an Event reports.
type EventKind int

const (
	// EventTransition is a transition a script published.
	EventTransition EventKind = iota
	// EventLost says that the subscription was lost: transitions published
	// from then until EventResumed may be missed.
	EventLost
	// EventResumed says that the subscription is live again. What was
	// missed is not replayed: Load or List give the state now.
	EventResumed
)

// String names the kind: "transition", "lost" or "resumed".
func (k EventKind) String() string {
	switch k {
	case EventTransition:
		return "transition"
	case EventLost:
		return "lost"
	case EventResumed:
		return "resumed"
	}
	return "EventKind(" + strconv.Itoa(int(k)) + ")"
}

// watchBuffer is how many events Watch holds for a slow reader before the
// subscription itself buffers (go-redis keeps 100 more).
const watchBuffer = 64

// errReconnected is the Err of the EventLost of a reconnect that go-redis
// made by itself: no error reached the reader, but messages may have been
// lost meanwhile.
var errReconnected = errors.New("redisstore: the subscription reconnected")

// Watch streams the transitions published under the prefix (all circuits,
// or only the names given) until ctx is done; the channel is closed then.
// The subscription is live when Watch returns. Messages on the channel that
// are not transitions are logged (WithLogger) and skipped. Transitions
// published while the subscription reconnects are lost; Load or List give
// the state, and WatchGaps tells when that happened.
func (s *Store) Watch(ctx context.Context, names ...string) (<-chan Event, error) {
	return s.watch(ctx, false, names)
}

// WatchGaps is Watch whose stream also reports its own breaks, in order
// with the transitions: an Event of Kind EventLost when the subscription is
// lost (the server went away, a connection broke or stopped answering
// pings), and one of Kind EventResumed once it is live again. A reconnect
// that go-redis makes by itself is reported as both at once.
func (s *Store) WatchGaps(ctx context.Context, names ...string) (<-chan Event, error) {
	return s.watch(ctx, true, names)
}

func (s *Store) watch(ctx context.Context, gaps bool, names []string) (<-chan Event, error) {
	if s.err != nil {
		return nil, s.err
	}
	var only map[string]bool
	if len(names) > 0 {
		only = make(map[string]bool, len(names))
		for _, n := range names {
			only[n] = true
		}
	}
	cctx, cancel := s.callCtx(ctx)
	var ps *redis.PubSub
	err := s.bound(cctx, func(cctx context.Context) error {
		p := s.client.Subscribe(cctx, s.channel) // dials and subscribes
		if _, err := p.Receive(cctx); err != nil || cctx.Err() != nil {
			_ = p.Close()
			return errors.Join(err, cctx.Err())
		}
		ps = p
		return nil
	})
	cancel()
	if err != nil {
		return nil, fmt.Errorf("redisstore: watch %s: %w", s.channel, err)
	}
	w := &watcher{s: s, ps: ps, out: make(chan Event, watchBuffer), only: only, gaps: gaps, live: true}
	stop := context.AfterFunc(ctx, w.close) // ends a blocked read at once
	go func() {
		defer close(w.out)
		defer stop()
		defer w.close()
		w.run(ctx)
	}()
	return w.out, nil
}

// watcher is the goroutine behind one Watch.
type watcher struct {
	s    *Store
	mu   sync.Mutex // guards ps, replaced when its connection goes silent
	ps   *redis.PubSub
	out  chan Event
	only map[string]bool // the names watched; nil: all
	gaps bool            // report EventLost and EventResumed
	live bool            // the subscription is live, as far as the reader knows
}

func (w *watcher) current() *redis.PubSub {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.ps
}

func (w *watcher) close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	_ = w.ps.Close()
}

// resubscribe drops a subscription that stopped answering and opens a new
// one; its confirmation is read by run.
func (w *watcher) resubscribe(ctx context.Context) {
	w.mu.Lock()
	defer w.mu.Unlock()
	_ = w.ps.Close()
	w.ps = w.s.client.Subscribe(ctx, w.s.channel)
}

// run reads the subscription until ctx is done. As the local views'
// subscriber does (follow): it reads with a deadline, pings when quiet, and
// subscribes again on a new connection when the ping is not answered
// either. go-redis's Channel pings but never checks the answer, and its
// reads have no deadline: a connection that went silent was never noticed.
func (w *watcher) run(ctx context.Context) {
	pinged := false
	wait := resubscribeMin
	for ctx.Err() == nil {
		msg, err := w.current().ReceiveTimeout(ctx, healthEvery)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			if isTimeout(err) && !pinged {
				pinged = true
				_ = w.current().Ping(ctx) // a failed write reconnects; the answer is read above
				continue
			}
			if isTimeout(err) {
				if !w.lost(ctx, errUnanswered) {
					return
				}
				w.resubscribe(ctx)
				pinged = false
				continue
			}
			if !w.lost(ctx, err) {
				return
			}
			// go-redis redials and subscribes again by itself: do not
			// spin while the server is down.
			if !pause(ctx, wait) {
				return
			}
			wait = min(2*wait, resubscribeMax)
			continue
		}
		pinged, wait = false, resubscribeMin
		if !w.handle(ctx, msg) {
			return
		}
	}
}

// handle passes on one message of the subscription; it reports false once
// ctx is done.
func (w *watcher) handle(ctx context.Context, msg any) bool {
	switch m := msg.(type) {
	case *redis.Subscription:
		if m.Kind != "subscribe" {
			return true
		}
		// Every confirmation after the first (read by watch) is a new
		// connection; one that comes while live is a reconnect that
		// go-redis made by itself.
		if w.live && !w.lost(ctx, errReconnected) {
			return false
		}
		w.live = true
		return w.gapEvent(ctx, Event{Kind: EventResumed})
	case *redis.Message:
		ev, err := decodeEvent(m.Payload)
		if err != nil {
			w.s.logger.LogAttrs(ctx, slog.LevelWarn, "redisstore: skipped a message that is not a transition",
				slog.String("channel", m.Channel), slog.Any("error", err))
			return true
		}
		if w.only != nil && !w.only[ev.Name] {
			return true
		}
		return w.send(ctx, ev)
	}
	return true // a PONG
}

// lost records that the subscription is down, and reports it once per
// break; it reports false once ctx is done.
func (w *watcher) lost(ctx context.Context, err error) bool {
	if !w.live {
		return true
	}
	w.live = false
	return w.gapEvent(ctx, Event{Kind: EventLost, Err: err})
}

func (w *watcher) gapEvent(ctx context.Context, ev Event) bool {
	if !w.gaps {
		return true
	}
	return w.send(ctx, ev)
}

func (w *watcher) send(ctx context.Context, ev Event) bool {
	select {
	case w.out <- ev:
		return true
	case <-ctx.Done():
		return false
	}
}

// pause waits d, or until ctx is done; it reports whether ctx is still
// live.
func pause(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// decodeEvent parses the message the scripts publish: "1 <encoded name>
// <from> <to> <generation> <time us> <cause> <retry at us, or 0>".
func decodeEvent(payload string) (Event, error) {
	f := strings.Split(payload, " ")
	if len(f) != 8 || f[0] != "1" {
		return Event{}, fmt.Errorf("malformed transition %.80q", payload)
	}
	name, err := decodeName(f[1])
	if err != nil {
		return Event{}, fmt.Errorf("malformed transition %.80q: name: %w", payload, err)
	}
	from, err1 := parseState(f[2])
	to, err2 := parseState(f[3])
	gen, err3 := strconv.ParseUint(f[4], 10, 64)
	at, err4 := strconv.ParseInt(f[5], 10, 64)
	retry, err5 := strconv.ParseInt(f[7], 10, 64)
	if err := errors.Join(err1, err2, err3, err4, err5); err != nil || gen == 0 || at <= 0 || retry < 0 || !validCause(f[6]) {
		return Event{}, fmt.Errorf("malformed transition %.80q", payload)
	}
	ev := Event{Name: name, From: from, To: to, Generation: gen, At: time.UnixMicro(at), Cause: f[6]}
	if retry > 0 {
		ev.RetryAt = time.UnixMicro(retry)
	}
	return ev, nil
}

func parseState(v string) (breaker.State, error) {
	switch v {
	case "0":
		return breaker.StateClosed, nil
	case "1":
		return breaker.StateOpen, nil
	case "2":
		return breaker.StateHalfOpen, nil
	}
	return 0, fmt.Errorf("unknown state %q", v)
}

func validCause(c string) bool {
	switch c {
	case "timeout", "outcome", "reset", "force-open", "force-close":
		return true
	}
	return false
}
