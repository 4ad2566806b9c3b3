package memory_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tripline/tripline/breaker"
	"github.com/tripline/tripline/store/memory"
)

// Two Breakers with the same name and the same Store share one circuit:
// failures seen by one open it for both.
func ExampleNew() {
	ctx := context.Background()
	st := memory.New()
	cfg := breaker.Config{FailureThreshold: 2, Store: st}
	a, _ := breaker.New("payments", cfg)
	b, _ := breaker.New("payments", cfg)

	failing := func(context.Context) error { return errors.New("connection refused") }
	_ = a.Do(ctx, failing)
	_ = b.Do(ctx, failing)

	err := a.Do(ctx, func(context.Context) error { return nil })
	fmt.Println(errors.Is(err, breaker.ErrOpen))
	snap, _ := b.Snapshot(ctx)
	fmt.Println(snap.State, snap.Generation)
	// Output:
	// true
	// open 1
}

// A store with an injected clock lets a test move time instead of sleeping.
func ExampleWithClock() {
	ctx := context.Background()
	now := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	st := memory.New(memory.WithClock(func() time.Time { return now }))
	b, _ := breaker.New("search", breaker.Config{FailureThreshold: 1, Timeout: time.Minute, Store: st})

	_ = b.Do(ctx, func(context.Context) error { return errors.New("timeout") })
	err := b.Do(ctx, func(context.Context) error { return nil })
	var open *breaker.OpenError
	if errors.As(err, &open) {
		fmt.Println("rejected, retry after", open.RetryAfter)
	}

	now = now.Add(time.Minute) // the open timeout has passed
	err = b.Do(ctx, func(context.Context) error { return nil })
	snap, _ := b.Snapshot(ctx)
	fmt.Println(err, snap.State)
	// Output:
	// rejected, retry after 1m0s
	// <nil> closed
}
