package redisstore

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"time"

	"github.com/redis/go-redis/v9"
)

// healthEvery is how long the subscriber waits for a message before it
// pings the subscription; a ping left unanswered for as long again (a
// frozen server, a connection that died without a reset) makes it drop the
// subscription and open a new one.
const healthEvery = time.Second

// The wait before the subscriber tries again after an error: it doubles from
// resubscribeMin up to resubscribeMax, and starts again once subscribed.
const (
	resubscribeMin = 10 * time.Millisecond
	resubscribeMax = time.Second
)

var errUnanswered = errors.New("redisstore: subscription did not answer a ping")

// startSubscriber starts the goroutine that keeps the local views true,
// unless the store is closed. It runs once per Store (startOnce).
func (s *Store) startSubscriber() {
	s.psMu.Lock()
	defer s.psMu.Unlock()
	if s.closed.Load() {
		return
	}
	s.bg.Add(1)
	go s.subscribe()
}

// subscribe follows the transitions published under the prefix and moves
// the views forward, until Close or until the client is closed. It reads
// the subscription itself (Receive, not Channel) so that it sees every
// confirmation: go-redis reconnects a subscription silently, and every
// confirmation after the first is a reconnect, during which messages may
// have been lost, so every view goes stale (a new epoch).
func (s *Store) subscribe() {
	defer s.bg.Done()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	wait := resubscribeMin
	for {
		ps := s.openPubSub(ctx, cancel)
		if ps == nil {
			return // closed
		}
		err := s.follow(ctx, ps, &wait)
		s.down(err)
		_ = ps.Close()
		if err == nil || errors.Is(err, redis.ErrClosed) {
			return // the store or the client is closed
		}
		if !s.sleep(wait) {
			return
		}
		wait = min(2*wait, resubscribeMax)
	}
}

// openPubSub subscribes to the channel, unless the store is closed; Close
// closes what it returns and cancels ctx. The SUBSCRIBE is bounded by the
// call timeout, or healthEvery without one (if the client lets a ctx
// deadline bound the network: Close waits for it); if it fails, the first
// receive subscribes again.
func (s *Store) openPubSub(ctx context.Context, cancel context.CancelFunc) *redis.PubSub {
	s.psMu.Lock()
	if s.closed.Load() {
		s.psMu.Unlock()
		return nil
	}
	ps := s.client.Subscribe(ctx) // no channel yet: no I/O
	s.ps, s.cancelSub = ps, cancel
	s.psMu.Unlock()
	bound := healthEvery
	if s.callTimeout > 0 {
		bound = min(bound, s.callTimeout)
	}
	sctx, scancel := context.WithTimeout(ctx, bound)
	defer scancel()
	_ = ps.Subscribe(sctx, s.channel) // the channel is kept even if this fails
	return ps
}

// follow reads ps until the store closes (nil), the client closes
// (redis.ErrClosed) or a ping goes unanswered (errUnanswered). Other errors
// (a lost connection, which go-redis redials) make the views stale, and it
// reads on after a wait.
func (s *Store) follow(ctx context.Context, ps *redis.PubSub, wait *time.Duration) error {
	pinged := false
	for {
		msg, err := ps.ReceiveTimeout(ctx, healthEvery)
		if s.closed.Load() {
			return nil
		}
		if err != nil {
			if errors.Is(err, redis.ErrClosed) {
				return err
			}
			if isTimeout(err) {
				if pinged {
					return errUnanswered
				}
				pinged = true
				_ = ps.Ping(ctx) // a failed write reconnects; the answer is read above
				continue
			}
			s.down(err)
			if !s.sleep(*wait) {
				return nil
			}
			*wait = min(2**wait, resubscribeMax)
			continue
		}
		pinged = false
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind == "subscribe" {
				s.up()
				*wait = resubscribeMin
			}
		case *redis.Message:
			if s.dropEvents.Load() {
				continue
			}
			ev, err := decodeEvent(m.Payload)
			if err != nil {
				s.logger.LogAttrs(ctx, slog.LevelDebug, "redisstore: skipped a message that is not a transition",
					slog.String("channel", m.Channel), slog.Any("error", err))
				continue
			}
			s.hear(ev)
		}
	}
}

// up records a subscription confirmation: a new epoch, live. A confirmation
// while live is a reconnect that go-redis made on its own: the epoch moves
// by two, so it stays live and every view learned before goes stale.
func (s *Store) up() {
	e := s.epoch.Load() // only the subscriber changes the epoch
	if e&1 == 1 {
		s.epoch.Add(2)
		s.logger.LogAttrs(context.Background(), slog.LevelInfo, "redisstore: subscription reconnected; local views resynchronise",
			slog.String("channel", s.channel))
		return
	}
	s.epoch.Add(1)
	if e > 0 {
		s.logger.LogAttrs(context.Background(), slog.LevelInfo, "redisstore: subscription restored",
			slog.String("channel", s.channel))
	}
}

// down records that the subscription is not live: every view is stale
// until it is back.
func (s *Store) down(err error) {
	e := s.epoch.Load()
	if e&1 == 0 {
		return
	}
	s.epoch.Add(1)
	if err != nil && !s.closed.Load() {
		s.logger.LogAttrs(context.Background(), slog.LevelWarn, "redisstore: subscription lost; every call asks Redis until it is back",
			slog.String("channel", s.channel), slog.Any("error", err))
	}
}

// sleep waits d, or until Close; it reports whether the store is still open.
func (s *Store) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-s.done:
		return false
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
