// Package memory is the in-process Store: circuits shared by the Breakers of
// one process. It is the default store of a Breaker that is given none, and
// the reference implementation of the breaker.Store contract.
//
// It keeps every circuit it has written for the life of the process; a
// circuit that was only ever read (admitted while closed, loaded, sent a
// success) is not stored at all. A tripped circuit takes about 230 bytes of
// heap with its map entry and a short name, about 290 in sliding-window mode
// with a FailureThreshold of 5 (8 bytes more per failure the threshold
// allows), and about 320 while forced open with an override: 100,000
// circuits fit in 22 to 31 MB (TestFootprint measures it).
package memory

import (
	"context"
	"time"

	"github.com/tripline/tripline/breaker"
	"github.com/tripline/tripline/internal/memhook"
)

// Store is an in-process breaker.Store, safe for concurrent use. Make one
// with New.
type Store struct {
	impl breaker.Store
}

var _ breaker.Store = (*Store)(nil)

// zeroStore answers for a Store that New did not make.
var zeroStore = memhook.New(nil).(breaker.Store)

// get returns the store behind s. A zero Store{} shares one process-wide
// memory store rather than panicking.
func (s *Store) get() breaker.Store {
	if s == nil || s.impl == nil {
		return zeroStore
	}
	return s.impl
}

// Admit implements breaker.Store.
func (s *Store) Admit(ctx context.Context, name string, p breaker.Policy) (breaker.Admission, error) {
	return s.get().Admit(ctx, name, p)
}

// Record implements breaker.Store.
func (s *Store) Record(ctx context.Context, name string, p breaker.Policy, o breaker.Outcome) (breaker.Result, error) {
	return s.get().Record(ctx, name, p, o)
}

// Apply implements breaker.Store.
func (s *Store) Apply(ctx context.Context, name string, c breaker.Command) (breaker.Result, error) {
	return s.get().Apply(ctx, name, c)
}

// Follow implements breaker.Follower: Breakers that share the store hear
// of each other's transitions (breaker.Config.OnStateSeen).
func (s *Store) Follow(name string, fn func(breaker.Followed) bool) (stop func()) {
	return s.get().(breaker.Follower).Follow(name, fn)
}

// Load implements breaker.Store.
func (s *Store) Load(ctx context.Context, name string) (breaker.Snapshot, error) {
	return s.get().Load(ctx, name)
}

// Option configures a Store.
type Option func(*options)

type options struct {
	now func() time.Time
}

// WithClock makes the store read time from now instead of time.Now, so tests
// can move time without sleeping.
func WithClock(now func() time.Time) Option {
	return func(o *options) { o.now = now }
}

// New returns an empty Store.
func New(opts ...Option) *Store {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	return &Store{impl: memhook.New(o.now).(breaker.Store)}
}
