// Package memory is the in-process Store: circuits shared by the Breakers of
// one process. It is the default store of a Breaker that is given none, and
// the reference implementation of the breaker.Store contract.
//
// It keeps every circuit it has written for the life of the process (about
// 200 bytes each, more in sliding-window mode); a circuit that was only ever
// read is not stored at all.
package memory

import (
	"time"

	"github.com/tripline/tripline/breaker"
	"github.com/tripline/tripline/internal/memhook"
)

// Store is an in-process breaker.Store, safe for concurrent use.
type Store struct {
	breaker.Store
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
	return &Store{Store: memhook.New(o.now).(breaker.Store)}
}
