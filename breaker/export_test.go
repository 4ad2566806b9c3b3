package breaker

import "time"

// NewWithClock is New with now as the clock of the store backoff and of the
// local fallback, so that tests move time instead of sleeping.
func NewWithClock(name string, cfg Config, now func() time.Time) (*Breaker, error) {
	return newBreaker(name, cfg, now)
}

// DefaultLogger is the logger of a Breaker without Config.Logger.
var DefaultLogger = defaultLogger
