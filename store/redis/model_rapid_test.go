package redisstore_test

import (
	"context"
	"errors"
	"math"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tripline/tripline/breaker"
	redisstore "github.com/tripline/tripline/store/redis"
	"github.com/tripline/tripline/store/storetest"
)

// TestModelMiniredis checks the scripts, on miniredis with TIME on a fake
// clock, against the model of the state machine in storetest. Every
// replica has a client of its own, and asks Redis on every call
// (WithStrict): the model predicts every answer exactly, which a local view
// only does within its bounds (see TestConformance and localview_test.go).
// miniredis runs Lua slowly (about 2ms a call with -race), so 25 checks
// unless -rapid.checks says otherwise.
func TestModelMiniredis(t *testing.T) {
	storetest.RunModel(t, func(t *testing.T) storetest.Harness {
		m := miniredis.RunT(t)
		m.ClockTTL(true)
		var mu sync.Mutex
		now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
		m.SetTime(now)
		newStore := func(t *testing.T) breaker.Store {
			c := redis.NewClient(&redis.Options{Addr: m.Addr()})
			t.Cleanup(func() { _ = c.Close() })
			s := redisstore.New(c, redisstore.WithStrictExact(), redisstore.WithCallTimeout(testCallTimeout))
			t.Cleanup(func() { _ = s.Close() })
			return s
		}
		return storetest.Harness{
			Store:      newStore(t),
			NewReplica: newStore,
			Advance: func(d time.Duration) {
				mu.Lock()
				defer mu.Unlock()
				now = now.Add(d)
				m.SetTime(now)
			},
		}
	}, storetest.ModelChecks(25))
}

// modelReplyKey carries, in a call's context, the reply that modelReplyHook
// gives in place of the script's.
type modelReplyKey struct{}

// modelReplyHook answers every script call with the reply in its context,
// without a server; any other command fails.
type modelReplyHook struct{}

func (modelReplyHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (modelReplyHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(context.Context, []redis.Cmder) error { return errors.New("modelReplyHook: no pipelines") }
}

func (modelReplyHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		c, ok := cmd.(*redis.Cmd)
		if name := cmd.Name(); !ok || (name != "evalsha" && name != "eval") {
			return errors.New("modelReplyHook: unexpected command " + name)
		}
		c.SetVal(ctx.Value(modelReplyKey{}))
		return nil
	}
}

// modelFields splits a reply as the scripts write it: n decimal integers
// separated by single spaces. ok is false for anything else; big is true
// when a number does not fit in 62 bits (a store may refuse those).
func modelFields(v string, n int) (f []uint64, ok, big bool) {
	parts := strings.Split(v, " ")
	if len(parts) != n {
		return nil, false, false
	}
	for _, p := range parts {
		if p == "" || strings.Trim(p, "0123456789") != "" {
			return nil, false, false
		}
		x, err := strconv.ParseUint(p, 10, 64)
		if err != nil || x > math.MaxInt64 {
			return nil, false, false
		}
		big = big || x >= 1<<62
		f = append(f, x)
	}
	return f, true, big
}

// modelTransition is the Transition that the fields from, to, gen of a reply
// stand for; ok is false when they stand for none that can be.
func modelTransition(from, to, gen uint64) (breaker.Transition, bool) {
	if gen == 0 {
		return breaker.Transition{}, true
	}
	return breaker.Transition{From: breaker.State(from), To: breaker.State(to), Generation: gen}, from <= 2 && to <= 2
}

// FuzzScriptReply gives Admit, Record, Apply and Load any reply in place of
// the scripts' (through a go-redis hook, no server) and checks that each
// either decodes it as the scripts' reply formats say (see the .lua files)
// or returns an error matching ErrCorrupt; never a panic, never an answer
// that is not a state, a transition between states, or a half-open
// admission without a probe permit.
func FuzzScriptReply(f *testing.F) {
	// admit: "allowed state generation probe retry_after_us from to tgen failures override seq differs"
	f.Add("1 0 5 0 0 0 0 0 0 0 0 0", "", "", uint8(0))
	f.Add("1 0 5 0 0 0 0 0 2 2 7 1", "", "", uint8(0))
	f.Add("1 2 7 3 0 1 2 7 0 0 3 0", "", "", uint8(0))
	f.Add("0 1 4 0 250000 0 0 0 0 0 4 1", "", "", uint8(0))
	f.Add("0 1 4 0 0 0 0 0 0 1 0 0", "", "", uint8(0))
	f.Add("0 1 4 0 9223372036854776 0 0 0 0 0 0 0", "", "", uint8(0))
	f.Add("1 2 7 0 0 1 2 7 0 0 0 0", "", "", uint8(0))
	f.Add("1 0 5 0 0 0 0 0 0 3 0 0", "", "", uint8(0))
	f.Add("1 0 5 0 0 0 0 0 0 0 0 2", "", "", uint8(0))
	f.Add("1 0 5 0 0 0 0 0 0 0 0", "", "", uint8(0))
	// record: "ignored state generation from to tgen failures retry_after_us override seq differs"
	f.Add("0 1 3 0 1 3 0 250000 0 12 0", "", "", uint8(0))
	f.Add("0 0 0 0 0 0 2 0 0 9007199254740991 1", "", "", uint8(0))
	f.Add("1 1 3 0 0 0 0 0 1 0 0", "", "", uint8(0))
	f.Add("1 1 3 0 0 0 0 0 1 0 2", "", "", uint8(0))
	f.Add("0 1 3 0 1 3 0 250000 0 12", "", "", uint8(0))
	// apply: "flag state generation from to tgen"
	f.Add("0 1 3 0 1 3", "", "", uint8(0))
	f.Add("1 0 0 0 0 0", "", "", uint8(0))
	f.Add("01 0 0 0 0 0", "", "", uint8(0))
	// load: "exists state failures successes probes lf oa ra gen om ou oat", actor, reason
	f.Add("1 1 0 0 0 1893553445000000 1893553445000000 1893553446000000 4 1 1893553446000000 1893553445000000", "ops", "deploy", uint8(0))
	f.Add("0 0 0 0 0 0 0 0 0 0 0 0", "", "", uint8(0))
	f.Add("1 3 0 0 0 0 0 0 0 0 0 0", "", "", uint8(1))
	f.Add("1 0 2147483648 0 0 0 0 0 0 0 0 0", "", "", uint8(2))
	f.Add("", "", "", uint8(3))

	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1})
	client.AddHook(modelReplyHook{})
	f.Cleanup(func() { _ = client.Close() })
	// Strict: every call reaches the hook, none is answered from a view.
	st := redisstore.New(client, redisstore.WithStrict())
	f.Cleanup(func() { _ = st.Close() })
	p := breaker.Policy{FailureThreshold: 3, Timeout: time.Second, SuccessThreshold: 1, HalfOpenMaxCalls: 1, ProbeTimeout: time.Second}
	// Durations beyond 100 years are clamped (the scripts never send one).
	clamp := func(us uint64) time.Duration {
		return time.Duration(min(us, uint64((100*365*24*time.Hour).Microseconds()))) * time.Microsecond
	}

	f.Fuzz(func(t *testing.T, reply, actor, reason string, shape uint8) {
		ctx := context.WithValue(t.Context(), modelReplyKey{}, reply)
		corrupt := func(err error, what string) {
			t.Helper()
			require.Error(t, err, "%s accepted %q", what, reply)
			require.ErrorIs(t, err, redisstore.ErrCorrupt, "%s of %q", what, reply)
		}

		// Admit.
		a, err := st.Admit(ctx, "svc", p)
		if f, ok, big := modelFields(reply, 12); !ok {
			corrupt(err, "Admit")
		} else if tr, trOK := modelTransition(f[5], f[6], f[7]); f[0] > 1 || f[1] > 2 || f[9] > 2 || f[11] > 1 || !trOK || (f[0] == 1 && f[1] == 2 && f[3] == 0) {
			corrupt(err, "Admit")
		} else if err == nil || !big {
			require.NoError(t, err, "Admit of %q", reply)
			want := breaker.Admission{
				Allowed:       f[0] == 1,
				State:         breaker.State(f[1]),
				Generation:    f[2],
				Probe:         f[3],
				RetryAfter:    clamp(f[4]),
				Transition:    tr,
				PolicyDiffers: f[11] == 1,
			}
			assert.Equal(t, want, a, "Admit of %q", reply)
		}

		// Record.
		r, rerr := st.Record(ctx, "svc", p, breaker.Outcome{Kind: breaker.OutcomeFailure, Generation: 1})
		if f, ok, big := modelFields(reply, 11); !ok {
			corrupt(rerr, "Record")
		} else if tr, trOK := modelTransition(f[3], f[4], f[5]); f[0] > 1 || f[1] > 2 || f[8] > 2 || f[10] > 1 || !trOK {
			corrupt(rerr, "Record")
		} else if rerr == nil || !big {
			want := breaker.Result{Ignored: f[0] == 1, State: breaker.State(f[1]), Generation: f[2], Transition: tr, PolicyDiffers: f[10] == 1}
			require.NoError(t, rerr, "Record of %q", reply)
			assert.Equal(t, want, r, "Record of %q", reply)
		}

		// Apply: the flag says the circuit is unknown (IfExists).
		ar, aerr := st.Apply(ctx, "svc", breaker.Command{Kind: breaker.CommandReset})
		if f, ok, big := modelFields(reply, 6); !ok {
			corrupt(aerr, "Apply")
		} else if tr, trOK := modelTransition(f[3], f[4], f[5]); f[0] > 1 || f[1] > 2 || !trOK {
			corrupt(aerr, "Apply")
		} else if aerr == nil || !big {
			if f[0] == 1 {
				assert.ErrorIs(t, aerr, breaker.ErrUnknownCircuit, "Apply of %q", reply)
				assert.Equal(t, breaker.Result{}, ar)
			} else {
				require.NoError(t, aerr, "Apply of %q", reply)
				assert.Equal(t, breaker.Result{State: breaker.State(f[1]), Generation: f[2], Transition: tr}, ar, "Apply of %q", reply)
			}
		}

		// Load: three strings, unless shape says otherwise.
		var v any = []any{reply, actor, reason}
		switch shape % 8 {
		case 1:
			v = []any{reply, actor}
		case 2:
			v = []any{reply, int64(len(actor)), reason}
		case 3:
			v = reply
		case 4:
			v = []any{reply, actor, reason, reason}
		}
		ctx = context.WithValue(t.Context(), modelReplyKey{}, v)
		snap, err := st.Load(ctx, "svc")
		switch shape % 8 {
		case 1, 2, 3, 4:
			corrupt(err, "Load")
			return
		}
		f, ok, big := modelFields(reply, 12)
		switch {
		case !ok || f[0] > 1 || f[1] > 2 || f[9] > 2 || f[2] > math.MaxInt32 || f[3] > math.MaxInt32 || f[4] > math.MaxInt32:
			corrupt(err, "Load")
			return
		case err != nil && big:
			return
		}
		require.NoError(t, err, "Load of %q", reply)
		want := breaker.Snapshot{Name: "svc"}
		if f[0] != 0 {
			micro := func(v uint64) time.Time {
				if v == 0 {
					return time.Time{}
				}
				return time.UnixMicro(int64(v))
			}
			want.State = breaker.State(f[1])
			want.Failures, want.Successes, want.Probes = int(f[2]), int(f[3]), int(f[4])
			want.LastFailure, want.OpenedAt, want.RetryAt = micro(f[5]), micro(f[6]), micro(f[7])
			want.Generation = f[8]
			if f[9] != 0 {
				want.Override = &breaker.Override{
					Mode: breaker.OverrideMode(f[9]), Until: micro(f[10]), At: micro(f[11]), Actor: actor, Reason: reason,
				}
			}
		}
		assert.Equal(t, want, snap, "Load of %q", reply)
	})
}
