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

// Event is one published transition.
type Event struct {
	Name       string        // the circuit's name
	From, To   breaker.State // From == To for a reset of a closed circuit: the generation still moves
	Generation uint64        // the generation the transition started
	At         time.Time     // Redis time of the transition
	// Cause is what made it: "timeout" (open to half-open), "outcome" (a
	// recorded failure or probe), "reset", "force-open" or "force-close".
	Cause string
	// RetryAt is, when To is open, the Redis time from which a probe will be
	// admitted (the end of the open timeout or of a ForceOpen TTL); zero
	// otherwise and for a ForceOpen without expiry.
	RetryAt time.Time
}

// watchBuffer is how many events Watch holds for a slow reader before the
// subscription itself buffers (go-redis keeps 100 more).
const watchBuffer = 64

// Watch streams the transitions published under the prefix (all circuits,
// or only the names given) until ctx is done; the channel is closed then.
// The subscription is live when Watch returns. Messages on the channel that
// are not transitions are logged (WithLogger) and skipped. Transitions
// published while the subscription reconnects are lost; Load or List give
// the state.
func (s *Store) Watch(ctx context.Context, names ...string) (<-chan Event, error) {
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
	out := make(chan Event, watchBuffer)
	var mu sync.Mutex // guards ps, replaced when its connection goes silent
	stop := context.AfterFunc(ctx, func() {
		mu.Lock()
		defer mu.Unlock()
		_ = ps.Close() // ends a blocked read at once
	})
	current := func() *redis.PubSub {
		mu.Lock()
		defer mu.Unlock()
		return ps
	}
	go func() {
		defer close(out)
		defer stop()
		defer func() { _ = current().Close() }()
		// As the local views' subscriber does (follow): read with a
		// deadline, ping when quiet, and subscribe again on a new
		// connection when the ping is not answered either. go-redis's
		// Channel pings but never checks the answer, and its reads have no
		// deadline: a connection that went silent was never noticed.
		pinged := false
		wait := resubscribeMin
		for ctx.Err() == nil {
			msg, err := current().ReceiveTimeout(ctx, healthEvery)
			if ctx.Err() != nil {
				return
			}
			if err != nil {
				if isTimeout(err) && !pinged {
					pinged = true
					_ = current().Ping(ctx) // a failed write reconnects; the answer is read above
					continue
				}
				if isTimeout(err) {
					mu.Lock()
					_ = ps.Close()
					ps = s.client.Subscribe(ctx, s.channel)
					mu.Unlock()
					pinged = false
					continue
				}
				// go-redis redials and subscribes again by itself: do not
				// spin while the server is down.
				pause := time.NewTimer(wait)
				select {
				case <-ctx.Done():
					pause.Stop()
					return
				case <-pause.C:
				}
				wait = min(2*wait, resubscribeMax)
				continue
			}
			pinged, wait = false, resubscribeMin
			m, ok := msg.(*redis.Message)
			if !ok {
				continue // a PONG, a subscription confirmation
			}
			ev, err := decodeEvent(m.Payload)
			if err != nil {
				s.logger.LogAttrs(ctx, slog.LevelWarn, "redisstore: skipped a message that is not a transition",
					slog.String("channel", m.Channel), slog.Any("error", err))
				continue
			}
			if only != nil && !only[ev.Name] {
				continue
			}
			select {
			case out <- ev:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, nil
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
