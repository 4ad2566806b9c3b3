package redisstore_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tripline/tripline/breaker"
	redisstore "github.com/tripline/tripline/store/redis"
)

func policy(threshold int) breaker.Policy {
	return breaker.Policy{
		FailureThreshold: threshold,
		Timeout:          time.Second,
		SuccessThreshold: 1,
		HalfOpenMaxCalls: 2,
		ProbeTimeout:     10 * time.Second,
	}
}

// TestRetriedCallRunsOnce runs each script call twice with the same
// arguments (what go-redis does after a lost reply) and checks that the
// second run changes nothing and answers what the first did.
func TestRetriedCallRunsOnce(t *testing.T) {
	ctx := context.Background()
	setup := func(t *testing.T) (*fakeRedis, *redisstore.Store, *replayHook) {
		f := newFakeRedis(t)
		c := f.client(t)
		h := &replayHook{}
		c.AddHook(h)
		return f, f.storeOn(t, c, redisstore.WithStrict()), h
	}

	t.Run("failure counted once", func(t *testing.T) {
		_, s, h := setup(t)
		p := policy(3)
		h.armed.Store(true)
		r, err := s.Record(ctx, "c", p, breaker.Outcome{Kind: breaker.OutcomeFailure})
		h.armed.Store(false)
		require.NoError(t, err)
		require.EqualValues(t, 2, h.runs.Load(), "the script must have run twice")
		assert.Equal(t, breaker.Result{State: breaker.StateClosed}, r)
		snap, err := s.Load(ctx, "c")
		require.NoError(t, err)
		assert.Equal(t, 1, snap.Failures)
	})

	t.Run("window failure counted once", func(t *testing.T) {
		_, s, h := setup(t)
		p := policy(3)
		p.FailureWindow = time.Minute
		h.armed.Store(true)
		_, err := s.Record(ctx, "c", p, breaker.Outcome{Kind: breaker.OutcomeFailure})
		h.armed.Store(false)
		require.NoError(t, err)
		snap, err := s.Load(ctx, "c")
		require.NoError(t, err)
		assert.Equal(t, 1, snap.Failures)
	})

	t.Run("trip reported on the retry, made once", func(t *testing.T) {
		_, s, h := setup(t)
		p := policy(1)
		h.armed.Store(true)
		r, err := s.Record(ctx, "c", p, breaker.Outcome{Kind: breaker.OutcomeFailure})
		h.armed.Store(false)
		require.NoError(t, err)
		want := breaker.Result{State: breaker.StateOpen, Generation: 1,
			Transition: breaker.Transition{From: breaker.StateClosed, To: breaker.StateOpen, Generation: 1}}
		assert.Equal(t, want, r, "the retry must report the transition its first run made")
		snap, err := s.Load(ctx, "c")
		require.NoError(t, err)
		assert.EqualValues(t, 1, snap.Generation)
	})

	t.Run("one probe leased", func(t *testing.T) {
		f, s, h := setup(t)
		p := policy(1)
		_, err := s.Record(ctx, "c", p, breaker.Outcome{Kind: breaker.OutcomeFailure})
		require.NoError(t, err)
		f.Advance(p.Timeout)
		h.armed.Store(true)
		a, err := s.Admit(ctx, "c", p)
		h.armed.Store(false)
		require.NoError(t, err)
		require.True(t, a.Allowed)
		assert.Equal(t, breaker.Transition{From: breaker.StateOpen, To: breaker.StateHalfOpen, Generation: 2}, a.Transition)
		snap, err := s.Load(ctx, "c")
		require.NoError(t, err)
		assert.Equal(t, 1, snap.Probes, "a retried admission must not hold a second permit")
		// The second slot (HalfOpenMaxCalls 2) is still free.
		b, err := s.Admit(ctx, "c", p)
		require.NoError(t, err)
		assert.True(t, b.Allowed)
		assert.NotEqual(t, a.Probe, b.Probe)
		// Its outcome closes the circuit, and the retry still says so.
		h.armed.Store(true)
		r, err := s.Record(ctx, "c", p, breaker.Outcome{Kind: breaker.OutcomeSuccess, Generation: a.Generation, Probe: a.Probe})
		h.armed.Store(false)
		require.NoError(t, err)
		assert.Equal(t, breaker.Transition{From: breaker.StateHalfOpen, To: breaker.StateClosed, Generation: 3}, r.Transition)
		assert.False(t, r.Ignored)
	})

	t.Run("command applied once", func(t *testing.T) {
		_, s, h := setup(t)
		h.armed.Store(true)
		r, err := s.Apply(ctx, "c", breaker.Command{Kind: breaker.CommandForceOpen, Actor: "ops"})
		h.armed.Store(false)
		require.NoError(t, err)
		assert.Equal(t, breaker.Transition{From: breaker.StateClosed, To: breaker.StateOpen, Generation: 1}, r.Transition)
		snap, err := s.Load(ctx, "c")
		require.NoError(t, err)
		assert.EqualValues(t, 1, snap.Generation)
	})

	t.Run("the memo lapses", func(t *testing.T) {
		f := newFakeRedis(t)
		s := f.store(t, redisstore.WithStrict(), redisstore.WithReplyTTL(time.Second))
		_, err := s.Record(ctx, "c", policy(3), breaker.Outcome{Kind: breaker.OutcomeFailure})
		require.NoError(t, err)
		memos := func() (n int) {
			for _, k := range f.Keys() {
				if strings.Contains(k, "}:r:") {
					n++
					assert.LessOrEqual(t, f.TTL(k), time.Second)
				}
			}
			return n
		}
		require.Equal(t, 1, memos())
		f.Advance(time.Second)
		assert.Equal(t, 0, memos())
	})
}

// dropConn passes everything through, but after a script call has been
// written while armed it reads the server's reply, throws it away and
// reports the connection lost: the script ran, the client never heard.
type dropConn struct {
	net.Conn
	d       *dropper
	pending bool
}

type dropper struct {
	armed   atomic.Bool
	dropped atomic.Int64
	scripts atomic.Int64
}

func (c *dropConn) Write(b []byte) (int, error) {
	if bytesContainFold(b, "evalsha") || bytesContainFold(b, "eval") {
		c.d.scripts.Add(1)
		if c.d.armed.CompareAndSwap(true, false) {
			c.pending = true
		}
	}
	return c.Conn.Write(b)
}

func (c *dropConn) Read(b []byte) (int, error) {
	if !c.pending {
		return c.Conn.Read(b)
	}
	c.pending = false
	if _, err := c.Conn.Read(b); err != nil { // the reply arrived: the script ran
		return 0, err
	}
	c.d.dropped.Add(1)
	_ = c.Conn.Close()
	return 0, io.EOF
}

func bytesContainFold(b []byte, s string) bool {
	return strings.Contains(strings.ToLower(string(b)), "\r\n"+s+"\r\n")
}

// TestGoRedisRetryAfterLostReply loses the reply of one script call on the
// wire and lets go-redis retry it on a new connection: the failure is
// counted once and the caller still learns of the trip it made.
func TestGoRedisRetryAfterLostReply(t *testing.T) {
	ctx := context.Background()
	f := newFakeRedis(t)
	d := &dropper{}
	c := redis.NewClient(&redis.Options{
		Addr:       f.Addr(),
		MaxRetries: 3,
		Dialer: func(ctx context.Context, network, addr string) (net.Conn, error) {
			conn, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return &dropConn{Conn: conn, d: d}, nil
		},
	})
	t.Cleanup(func() { _ = c.Close() })
	s := f.storeOn(t, c, redisstore.WithStrict())
	p := policy(2)

	_, err := s.Record(ctx, "c", p, breaker.Outcome{Kind: breaker.OutcomeFailure})
	require.NoError(t, err)

	d.armed.Store(true)
	before := d.scripts.Load()
	r, err := s.Record(ctx, "c", p, breaker.Outcome{Kind: breaker.OutcomeFailure})
	require.NoError(t, err, "go-redis retries after a lost reply")
	require.EqualValues(t, 1, d.dropped.Load(), "one reply was dropped")
	require.EqualValues(t, 2, d.scripts.Load()-before, "the script was sent twice")
	assert.Equal(t, breaker.Transition{From: breaker.StateClosed, To: breaker.StateOpen, Generation: 1}, r.Transition,
		"the retry reports the trip the first run made")

	snap, err := s.Load(ctx, "c")
	require.NoError(t, err)
	assert.Equal(t, breaker.StateOpen, snap.State)
	assert.EqualValues(t, 1, snap.Generation, "tripped once")
}

// TestNoRetryNoMemo: without the call id, the same replay would count the
// failure twice. This keeps the retry tests honest: the hook really runs
// the script twice.
func TestReplayWithoutMemoDoubleCounts(t *testing.T) {
	ctx := context.Background()
	f := newFakeRedis(t)
	c := f.client(t)
	// Strip the memo key (KEYS[4]) from script calls, then replay them.
	c.AddHook(stripMemoHook{})
	h := &replayHook{}
	c.AddHook(h)
	s := f.storeOn(t, c, redisstore.WithStrict())
	h.armed.Store(true)
	_, err := s.Record(ctx, "c", policy(3), breaker.Outcome{Kind: breaker.OutcomeFailure})
	h.armed.Store(false)
	require.NoError(t, err)
	snap, err := s.Load(ctx, "c")
	require.NoError(t, err)
	assert.Equal(t, 2, snap.Failures)
}

// stripMemoHook rewrites a script call with four keys into one with three,
// so the script has no memo.
type stripMemoHook struct{}

func (stripMemoHook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (stripMemoHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}
func (stripMemoHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		args := cmd.Args()
		if (cmd.Name() == "evalsha" || cmd.Name() == "eval") && fmt.Sprint(args[2]) == "4" {
			copy(args[6:], args[7:])
			args[len(args)-1] = "pad"
			args[2] = int64(3)
		}
		return next(ctx, cmd)
	}
}
