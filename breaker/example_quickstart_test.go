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

// The README's Quick start, run six times as six processes would: the
// circuit lives in Redis, so the sixth run is rejected. run and chargeCard
// are the README's code, line for line (TestReadmeQuickStart checks it);
// an embedded miniredis stands in for your Redis.
func Example_quickStart() {
	mr, err := miniredis.Run()
	if err != nil {
		panic(err)
	}
	defer mr.Close()
	for range 6 {
		err := run(context.Background(), mr.Addr())
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

func run(ctx context.Context, addr string) error {
	rdb := redis.NewClient(&redis.Options{
		Addr:                  addr,
		ContextTimeoutEnabled: true, // lets the store's call timeout (50ms) bound each round trip
	})
	defer rdb.Close()
	store := redisstore.New(rdb) // one per process, shared by all its circuits
	defer store.Close()          // runs before rdb.Close: deferred calls run last first

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
