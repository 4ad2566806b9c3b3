// Package redisstore is a breaker.Store in Redis: every replica of a service
// that points its Breakers at the same Redis (and prefix) shares each circuit,
// and they behave as one breaker. It works with a single Redis, Redis Cluster
// and Sentinel (a failover client), through go-redis's UniversalClient.
//
// # Consistency
//
// Each decision is one Lua script call (scripts/lua), atomic in Redis: Admit
// (read the state, move open to half-open once RetryAt has passed, lease a
// probe), Record (count an outcome, trip, close, release the lease) and Apply
// (reset, force open, force close). Nothing is locked between calls and
// nothing is held while the protected function runs. Time is Redis TIME, read
// inside the scripts and kept in microseconds; the client's clock is never
// used, so replicas with skewed clocks agree. A missing circuit (never
// written, or expired) is closed, generation 0. The scripts follow
// breaker's memory store step for step. What a Store asks Redis, and what
// it answers from its local view of a circuit, is described next; with
// WithStrict every Admit is a script call, and so is every Record but that
// of a closed-state success with nothing to reset (see WithStrict).
//
// # Local views
//
// By default a Store keeps a view of each circuit it is used for: state,
// generation, whether failures are counted, and, while open, a local
// deadline. It learns the view from the replies of its own script calls
// (every reply carries the circuit's state and, while open, the time left
// to RetryAt) and keeps it true with the transitions the scripts publish on
// "<prefix>:events", which it follows on one subscription per Store,
// started by its first call and stopped by Close. A view moves forward
// only: an event or a reply older than what the view holds is dropped
// (except a reply to a request sent after the view was learned: it is
// Redis's word, even at a lower generation, after Redis lost data).
//
// A view decides an admission only while it is fresh: learned while the
// subscription was live and it has stayed so since (a reconnect, even one
// go-redis makes silently, makes every view stale: messages may have been
// lost), and younger than WithMaxStaleness (1s). From a fresh view:
//
//   - closed: Admit admits without asking Redis. A success of a call the
//     view admitted (closed, its generation) is not sent; nor is one of an
//     earlier generation than the view's, which Redis would ignore. In
//     window mode a success changes nothing. In consecutive mode, if failures may
//     be counted (this Store sent one, or its last reply counted some), the
//     reset it causes is queued and sent in the background, coalesced per
//     circuit: one write per circuit per WithFlushInterval (50ms) at most.
//     A failure sent while a reset is queued carries it ("reset first":
//     the script clears the count, then counts the failure), and one sent
//     while a reset is on its way waits for it, so this Store's own
//     outcomes count in the order they came. Load sends a queued reset
//     first. A held-back reset clears only the failures counted before
//     its success: every reply carries the circuit's failure sequence
//     number, the reset carries the last one the view had learned when
//     the success came, and the script keeps every failure numbered after
//     it (another replica's, counted while the reset waited).
//   - open: Admit rejects without asking Redis until the retry time. The
//     time left that Redis gave (RetryAfter, or RetryAt - At of an event)
//     becomes a deadline on the local monotonic clock when it arrives;
//     the client's wall clock is never compared with Redis time. Forced
//     open without expiry: rejected until the view is stale.
//   - anything else (half-open, a stale or missing view, an open circuit
//     whose deadline has passed): one script call, as in strict mode. So a
//     half-open admission leases its probe in Redis and the fleet-wide
//     probe limit holds exactly.
//
// While its subscription is live, a Store sends at most one admission of a
// circuit at a time (single flight). The circuit's other admissions that
// come meanwhile wait for its reply, each until its own ctx ends (it then
// returns an error wrapping ctx.Err(), and a Breaker returns ctx.Err()
// without counting a store failure), and decide from it: a fresh view
// decides as above; a rejection (open, or half-open with every probe slot
// held) rejects them too, with what is left of its RetryAfter; an error
// from Redis or the call timeout is theirs too. A circuit due for a probe
// (open past its retry time, or half-open with a slot that may be free)
// gets the waiting admissions one at a time, each its own script call, so
// every probe lease still comes from Redis. So when RetryAt passes, a
// fleet of N replicas has at most N admissions of the circuit in Redis at
// once, not one per caller. A waiting admission that cannot decide
// otherwise (its view cannot be fresh now) sends its own. A strict store
// shares nothing: each admission is its own script call.
//
// A failure is always one script call; its reply tells the Store at once
// that the circuit tripped. After Apply the Store's view is stale: its next
// admission asks Redis. While the subscription is down every call asks
// Redis.
//
// Replicas whose settings differ (breaker.Admission.PolicyDiffers) are
// found by the calls that reach Redis, not by those a view answers; a
// failure, a staleness refresh or a half-open admission always reaches it,
// which is enough for a Breaker's warning.
//
// What this costs in consistency, against WithStrict:
//
//   - A replica sees a transition made elsewhere at the earliest of: the
//     event's arrival (pub/sub delay, well under a millisecond on one
//     host; longer across a Cluster bus), its own next failure, and its
//     first admission once its view is WithMaxStaleness old, even if the
//     event was lost.
//   - Until then it may admit calls the circuit would reject. Their
//     outcomes belong to the old generation and are ignored. With every
//     call failing, a caller runs at most one call that is not counted:
//     the one in flight when the circuit trips, or, if its last failure
//     was counted just before, one admitted before its replica heard of
//     the trip; the reply to that call's failure says the circuit is open,
//     and the view only moves forward. So at most threshold + (concurrent
//     callers - 1) calls run fleet-wide, within the threshold + 2 x
//     (callers - 1) promised, and the circuit trips exactly once (a trip
//     is one script's decision).
//   - A rejection may last past RetryAt by the delay of the event it was
//     learned from (never when learned from a reply: its deadline counts
//     from when the request was sent).
//   - Consecutive mode across replicas: a success resets the count only
//     through a replica that knows failures may be counted (its own, or a
//     count its last reply gave, at most WithMaxStaleness old), and only
//     the failures that replica had heard of. A success on a replica that
//     has not heard of another's failures does not erase them, so the
//     circuit may trip earlier than a strict store would let it, never
//     later. For one replica the count is exact. Window mode is unaffected
//     (successes erase nothing).
//
// A view costs about 0.5 kB with its circuit's keys (BenchmarkViewMemory). A
// Store keeps one for every name it is used with until the view has learned
// nothing (no call reached Redis, no event came) for 10 minutes, or twice
// WithMaxStaleness if that is longer, and keeps at most WithMaxViews
// (100,000): past the bound, the views that learned least recently are
// dropped, down to about 7/8 of it. Both happen in sweeps that run as new
// names come, so a Store used with ever new names stays bounded. A circuit
// in use learns at least once per WithMaxStaleness, so the bound drops the
// least recently used to within that much, and the calls answered from a
// view record nothing. A dropped view is learned again at its circuit's next
// call, which asks Redis: the bound costs round trips, never a wrong
// decision.
//
// # Keys
//
// Every key of a circuit shares one hash tag, so each script touches one
// hash slot and runs on Redis Cluster:
//
//	<prefix>:{<name>}        hash: state, generation, counters, override (who, why, when), the policy last used
//	<prefix>:{<name>}:w      sorted set: the failure times within the window, at most FailureThreshold (window mode)
//	<prefix>:{<name>}:p      sorted set: probe permits and their expiry (half-open)
//	<prefix>:{<name>}:r:<id> string: the reply of one call, for a retry of it
//	<prefix>:events          pub/sub channel of every transition
//
// <name> is the circuit's name in unpadded base64url: reversible (List
// decodes it), free of '{', '}' and ':', and distinct for distinct names, so
// no name (256 bytes, Unicode, braces) can reach another circuit's keys or
// choose its slot. A prefix holds no '{' or '}', so a key belongs to exactly
// one prefix.
//
// # Expiry
//
// Every key has a TTL: an idle circuit (closed, nothing in its window, no
// override) disappears WithIdleTTL after its last write (plus the failure
// window in window mode, plus ProbeTimeout while half-open); an open circuit
// lives at least until RetryAt plus the idle TTL; an override until its end
// plus the idle TTL, and an override without an end is refreshed while
// calls see it.
//
// # Retries
//
// go-redis retries a command after a read timeout or a lost connection, so a
// script whose reply was lost can run twice. Every write script carries a
// call id; a call that changed the circuit leaves its reply under that id
// for WithReplyTTL, and a second run with the same id returns it without
// changing anything: no failure is counted twice, no probe leased twice, and
// the transition is still reported to the caller that made it.
//
// # Errors
//
// A store error is never read as "no state": every method returns an error
// that names the operation and the circuit and wraps the Redis error. Data
// in a circuit's keys that no script wrote (a hand-made HSET, a key of
// another type) gives an error matching ErrCorrupt and changes nothing;
// Apply with CommandReset repairs the circuit.
//
// # Transitions
//
// Every transition (also those made by Apply, also a reset of a closed
// circuit) is published by the script that made it on "<prefix>:events";
// Watch and the local views follow them.
//
// # Deadlines and goroutines
//
// Each round trip to Redis is bounded by WithCallTimeout (50ms) when the
// client lets a ctx deadline bound the network (go-redis:
// ContextTimeoutEnabled), so a frozen Redis adds at most that much to a
// call; calls answered from a view set no deadline. A Store with local
// views runs one goroutine (the subscription) and, while resets are
// queued, a timer; Close stops both (and sends the queued resets). The
// subscription also ends by itself when the client is closed.
//
// Redis 5.0 or newer is needed (scripts that read TIME, then write); the
// tests run against Redis 7.0 and miniredis.
package redisstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tripline/tripline/breaker"
	"github.com/tripline/tripline/internal/warnlog"
	"github.com/tripline/tripline/scripts/lua"
)

const (
	// DefaultPrefix is the key prefix used without WithPrefix.
	DefaultPrefix = "tripline"
	// DefaultIdleTTL is how long an idle circuit's keys live after its last
	// write, without WithIdleTTL.
	DefaultIdleTTL = 24 * time.Hour
	// DefaultReplyTTL is how long a call's reply is remembered for a retry,
	// without WithReplyTTL.
	DefaultReplyTTL = time.Minute
	// DefaultMaxStaleness is how old a local view may grow before the next
	// admission asks Redis, without WithMaxStaleness.
	DefaultMaxStaleness = time.Second
	// DefaultFlushInterval is how long the resets that successes cause are
	// held and coalesced before they are sent, without WithFlushInterval.
	DefaultFlushInterval = 50 * time.Millisecond
	// DefaultCallTimeout bounds each Redis round trip of the store, without
	// WithCallTimeout.
	DefaultCallTimeout = 50 * time.Millisecond
	// DefaultMaxViews bounds how many local views a Store keeps, without
	// WithMaxViews.
	DefaultMaxViews = 100_000

	maxPrefixLen = 256
	maxNameLen   = breaker.MaxNameLen
	// MaxNoteLen bounds Command.Actor and Command.Reason, in bytes.
	MaxNoteLen = 1024
	// maxDuration clamps durations sent to the scripts (100 years): beyond
	// it microsecond times would lose precision in Lua's doubles.
	maxDuration = 100 * 365 * 24 * time.Hour
	maxExact    = 1<<53 - 1
)

// ErrCorrupt is matched (errors.Is) by the error of a call that found data
// in a circuit's keys that tripline did not write (a field that is not a
// number, a key of the wrong type) or got a script reply it cannot parse.
// Nothing was changed. Apply with CommandReset repairs such a circuit: it
// writes the circuit again from scratch (as does deleting its keys).
var ErrCorrupt = errors.New("redisstore: malformed circuit data")

// errBadReply is the ErrCorrupt of a script reply that cannot be parsed.
var errBadReply = &corruptError{err: errors.New("malformed script reply")}

var (
	admitScript  = redis.NewScript(lua.Admit)
	recordScript = redis.NewScript(lua.Record)
	applyScript  = redis.NewScript(lua.Apply)
	loadScript   = redis.NewScript(lua.Load)
	settleScript = redis.NewScript(lua.Settle)
)

// Store is a breaker.Store in Redis. It is safe for concurrent use; make one
// per client, share it between Breakers, and Close it when done.
type Store struct {
	client   redis.UniversalClient
	prefix   string
	channel  string
	idleUS   int64 // idle TTL, microseconds
	replyMS  int64 // reply memo TTL, milliseconds
	logger   *slog.Logger
	err      error // a bad option or client: every call returns it
	callBase string
	calls    atomic.Uint64

	strict      bool
	sendAll     bool // tests: strict sends every outcome, so models predict each Result
	maxStale    time.Duration
	flushEvery  time.Duration
	callTimeout time.Duration
	maxViews    int
	// ctxDeadlines: the client lets a ctx deadline bound its network I/O;
	// otherwise bound does.
	ctxDeadlines bool
	now          func() time.Duration // local monotonic clock

	// The local views (see view.go).
	circuits  sync.Map      // name -> *circuit
	nCircuits atomic.Int64  // about how many: made since the last sweep plus those it kept
	sweepAt   atomic.Int64  // the count that triggers the next sweep
	sweeping  sync.Mutex    // one sweep at a time
	seq       atomic.Uint64 // orders what the views learn
	// epoch counts the subscription's ups and downs: odd while it is live.
	// A view learned in another epoch is stale.
	epoch      atomic.Uint64
	startOnce  sync.Once
	closed     atomic.Bool
	done       chan struct{}  // closed by Close
	bg         sync.WaitGroup // the subscriber and flush timers
	psMu       sync.Mutex
	ps         *redis.PubSub      // the current subscription, for Close
	cancelSub  context.CancelFunc // cancels the subscriber's dials, for Close
	dropEvents atomic.Bool        // tests: the subscriber drops every message

	// Calls whose replies were lost, and who hears of what they did
	// (see settle.go).
	settles   settler
	followers breaker.Followers
	life      context.Context // ended by Close: bounds the settles' waits
	endLife   context.CancelFunc

	// Coalesced resets (see flush.go).
	flushMu  sync.Mutex
	dirty    []*circuit
	timer    *time.Timer
	flushing sync.Mutex // one flush at a time
}

var _ breaker.Store = (*Store)(nil)

// Option configures a Store.
type Option func(*options)

type options struct {
	prefix      string
	idleTTL     time.Duration
	replyTTL    time.Duration
	logger      *slog.Logger
	strict      bool
	sendAll     bool
	maxStale    time.Duration
	flushEvery  time.Duration
	callTimeout time.Duration
	maxViews    int
	clock       func() time.Duration
}

// WithPrefix sets the prefix of every key and of the pub/sub channel, so
// applications can share one Redis. It must be 1 to 256 bytes without '{'
// or '}'.
// default: "tripline"
func WithPrefix(prefix string) Option { return func(o *options) { o.prefix = prefix } }

// WithIdleTTL sets how long the keys of an idle circuit (closed, nothing in
// its window, no override) live after its last write; a circuit that
// expires reads as closed, generation 0. At least a millisecond.
// default: 24h
func WithIdleTTL(d time.Duration) Option { return func(o *options) { o.idleTTL = d } }

// WithReplyTTL sets how long the reply of a call that changed a circuit is
// remembered, so that a retry of the same call (go-redis retries after a
// read timeout or a dropped connection) returns it instead of running
// again. It must outlast the client's retries: MaxRetries x (ReadTimeout +
// MaxRetryBackoff) and more. At least a millisecond.
// default: 1m
func WithReplyTTL(d time.Duration) Option { return func(o *options) { o.replyTTL = d } }

// WithLogger sets where the store reports what goes wrong in the
// background: its subscription going down and coming back, messages it
// cannot decode, resets and settles that failed.
// default: WARN and above to slog.Default()
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithStrict makes every admission ask Redis, as if no replica kept a
// local view: a closed-state admission costs a script call, and every
// replica sees a transition at its very next call. Every outcome is sent
// too, except a closed-state success when the reply to the store's latest
// request (the call's admission or one sent after it) counted no
// consecutive failure, or in window mode, where successes erase nothing:
// the success counts as of that reply, within the call, when its reset had
// nothing to do, so it is not sent (a failure another replica counts while
// the call runs is kept), and a healthy closed circuit costs one script
// call per call. Without WithStrict, the store keeps a
// local view of each circuit (see "Local views" in the package
// documentation).
// default: off (local views)
func WithStrict() Option { return func(o *options) { o.strict = true } }

// WithMaxStaleness bounds how old a local view may be: the first admission
// that finds its view older than d asks Redis, and the reply refreshes the
// view. It bounds how late a replica sees a transition whose message it
// lost. At least a millisecond.
// default: 1s
func WithMaxStaleness(d time.Duration) Option { return func(o *options) { o.maxStale = d } }

// WithFlushInterval sets how long the reset that a closed-state success
// causes in consecutive mode is held before it is sent in the background:
// each circuit's resets within one interval go as one write. At least a
// millisecond.
// default: 50ms
func WithFlushInterval(d time.Duration) Option { return func(o *options) { o.flushEvery = d } }

// WithCallTimeout bounds each Redis round trip the store makes (admit,
// record, apply, load, each step of List, Watch's subscription, the
// background resets) with a ctx deadline, on top of the caller's ctx, so
// that a frozen or unreachable Redis adds at most d to a call; the call
// then fails (and a Breaker goes degraded). Calls answered from a local
// view set no deadline. 0 sets none of the store's own; negative is an
// error. It holds whatever the client's options: a client made without
// ContextTimeoutEnabled (go-redis then lets its ReadTimeout, not a ctx,
// bound the network) costs a goroutine per round trip, so prefer it on.
// default: 50ms
func WithCallTimeout(d time.Duration) Option { return func(o *options) { o.callTimeout = d } }

// WithMaxViews bounds how many local views the store keeps: once it holds
// more than n, the views that learned least recently (from a reply or an
// event) are dropped, down to about 7/8 of n. A view costs about 0.5 kB.
// A dropped view is learned again at its circuit's next call, which asks
// Redis: the bound costs round trips, never a wrong decision. At least 1.
// default: 100000
func WithMaxViews(n int) Option { return func(o *options) { o.maxViews = n } }

// New returns a Store on client: a *redis.Client, a *redis.ClusterClient or a
// failover (Sentinel) client. (A *redis.Ring keeps each circuit on one shard,
// but its shards do not share pub/sub, so Watch and the local views would
// hear only some transitions; use WithStrict with a Ring; it is not tested.)
// New never fails: a nil client or a bad option makes every call of the
// Store return an error saying so. New starts nothing: the subscription
// that keeps the local views true starts with the first call.
func New(client redis.UniversalClient, opts ...Option) *Store {
	o := options{
		prefix:      DefaultPrefix,
		idleTTL:     DefaultIdleTTL,
		replyTTL:    DefaultReplyTTL,
		maxStale:    DefaultMaxStaleness,
		flushEvery:  DefaultFlushInterval,
		callTimeout: DefaultCallTimeout,
		maxViews:    DefaultMaxViews,
		clock:       monoNow,
	}
	for _, opt := range opts {
		if opt != nil {
			opt(&o)
		}
	}
	s := &Store{
		client:      client,
		prefix:      o.prefix,
		channel:     o.prefix + ":events",
		idleUS:      min(o.idleTTL, maxDuration).Microseconds(),
		replyMS:     min(o.replyTTL, maxDuration).Milliseconds(),
		logger:      o.logger,
		strict:      o.strict,
		sendAll:     o.sendAll,
		maxStale:    o.maxStale,
		flushEvery:  o.flushEvery,
		callTimeout: o.callTimeout,
		maxViews:    min(o.maxViews, math.MaxInt32), // beyond any heap; +1 cannot overflow
		now:         o.clock,
		done:        make(chan struct{}),
	}
	s.life, s.endLife = context.WithCancel(context.Background())
	s.sweepAt.Store(min(minSweep, int64(s.maxViews)+1))
	if s.logger == nil {
		s.logger = warnlog.New()
	}
	var errs []error
	if client == nil {
		errs = append(errs, errors.New("client is nil"))
	}
	if err := checkPrefix(o.prefix); err != nil {
		errs = append(errs, err)
	}
	if o.idleTTL < time.Millisecond {
		errs = append(errs, fmt.Errorf("idle TTL %s is shorter than 1ms", o.idleTTL))
	}
	if o.replyTTL < time.Millisecond {
		errs = append(errs, fmt.Errorf("reply TTL %s is shorter than 1ms", o.replyTTL))
	}
	if o.maxStale < time.Millisecond {
		errs = append(errs, fmt.Errorf("max staleness %s is shorter than 1ms", o.maxStale))
	}
	if o.flushEvery < time.Millisecond {
		errs = append(errs, fmt.Errorf("flush interval %s is shorter than 1ms", o.flushEvery))
	}
	if o.callTimeout < 0 {
		errs = append(errs, fmt.Errorf("call timeout %s is negative", o.callTimeout))
	}
	if o.maxViews < 1 {
		errs = append(errs, fmt.Errorf("max views %d is less than 1", o.maxViews))
	}
	if o.clock == nil {
		errs = append(errs, errors.New("clock is nil"))
	}
	if err := errors.Join(errs...); err != nil {
		s.err = fmt.Errorf("redisstore: invalid store: %w", err)
	}
	s.ctxDeadlines = client == nil || contextDeadlines(client)
	var id [8]byte
	_, _ = rand.Read(id[:]) // crypto/rand.Read never fails
	s.callBase = hex.EncodeToString(id[:]) + "-"
	return s
}

// contextDeadlines reports whether client lets a ctx deadline bound its
// network I/O (go-redis: ContextTimeoutEnabled). A client of another kind
// is assumed to.
func contextDeadlines(client redis.UniversalClient) bool {
	switch c := client.(type) {
	case *redis.Client:
		return c.Options().ContextTimeoutEnabled
	case *redis.ClusterClient:
		return c.Options().ContextTimeoutEnabled
	case *redis.Ring:
		return c.Options().ContextTimeoutEnabled
	}
	return true
}

// Err returns the error every call of the store returns when New was given
// an invalid option or a nil client, and nil for a usable store.
// breaker.New checks it, so a Breaker is never made on such a store.
func (s *Store) Err() error { return s.err }

// Channel returns the pub/sub channel transitions are published on
// ("<prefix>:events").
func (s *Store) Channel() string { return s.channel }

// Prefix returns the key prefix.
func (s *Store) Prefix() string { return s.prefix }

// Keys returns the Redis keys that hold the circuit's state: its hash, its
// failure window and its probe leases (the last two may not exist). For
// operators and tests; the layout is described in the package source.
func (s *Store) Keys(name string) []string {
	return keysFor(s.prefix, name).state()
}

// callID returns an id unique to one store call, across replicas.
func (s *Store) callID() string {
	return s.callBase + strconv.FormatUint(s.calls.Add(1), 36)
}

// check validates what every call needs: the store and the circuit name.
func (s *Store) check(op, name string) error {
	if s.err != nil {
		return s.err
	}
	switch {
	case name == "":
		return fmt.Errorf("redisstore: %s: circuit name is empty", op)
	case len(name) > maxNameLen:
		return fmt.Errorf("redisstore: %s: circuit name is %d bytes, longer than %d", op, len(name), maxNameLen)
	}
	return nil
}

// fail wraps an error from Redis. A script that found data it cannot parse
// (or a key of the wrong type) yields an error matching ErrCorrupt too.
func (s *Store) fail(op, name string, err error) error {
	if isCorrupt(err) {
		err = &corruptError{err: err}
	}
	return fmt.Errorf("redisstore: %s circuit %q: %w", op, name, err)
}

func isCorrupt(err error) bool {
	var rerr redis.Error
	if !errors.As(err, &rerr) {
		return false
	}
	msg := rerr.Error()
	return strings.Contains(msg, "TRIPLINE_CORRUPT") || strings.Contains(msg, "WRONGTYPE")
}

// corruptError is a Redis error about a circuit's data: it matches
// ErrCorrupt and unwraps to the Redis error.
type corruptError struct{ err error }

// Error gives the script's own words, without the server's decoration.
func (e *corruptError) Error() string {
	msg := e.err.Error()
	if i := strings.Index(msg, "TRIPLINE_CORRUPT "); i >= 0 {
		msg = msg[i+len("TRIPLINE_CORRUPT "):]
	} else if strings.Contains(msg, "WRONGTYPE") {
		return "malformed circuit data: a key of the circuit holds another type of value (WRONGTYPE)"
	}
	for _, end := range []string{" stack traceback", " script:", "\n"} {
		if i := strings.Index(msg, end); i >= 0 {
			msg = msg[:i]
		}
	}
	return "malformed circuit data: " + msg
}

func (e *corruptError) Is(target error) bool { return target == ErrCorrupt }
func (e *corruptError) Unwrap() error        { return e.err }

// us converts a duration to the scripts' microseconds, clamped.
func us(d time.Duration) int64 { return min(max(d, 0), maxDuration).Microseconds() }

// exact clamps an id to what the scripts' numbers hold exactly; a larger
// generation or probe id is one the store never issued.
func exact(v uint64) uint64 { return min(v, maxExact) }

func (s *Store) baseArgs(k circuitKeys, extra int) []any {
	args := make([]any, 4, 4+extra)
	args[0], args[1], args[2], args[3] = s.channel, k.enc, s.idleUS, s.replyMS
	return args
}

func appendPolicy(args []any, p breaker.Policy) []any {
	return append(args, p.FailureThreshold, us(p.FailureWindow), us(p.Timeout),
		p.SuccessThreshold, p.HalfOpenMaxCalls, us(p.ProbeTimeout))
}

// callCtx bounds one Redis round trip by the call timeout.
func (s *Store) callCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	if s.callTimeout <= 0 {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, s.callTimeout)
}

// run runs one script call, bounded by the call timeout; an error names op
// and the circuit (see failCall).
func (s *Store) run(ctx context.Context, op, name string, script *redis.Script, keys []string, args []any) (any, error) {
	cctx, cancel := s.callCtx(ctx)
	defer cancel()
	var v any
	err := s.bound(cctx, func(cctx context.Context) error {
		var err error
		v, err = script.Run(cctx, s.client, keys, args...).Result()
		return err
	})
	if err != nil {
		return nil, s.failCall(ctx, op, name, err)
	}
	return v, nil
}

// bound runs one round trip under cctx. go-redis lets a ctx deadline bound
// the network only with ContextTimeoutEnabled; for a client made without
// it, the round trip runs on a goroutine of its own, which bound stops
// waiting for when cctx ends (the connection stays busy until the client's
// ReadTimeout; the call is settled like any other whose reply was lost).
// trip's results must be read only when bound returns nil or trip's error.
func (s *Store) bound(cctx context.Context, trip func(context.Context) error) error {
	if s.ctxDeadlines || cctx.Done() == nil {
		return trip(cctx)
	}
	done := make(chan error, 1)
	go func() { done <- trip(cctx) }()
	select {
	case err := <-done:
		return err
	case <-cctx.Done():
		return cctx.Err()
	}
}

// runText runs a write script (admit, record, apply: their reply is one
// line of numbers; any other reply is malformed, ErrCorrupt). If the
// reply was not read (a timeout, a dropped connection), the call may
// still run: it is settled in the background (see settle.go), with lost.
//
// While the call is on its way (and, if its reply is lost, until it is
// settled) the changes of state the view learns of are held, so that one
// this call made is not also reported as another's (see moved).
func (s *Store) runText(ctx context.Context, op, name string, script *redis.Script, keys []string, args []any, lost lostCall) (string, error) {
	c := s.known(name)
	c.hold()
	v, err := s.run(ctx, op, name, script, keys, args)
	if err != nil {
		if unanswered(err) {
			s.settleLater(c, op, name, keys, lost)
		} else {
			s.resolve(c, name, breaker.Transition{}, "", false)
		}
		return "", err
	}
	text, err := s.text(op, name, v)
	t, _ := s.memoTransition(op, name, text)
	s.resolve(c, name, t, "", false)
	return text, err
}

// known returns the circuit called name if the store keeps a view of it.
func (s *Store) known(name string) *circuit {
	if cv, ok := s.circuits.Load(name); ok {
		return cv.(*circuit)
	}
	return nil
}

// text is a reply that must be one line of numbers; any other is malformed.
func (s *Store) text(op, name string, v any) (string, error) {
	text, ok := v.(string)
	if !ok {
		return "", s.badReply(op, name, fmt.Sprint(v), errors.New("want a string"))
	}
	return text, nil
}

// failCall wraps the error of a round trip made under callCtx(ctx): one
// that ran out of the call timeout (and not of the caller's ctx) says so.
func (s *Store) failCall(ctx context.Context, op, name string, err error) error {
	if s.timedOut(ctx, err) {
		return fmt.Errorf("redisstore: %s circuit %q: no reply within the call timeout (%s): %w", op, name, s.callTimeout, err)
	}
	return s.fail(op, name, err)
}

// timedOut reports whether err is the call timeout running out, and not
// the caller's ctx.
func (s *Store) timedOut(ctx context.Context, err error) bool {
	return s.callTimeout > 0 && ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded)
}

// Admit implements breaker.Store. A closed circuit whose local view is
// fresh admits the call without asking Redis, and an open one rejects it
// until its retry time (see "Local views" in the package documentation).
// Otherwise (half-open, a stale or missing view, WithStrict) it is one
// script call that reads the circuit, moves it from open to half-open once
// RetryAt has passed, and leases a probe permit while half-open; with local
// views, an admission of the circuit already in flight on the store is
// waited for first, and its reply may decide the call.
func (s *Store) Admit(ctx context.Context, name string, p breaker.Policy) (breaker.Admission, error) {
	if err := s.check("admit", name); err != nil {
		return breaker.Admission{}, err
	}
	if err := p.Validate(); err != nil {
		return breaker.Admission{}, fmt.Errorf("redisstore: admit circuit %q: %w", name, err)
	}
	c := s.circuit(name)
	if a, ok := s.admitLocal(c); ok {
		return a, nil
	}
	return s.admitShared(ctx, c, p)
}

// admitRemote runs the admit script and refreshes the view from its reply.
func (s *Store) admitRemote(ctx context.Context, c *circuit, p breaker.Policy) (breaker.Admission, error) {
	args := appendPolicy(s.baseArgs(c.keys, 6), p)
	at := s.mark()
	v, err := s.runText(ctx, "admit", c.name, admitScript, c.keys.list(s.callID()), args, lostCall{cause: "timeout"})
	if err != nil {
		return breaker.Admission{}, err
	}
	a, k, err := s.admitReply(c.name, v)
	if err != nil {
		return breaker.Admission{}, err
	}
	s.learn(c, k, at)
	return a, nil
}

// admitReply parses the reply of the admit script: "allowed state
// generation probe retry_after_us from to tgen failures override seq
// differs".
func (s *Store) admitReply(name, v string) (breaker.Admission, fact, error) {
	var f [12]int64
	if err := parseReply(v, f[:]); err != nil {
		return breaker.Admission{}, fact{}, s.badReply("admit", name, v, err)
	}
	a := breaker.Admission{
		Allowed:       f[0] == 1,
		State:         breaker.State(f[1]),
		Generation:    uint64(f[2]),
		Probe:         uint64(f[3]),
		RetryAfter:    micros(f[4]),
		PolicyDiffers: f[11] == 1,
	}
	t, err := transition(f[5], f[6], f[7])
	if err != nil || f[0] > 1 || f[1] > 2 || f[9] > 2 || f[11] > 1 || (a.Allowed && a.State == breaker.StateHalfOpen && a.Probe == 0) {
		return breaker.Admission{}, fact{}, s.badReply("admit", name, v, err)
	}
	a.Transition = t
	return a, fact{state: a.State, gen: a.Generation, failures: f[8] > 0, override: f[9], retry: a.RetryAfter, seq: uint64(f[10])}, nil
}

// Record implements breaker.Store. A closed-state success whose view is
// fresh is not sent: in window mode it changes nothing, and in consecutive
// mode the reset it causes (if any failure may be counted) is sent in the
// background, coalesced per circuit (WithFlushInterval). Every other
// outcome is one script call that counts it (or ignores it: a stale
// generation, an unheld probe) and makes at most one transition; its reply
// refreshes the view, so the replica that records a tripping failure
// rejects its next call locally.
func (s *Store) Record(ctx context.Context, name string, p breaker.Policy, o breaker.Outcome) (breaker.Result, error) {
	if err := s.check("record", name); err != nil {
		return breaker.Result{}, err
	}
	if err := p.Validate(); err != nil {
		return breaker.Result{}, fmt.Errorf("redisstore: record circuit %q: %w", name, err)
	}
	if o.Kind != breaker.OutcomeSuccess && o.Kind != breaker.OutcomeFailure {
		return breaker.Result{}, fmt.Errorf("redisstore: record circuit %q: unknown outcome kind %d", name, o.Kind)
	}
	c := s.circuit(name)
	if r, ok := s.recordLocal(c, p, o); ok {
		return r, nil
	}
	reset := s.beforeFailure(c, p, o)
	return s.recordRemote(ctx, c, p, o, reset)
}

// recordArgs are the record script's arguments: the outcome, and the reset
// it carries, if any.
func (s *Store) recordArgs(c *circuit, p breaker.Policy, o breaker.Outcome, reset heldReset) []any {
	args := appendPolicy(s.baseArgs(c.keys, 11), p)
	flag := 0
	if reset.ok {
		flag = 1
	}
	return append(args, int(o.Kind), exact(o.Generation), exact(o.Probe), flag, exact(reset.known))
}

// recordRemote runs the record script and refreshes the view from its reply.
func (s *Store) recordRemote(ctx context.Context, c *circuit, p breaker.Policy, o breaker.Outcome, reset heldReset) (breaker.Result, error) {
	args := s.recordArgs(c, p, o, reset)
	at := s.mark()
	v, err := s.runText(ctx, "record", c.name, recordScript, c.keys.list(s.callID()), args, lostCall{probe: o.Probe, cause: "outcome"})
	if err != nil {
		return breaker.Result{}, err
	}
	r, k, err := s.recordReply(c.name, v)
	if err != nil {
		return breaker.Result{}, err
	}
	s.learn(c, k, at)
	return r, nil
}

// recordReply parses the reply of the record script: "ignored state
// generation from to tgen failures retry_after_us override seq differs".
func (s *Store) recordReply(name, v string) (breaker.Result, fact, error) {
	var f [11]int64
	r, err := s.result("record", name, v, f[:])
	if err != nil {
		return breaker.Result{}, fact{}, err
	}
	if f[8] > 2 || f[10] > 1 {
		return breaker.Result{}, fact{}, s.badReply("record", name, v, nil)
	}
	r.PolicyDiffers = f[10] == 1
	return r, fact{state: r.State, gen: r.Generation, failures: f[6] > 0, override: f[8], retry: micros(f[7]), seq: uint64(f[9])}, nil
}

// Apply implements breaker.Store: one script call. Actor and Reason (at most
// MaxNoteLen bytes each) are kept with an override, with the Redis time it
// was set. With Command.IfExists, a circuit Redis holds nothing for gives an
// error matching breaker.ErrUnknownCircuit. The replica's view of the
// circuit is stale afterwards: its next admission asks Redis.
func (s *Store) Apply(ctx context.Context, name string, c breaker.Command) (breaker.Result, error) {
	if err := s.check("apply", name); err != nil {
		return breaker.Result{}, err
	}
	switch {
	case c.Kind < breaker.CommandReset || c.Kind > breaker.CommandForceClose:
		return breaker.Result{}, fmt.Errorf("redisstore: apply circuit %q: unknown command kind %d", name, c.Kind)
	case c.TTL < 0:
		return breaker.Result{}, fmt.Errorf("redisstore: apply circuit %q: negative override TTL %s", name, c.TTL)
	case c.TTL > 0 && c.TTL < time.Microsecond:
		return breaker.Result{}, fmt.Errorf("redisstore: apply circuit %q: override TTL %s is shorter than 1µs", name, c.TTL)
	case len(c.Actor) > MaxNoteLen || len(c.Reason) > MaxNoteLen:
		return breaker.Result{}, fmt.Errorf("redisstore: apply circuit %q: actor or reason longer than %d bytes", name, MaxNoteLen)
	}
	ifExists := 0
	if c.IfExists {
		ifExists = 1
	}
	k := s.keys(name)
	args := append(s.baseArgs(k, 5), int(c.Kind), us(c.TTL), ifExists, c.Actor, c.Reason)
	at := s.mark()
	v, err := s.runText(ctx, "apply", name, applyScript, k.list(s.callID()), args, lostCall{cause: c.Kind.String()})
	if err != nil {
		return breaker.Result{}, err
	}
	var f [6]int64
	r, err := s.result("apply", name, v, f[:])
	if err != nil {
		return breaker.Result{}, err
	}
	if r.Ignored { // the flag: unknown circuit, nothing written
		return breaker.Result{}, fmt.Errorf("redisstore: apply circuit %q: %w", name, breaker.ErrUnknownCircuit)
	}
	if cv, ok := s.circuits.Load(name); ok {
		s.learn(cv.(*circuit), fact{state: r.State, gen: r.Generation, unsure: true}, at)
	}
	return r, nil
}

// result parses a reply of apply ("flag state generation from to tgen") or
// of record (the same six, then more) into f, and returns the Result its
// first six fields give.
func (s *Store) result(op, name, v string, f []int64) (breaker.Result, error) {
	if err := parseReply(v, f); err != nil {
		return breaker.Result{}, s.badReply(op, name, v, err)
	}
	t, err := transition(f[3], f[4], f[5])
	if err != nil || f[0] > 1 || f[1] > 2 {
		return breaker.Result{}, s.badReply(op, name, v, err)
	}
	return breaker.Result{
		Ignored:    f[0] == 1,
		State:      breaker.State(f[1]),
		Generation: uint64(f[2]),
		Transition: t,
	}, nil
}

// Load implements breaker.Store: one read-only script call. A reset this
// replica holds back for the circuit (see Record) is sent first, so Load
// reads this replica's own outcomes.
func (s *Store) Load(ctx context.Context, name string) (breaker.Snapshot, error) {
	snap, _, err := s.Find(ctx, name)
	return snap, err
}

// Find is Load that also reports whether Redis holds anything for the
// circuit: a missing circuit (never written, or expired) and one at rest
// read alike, closed and generation 0, and operators (cbctl get) tell them
// apart. Same cost as Load: one read-only script call.
func (s *Store) Find(ctx context.Context, name string) (snap breaker.Snapshot, found bool, err error) {
	if err := s.check("load", name); err != nil {
		return breaker.Snapshot{}, false, err
	}
	if cv, ok := s.circuits.Load(name); ok {
		if c := cv.(*circuit); c.pending.Load() != 0 {
			if err := s.flush(ctx, []*circuit{c}); err != nil {
				return breaker.Snapshot{}, false, err
			}
		}
	}
	k := s.keys(name)
	raw, err := s.run(ctx, "load", name, loadScript, k.state(), s.baseArgs(k, 0))
	if err != nil {
		return breaker.Snapshot{}, false, err
	}
	return s.snapshot(name, raw)
}

// snapshot parses the reply of the load script, and whether the circuit
// exists.
func (s *Store) snapshot(name string, raw any) (breaker.Snapshot, bool, error) {
	v, ok := raw.([]any)
	if !ok || len(v) != 3 {
		return breaker.Snapshot{}, false, s.badReply("load", name, fmt.Sprint(raw), errors.New("want an array of 3 elements"))
	}
	nums, ok0 := v[0].(string)
	actor, ok1 := v[1].(string)
	reason, ok2 := v[2].(string)
	if !ok0 || !ok1 || !ok2 {
		return breaker.Snapshot{}, false, s.badReply("load", name, fmt.Sprint(v), errors.New("want 3 strings"))
	}
	var f [12]int64
	if err := parseReply(nums, f[:]); err != nil {
		return breaker.Snapshot{}, false, s.badReply("load", name, nums, err)
	}
	if f[0] > 1 || f[1] > 2 || f[9] > 2 || f[2] > math.MaxInt32 || f[3] > math.MaxInt32 || f[4] > math.MaxInt32 {
		return breaker.Snapshot{}, false, s.badReply("load", name, nums, errors.New("field out of range"))
	}
	snap := breaker.Snapshot{Name: name}
	if f[0] == 0 {
		return snap, false, nil
	}
	snap.State = breaker.State(f[1])
	snap.Failures, snap.Successes, snap.Probes = int(f[2]), int(f[3]), int(f[4])
	snap.LastFailure, snap.OpenedAt, snap.RetryAt = micro(f[5]), micro(f[6]), micro(f[7])
	snap.Generation = uint64(f[8])
	if f[9] != 0 {
		snap.Override = &breaker.Override{
			Mode:   breaker.OverrideMode(f[9]),
			Until:  micro(f[10]),
			At:     micro(f[11]),
			Actor:  actor,
			Reason: reason,
		}
	}
	return snap, true, nil
}

func (s *Store) badReply(op, name, v string, err error) error {
	if err == nil {
		err = errors.New("field out of range")
	}
	if len(v) > 200 {
		v = v[:200] + "..."
	}
	return fmt.Errorf("redisstore: %s circuit %q: %w: unexpected script reply %q: %v", op, name, errBadReply, v, err)
}

// micros turns the scripts' microseconds into a duration, clamped to what
// the scripts send (they clamp durations to maxDuration).
func micros(v int64) time.Duration {
	return time.Duration(min(v, maxDuration.Microseconds())) * time.Microsecond
}

// micro turns the scripts' microseconds into a time; 0 is the zero time.
func micro(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMicro(v)
}

func transition(from, to, gen int64) (breaker.Transition, error) {
	if gen == 0 {
		return breaker.Transition{}, nil
	}
	if from > 2 || to > 2 {
		return breaker.Transition{}, fmt.Errorf("transition %d -> %d is not between states", from, to)
	}
	return breaker.Transition{From: breaker.State(from), To: breaker.State(to), Generation: uint64(gen)}, nil
}

// parseReply parses exactly len(out) non-negative decimal integers separated
// by single spaces, without allocating.
func parseReply(v string, out []int64) error {
	i := 0
	for n := range out {
		if n > 0 {
			if i >= len(v) || v[i] != ' ' {
				return fmt.Errorf("want %d fields", len(out))
			}
			i++
		}
		start := i
		var x int64
		for i < len(v) && v[i] >= '0' && v[i] <= '9' {
			if x > (math.MaxInt64-9)/10 {
				return errors.New("number out of range")
			}
			x = x*10 + int64(v[i]-'0')
			i++
		}
		if i == start {
			return fmt.Errorf("field %d is not a number", n+1)
		}
		out[n] = x
	}
	if i != len(v) {
		return fmt.Errorf("want %d fields", len(out))
	}
	return nil
}
