package breaker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
	"unicode/utf8"
)

// MaxFailureThreshold bounds FailureThreshold: a sliding window keeps that
// many timestamps per circuit.
const MaxFailureThreshold = 100_000

// MaxNameLen is the longest circuit name New accepts, in bytes.
const MaxNameLen = 256

// Config configures a Breaker. The zero value of every field means "use the
// default".
type Config struct {
	// FailureThreshold is how many failures open the circuit.
	// default: 5
	FailureThreshold int
	// FailureWindow selects how failures are counted. 0 counts consecutive
	// failures (a success starts the count again); > 0 counts the failures
	// within this trailing window (successes erase nothing; older failures
	// slide out).
	// default: 0 (consecutive)
	FailureWindow time.Duration
	// Timeout is how long the circuit stays open before it lets a probe through.
	// default: 60s
	Timeout time.Duration
	// SuccessThreshold is how many successful probes close the circuit again.
	// default: 1
	SuccessThreshold int
	// HalfOpenMaxCalls is how many probes may be in flight at once while the
	// circuit is half-open.
	// default: 1
	HalfOpenMaxCalls int
	// ProbeTimeout bounds how long a probe holds its permit. A probe that
	// never reports (its process died) frees its slot after this long, and
	// its late outcome is ignored.
	// default: 30s
	ProbeTimeout time.Duration
	// IsFailure decides which errors count as failures; an error for which it
	// returns false counts as a success. It is called only with non-nil
	// errors (nil is always a success), and never for a panic or a
	// runtime.Goexit (always a failure). It may be called concurrently.
	// default: any non-nil error except context.Canceled
	IsFailure func(error) bool
	// OnStateChange is called once per change of state, by the Breaker that
	// made it (other Breakers sharing the circuit are not called), after the
	// store has committed it and never under a lock: it may call the
	// Breaker's methods. It runs on the goroutine of the call that made the
	// transition, before that call returns. Reset, ForceOpen and ForceClose
	// call it when they change the state.
	// default: nil
	OnStateChange func(name string, from, to State)
	// OnStateSeen is called when this Breaker learns that the circuit's
	// state changed by the hand of another Breaker sharing it (another
	// replica, an operator): from the store's published transitions or
	// from a reply that shows a newer state. With OnStateChange it keeps a
	// replica's view of the shared state current, for metrics or logs,
	// even while the replica only sees rejections. Changes the store learns
	// of together arrive as one (closed to open to half-open may be seen
	// as closed to half-open), and one lost message is made up for at the
	// replica's next call that asks the store. It runs on a goroutine of
	// the store's or of a call of this Breaker, never under a lock it
	// could need, while the Breaker is in use (the store holds it weakly).
	// Only stores that implement Follower report such changes (the Redis
	// store does).
	// default: nil
	OnStateSeen func(name string, from, to State)
	// Store holds the circuit's state; share one to share circuits. If the
	// store has an Err() error method (the Redis store does), New returns
	// the error it reports, so a misconfigured store fails at start.
	// default: a new in-process memory store for this Breaker alone
	Store Store
	// Degraded says what the Breaker does during a degraded episode, while
	// its Store cannot answer: FallbackLocal (an in-process breaker with the
	// same settings, private to this Breaker, takes over at once and starts
	// closed; when the store answers again the shared state wins and what the
	// fallback counted is dropped), FailOpen (admit every call, count
	// nothing) or FailClosed (reject every call with a *StoreError, which
	// does not match ErrOpen). See "Store failures" in the package
	// documentation.
	// default: FallbackLocal
	Degraded DegradedMode
	// StoreBackoffMax caps the wait between two probes of a failing store.
	// During a degraded episode the Breaker does not call the store for
	// every call: the first call after a wait probes it (one call at a time).
	// The wait is 50ms (or StoreBackoffMax if shorter) after the failure that
	// started the episode, and doubles after every failed probe up to
	// StoreBackoffMax, so the Breaker uses the shared state again at most
	// about StoreBackoffMax after the store recovers (if it has calls). An
	// episode that starts less than StoreBackoffMax after the last one
	// ended, with no outcome recorded by the store in between, resumes it
	// (its fallback and its backoff).
	// default: 2s
	StoreBackoffMax time.Duration
	// Logger receives transitions and operator commands (Info), the start
	// (Warn) and end (Info) of each degraded episode, commands the store
	// failed (Warn), and store failures that are not outages (Warn).
	// default: slog.Default() at the time of logging, Warn and above only,
	// so a store outage is heard and transitions stay quiet
	Logger *slog.Logger
}

// Defaults used where a Config field is zero.
const (
	DefaultFailureThreshold = 5
	DefaultTimeout          = 60 * time.Second
	DefaultSuccessThreshold = 1
	DefaultHalfOpenMaxCalls = 1
	DefaultProbeTimeout     = 30 * time.Second
	DefaultStoreBackoffMax  = 2 * time.Second
)

func defaultIsFailure(err error) bool {
	return err != nil && !errors.Is(err, context.Canceled)
}

// validateName reports why name cannot name a circuit, or nil.
func validateName(name string) error {
	switch {
	case name == "":
		return errors.New("tripline: circuit name is empty")
	case len(name) > MaxNameLen:
		return fmt.Errorf("tripline: circuit name is %d bytes, longer than %d", len(name), MaxNameLen)
	case !utf8.ValidString(name):
		return fmt.Errorf("tripline: circuit name %q is not valid UTF-8", name)
	}
	return nil
}

// policy validates cfg and returns its Policy with defaults applied.
func (cfg *Config) policy() (Policy, error) {
	var errs []error
	neg := func(field string, v int) {
		if v < 0 {
			errs = append(errs, fmt.Errorf("tripline: Config.%s is negative (%d)", field, v))
		}
	}
	negDur := func(field string, d time.Duration) {
		if d < 0 {
			errs = append(errs, fmt.Errorf("tripline: Config.%s is negative (%s)", field, d))
		}
	}
	neg("FailureThreshold", cfg.FailureThreshold)
	negDur("FailureWindow", cfg.FailureWindow)
	negDur("Timeout", cfg.Timeout)
	neg("SuccessThreshold", cfg.SuccessThreshold)
	neg("HalfOpenMaxCalls", cfg.HalfOpenMaxCalls)
	negDur("ProbeTimeout", cfg.ProbeTimeout)
	negDur("StoreBackoffMax", cfg.StoreBackoffMax)
	if cfg.Degraded > FailClosed {
		errs = append(errs, fmt.Errorf("tripline: Config.Degraded is not a DegradedMode (%d)", uint8(cfg.Degraded)))
	}
	if err := errors.Join(errs...); err != nil {
		return Policy{}, err
	}
	p := Policy{
		FailureThreshold: or(cfg.FailureThreshold, DefaultFailureThreshold),
		FailureWindow:    cfg.FailureWindow,
		Timeout:          or(cfg.Timeout, DefaultTimeout),
		SuccessThreshold: or(cfg.SuccessThreshold, DefaultSuccessThreshold),
		HalfOpenMaxCalls: or(cfg.HalfOpenMaxCalls, DefaultHalfOpenMaxCalls),
		ProbeTimeout:     or(cfg.ProbeTimeout, DefaultProbeTimeout),
	}
	return p, p.Validate()
}

// Validate reports whether every field of p is usable by a Store: counts
// and durations positive (FailureWindow may be 0), durations of at least a
// millisecond, the unit stores keep time in, and counts within
// MaxFailureThreshold and MaxCount.
func (p Policy) Validate() error {
	// Stores call Validate on every Admit and Record: answer a valid policy
	// without building anything.
	if p.FailureThreshold > 0 && p.FailureThreshold <= MaxFailureThreshold &&
		p.SuccessThreshold > 0 && int64(p.SuccessThreshold) <= MaxCount &&
		p.HalfOpenMaxCalls > 0 && int64(p.HalfOpenMaxCalls) <= MaxCount &&
		(p.FailureWindow == 0 || p.FailureWindow >= time.Millisecond) &&
		p.Timeout >= time.Millisecond && p.ProbeTimeout >= time.Millisecond {
		return nil
	}
	return p.problems()
}

// problems lists every reason p is not valid.
func (p Policy) problems() error {
	var errs []error
	pos := func(field string, v int) {
		if v <= 0 {
			errs = append(errs, fmt.Errorf("tripline: Policy.%s must be positive, got %d", field, v))
		}
	}
	ms := func(field string, d time.Duration, zeroOK bool) {
		if (d == 0 && !zeroOK) || (d != 0 && d < time.Millisecond) {
			errs = append(errs, fmt.Errorf("tripline: Policy.%s must be at least 1ms, got %s", field, d))
		}
	}
	pos("FailureThreshold", p.FailureThreshold)
	if p.FailureThreshold > MaxFailureThreshold {
		errs = append(errs, fmt.Errorf("tripline: Policy.FailureThreshold is %d, more than %d", p.FailureThreshold, MaxFailureThreshold))
	}
	pos("SuccessThreshold", p.SuccessThreshold)
	pos("HalfOpenMaxCalls", p.HalfOpenMaxCalls)
	atMost := func(field string, v int, limit int64) {
		if int64(v) > limit {
			errs = append(errs, fmt.Errorf("tripline: Policy.%s is %d, more than %d", field, v, limit))
		}
	}
	atMost("SuccessThreshold", p.SuccessThreshold, MaxCount)
	atMost("HalfOpenMaxCalls", p.HalfOpenMaxCalls, MaxCount)
	if p.FailureWindow < 0 {
		errs = append(errs, fmt.Errorf("tripline: Policy.FailureWindow is negative (%s)", p.FailureWindow))
	}
	ms("FailureWindow", p.FailureWindow, true)
	ms("Timeout", p.Timeout, false)
	ms("ProbeTimeout", p.ProbeTimeout, false)
	return errors.Join(errs...)
}

func or[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}
