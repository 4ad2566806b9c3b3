package breaker_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/tripline/tripline/breaker"
	"github.com/tripline/tripline/store/memory"
)

// Basic use: one Breaker per dependency; Do runs the call if the circuit
// admits it.
func Example() {
	b, err := breaker.New("payments", breaker.Config{
		FailureThreshold: 3,                // open after 3 consecutive failures
		Timeout:          30 * time.Second, // then reject calls for 30s before a probe
	})
	if err != nil {
		panic(err)
	}

	err = b.Do(context.Background(), func(ctx context.Context) error {
		fmt.Println("charging the card")
		return nil // the call's own error goes here
	})
	fmt.Println("err:", err)
	// Output:
	// charging the card
	// err: <nil>
}

// Execute returns the function's value along with its error.
func ExampleExecute() {
	b, err := breaker.New("users", breaker.Config{})
	if err != nil {
		panic(err)
	}
	name, err := breaker.Execute(context.Background(), b, func(ctx context.Context) (string, error) {
		return "Ada", nil
	})
	fmt.Println(name, err)
	// Output: Ada <nil>
}

// When the circuit is open the call is not made; serve a fallback instead.
func Example_fallback() {
	b, err := breaker.New("recommendations", breaker.Config{FailureThreshold: 1})
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	fetch := func(ctx context.Context) ([]string, error) {
		return nil, errors.New("connection refused")
	}
	cached := []string{"the usual"}

	for range 2 {
		items, err := breaker.Execute(ctx, b, fetch)
		switch {
		case errors.Is(err, breaker.ErrOpen):
			items = cached // the circuit is open: fetch was not called
			fmt.Println("circuit open, serving", items)
		case err != nil:
			fmt.Println("fetch failed:", err)
		default:
			fmt.Println("fetched", items)
		}
	}
	// Output:
	// fetch failed: connection refused
	// circuit open, serving [the usual]
}

// statusError is an HTTP client's error for a response with a bad status.
type statusError struct{ Code int }

func (e *statusError) Error() string { return fmt.Sprintf("HTTP %d", e.Code) }

// A 4xx answer means the request was wrong, not that the service is
// failing: IsFailure tells the breaker not to count it. (IsFailure is asked
// only about non-nil errors.)
func Example_failurePredicate() {
	b, err := breaker.New("catalog", breaker.Config{
		FailureThreshold: 2,
		IsFailure: func(err error) bool {
			var se *statusError
			if errors.As(err, &se) {
				return se.Code >= 500
			}
			return !errors.Is(err, context.Canceled)
		},
	})
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	for _, code := range []int{404, 400, 404, 503, 500, 200} {
		err := b.Do(ctx, func(ctx context.Context) error {
			if code >= 400 {
				return &statusError{Code: code}
			}
			return nil
		})
		if errors.Is(err, breaker.ErrOpen) {
			fmt.Println(code, "-> not sent: circuit open")
			continue
		}
		fmt.Println(code, "->", err)
	}
	// Output:
	// 404 -> HTTP 404
	// 400 -> HTTP 400
	// 404 -> HTTP 404
	// 503 -> HTTP 503
	// 500 -> HTTP 500
	// 200 -> not sent: circuit open
}

// OnStateChange sees every transition this Breaker makes; Logger logs them.
// The store's clock is a fake one here, so that the example can move time.
func Example_stateChangeLogging() {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	store := memory.New(memory.WithClock(func() time.Time { return now }))
	logger := slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{} // drop the time, to keep the output stable
			}
			return a
		},
	}))

	b, err := breaker.New("inventory", breaker.Config{
		Store:            store,
		FailureThreshold: 2,
		Timeout:          time.Minute,
		Logger:           logger,
		OnStateChange: func(name string, from, to breaker.State) {
			fmt.Printf("hook: %s %s -> %s\n", name, from, to)
		},
	})
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	fail := func(context.Context) error { return errors.New("timeout") }
	succeed := func(context.Context) error { return nil }

	_ = b.Do(ctx, fail)
	_ = b.Do(ctx, fail)        // the second failure opens the circuit
	now = now.Add(time.Minute) // Timeout passes
	_ = b.Do(ctx, succeed)     // a probe: half-open, then closed
	// Output:
	// level=INFO msg="tripline: circuit state changed" circuit=inventory from=closed to=open generation=1 cause=outcome
	// hook: inventory closed -> open
	// level=INFO msg="tripline: circuit state changed" circuit=inventory from=open to=half-open generation=2 cause=timeout
	// hook: inventory open -> half-open
	// level=INFO msg="tripline: circuit state changed" circuit=inventory from=half-open to=closed generation=3 cause=outcome
	// hook: inventory half-open -> closed
}

// One circuit per downstream service: every Breaker shares one Store (a
// Redis store shares them across replicas too), and each name is a circuit
// of its own.
func Example_perService() {
	store := memory.New() // in production: redisstore.New(client)
	circuits := make(map[string]*breaker.Breaker)
	for _, service := range []string{"payments", "search", "users"} {
		b, err := breaker.New(service, breaker.Config{Store: store, FailureThreshold: 2})
		if err != nil {
			panic(err)
		}
		circuits[service] = b
	}
	call := func(ctx context.Context, service string, fn func(context.Context) error) error {
		return circuits[service].Do(ctx, fn)
	}

	ctx := context.Background()
	down := func(context.Context) error { return errors.New("503") }
	up := func(context.Context) error { return nil }
	_ = call(ctx, "search", down)
	_ = call(ctx, "search", down) // search's circuit opens
	_ = call(ctx, "payments", up)

	for _, service := range []string{"payments", "search", "users"} {
		s, err := circuits[service].Snapshot(ctx)
		if err != nil {
			panic(err)
		}
		fmt.Printf("%-8s %s\n", service, s.State)
	}
	fmt.Println(errors.Is(call(ctx, "search", up), breaker.ErrOpen))
	// Output:
	// payments closed
	// search   open
	// users    closed
	// true
}

// Allow is for calls that cannot be wrapped in a function: report the
// outcome through done.
func ExampleBreaker_Allow() {
	b, err := breaker.New("legacy", breaker.Config{})
	if err != nil {
		panic(err)
	}
	done, err := b.Allow(context.Background())
	if err != nil {
		fmt.Println("rejected:", err)
		return
	}
	var callErr error // ... make the call ...
	done(callErr)
	fmt.Println("reported")
	// Output: reported
}

// ForceOpen takes a dependency out of service for every replica sharing the
// store; Reset puts it back.
func ExampleBreaker_ForceOpen() {
	b, err := breaker.New("mail", breaker.Config{})
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	if err := b.ForceOpen(ctx, 0); err != nil {
		panic(err)
	}
	fmt.Println(b.Do(ctx, func(context.Context) error { return nil }))
	if err := b.Reset(ctx); err != nil {
		panic(err)
	}
	fmt.Println(b.Do(ctx, func(context.Context) error { return nil }))
	// Output:
	// tripline: circuit "mail" is open
	// <nil>
}

// downStore is a Store that cannot answer, like a Redis that is down.
type downStore struct{}

var errDown = errors.New("dial tcp 10.0.0.7:6379: connection refused")

func (downStore) Admit(context.Context, string, breaker.Policy) (breaker.Admission, error) {
	return breaker.Admission{}, errDown
}

func (downStore) Record(context.Context, string, breaker.Policy, breaker.Outcome) (breaker.Result, error) {
	return breaker.Result{}, errDown
}

func (downStore) Apply(context.Context, string, breaker.Command) (breaker.Result, error) {
	return breaker.Result{}, errDown
}

func (downStore) Load(context.Context, string) (breaker.Snapshot, error) {
	return breaker.Snapshot{}, errDown
}

// When the shared store cannot answer, Config.Degraded decides. By default
// (FallbackLocal) a breaker in the process takes over; FailClosed rejects
// calls with a *StoreError, which is not ErrOpen.
func ExampleDegradedMode() {
	ctx := context.Background()
	call := func(context.Context) error { return nil }

	local, err := breaker.New("payments", breaker.Config{Store: downStore{}})
	if err != nil {
		panic(err)
	}
	err = local.Do(ctx, call)
	s, _ := local.Snapshot(ctx)
	fmt.Printf("fallback-local: err=%v state=%s degraded=%t\n", err, s.State, s.Degraded)

	strict, err := breaker.New("payments", breaker.Config{Store: downStore{}, Degraded: breaker.FailClosed})
	if err != nil {
		panic(err)
	}
	err = strict.Do(ctx, call)
	var se *breaker.StoreError
	fmt.Println("fail-closed: store error:", errors.As(err, &se), "open:", errors.Is(err, breaker.ErrOpen))
	// Output:
	// fallback-local: err=<nil> state=closed degraded=true
	// fail-closed: store error: true open: false
}
