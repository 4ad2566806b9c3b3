package redisstore_test

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

// Two replicas of a service, each with its own Redis client, share the
// circuit "payments": a trip on one is seen by the other. (Here b holds no
// view of the circuit yet, so its call asks Redis; a replica that does
// hears of the trip on the store's subscription, or at its own next
// failure, or once its view is older than WithMaxStaleness.)
func Example() {
	mr, err := miniredis.Run() // stands in for your Redis
	if err != nil {
		panic(err)
	}
	defer mr.Close()
	ctx := context.Background()
	var closers []func() error
	defer func() {
		for _, c := range closers {
			_ = c()
		}
	}()

	replica := func() *breaker.Breaker {
		client := redis.NewClient(&redis.Options{Addr: mr.Addr()})
		store := redisstore.New(client, redisstore.WithPrefix("checkout"))
		closers = append(closers, store.Close, client.Close) // the store first

		b, err := breaker.New("payments", breaker.Config{
			Store:            store,
			FailureThreshold: 2,
			Timeout:          30 * time.Second,
		})
		if err != nil {
			panic(err)
		}
		return b
	}
	a, b := replica(), replica()

	down := errors.New("payment provider down")
	for range 2 {
		_ = a.Do(ctx, func(context.Context) error { return down })
	}
	err = b.Do(ctx, func(context.Context) error { return nil })
	fmt.Println(errors.Is(err, breaker.ErrOpen))
	snap, _ := b.Snapshot(ctx)
	fmt.Println(snap.State, snap.Generation)
	// Output:
	// true
	// open 1
}
