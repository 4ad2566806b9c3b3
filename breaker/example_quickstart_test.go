package breaker_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/tripline/tripline/breaker"
	redisstore "github.com/tripline/tripline/store/redis"
)

// The README's Quick start: run called six times, as six processes
// would: the circuit lives in Redis, so the sixth call is rejected. run and chargeCard
// are the README's code, line for line (TestReadmeQuickStart checks it);
// an embedded miniredis stands in for your Redis.
func Example_quickStart() {
	mr, err := miniredis.Run()
	if err != nil {
		panic(err)
	}
	defer mr.Close()
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr(), ContextTimeoutEnabled: true})
	defer rdb.Close()
	// miniredis runs Lua far slower than Redis (under -race, more than the
	// 50ms default): a longer call timeout keeps every call on the store.
	store := redisstore.New(rdb, redisstore.WithCallTimeout(10*time.Second))
	defer store.Close()
	for range 6 {
		err := run(context.Background(), store)
		if errors.Is(err, breaker.ErrOpen) {
			fmt.Println("rejected: the circuit is open")
			continue
		}
		fmt.Println(err)
	}
	// Output:
	// card processor unreachable
	// card processor unreachable
	// card processor unreachable
	// card processor unreachable
	// card processor unreachable
	// rejected: the circuit is open
}

func run(ctx context.Context, store breaker.Store) error {
	payments, err := breaker.New("payments", breaker.Config{
		FailureThreshold: 5,                // open after 5 consecutive failures
		Timeout:          30 * time.Second, // stay open 30s, then let one probe through
		Store:            store,            // every process using this Redis shares the circuit
	})
	if err != nil {
		return err // a bad Config is an error, never a panic
	}

	err = payments.Do(ctx, func(ctx context.Context) error {
		return chargeCard(ctx, "order-42")
	})
	if errors.Is(err, breaker.ErrOpen) { // rejected without calling chargeCard
		return fmt.Errorf("payments unavailable, try later: %w", err) // an *OpenError, with RetryAfter
	}
	return err
}

// chargeCard stands for your call to the dependency; this one is down.
func chargeCard(ctx context.Context, order string) error {
	return errors.New("card processor unreachable")
}
