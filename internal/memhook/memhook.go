// Package memhook lets store/memory construct the memory store that lives in
// package breaker (as its default store) without an import cycle.
package memhook

import "time"

// New builds a memory store with the given clock; package breaker sets it.
// The result is a breaker.Store.
var New func(now func() time.Time) any
