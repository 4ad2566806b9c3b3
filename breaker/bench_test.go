package breaker_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/tripline/tripline/breaker"
	"github.com/tripline/tripline/store/memory"
)

// The closed-state success path: the cost tripline adds to every call of a
// healthy dependency. Goal: 0 allocs/op.
//
// "fresh" is a circuit the store holds no state for (it has never failed);
// "stored" is one the store holds (it has failed before and was reset), so
// every call takes the circuit's lock; "window" is a stored circuit in
// sliding-window mode.

func benchBreaker(b *testing.B, kind string) *breaker.Breaker {
	b.Helper()
	cfg := breaker.Config{Store: memory.New()}
	if kind == "window" {
		cfg.FailureWindow = time.Minute
	}
	br, err := breaker.New("bench", cfg)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if kind != "fresh" {
		// One failure gives the circuit state in the store; window mode keeps it.
		_ = br.Do(ctx, func(context.Context) error { return errors.New("boom") })
		if kind == "stored" {
			if err := br.Reset(ctx); err != nil {
				b.Fatal(err)
			}
		}
	}
	return br
}

var benchKinds = []string{"fresh", "stored", "window"}

func succeed(context.Context) error { return nil }

func succeedInt(context.Context) (int, error) { return 1, nil }

func BenchmarkDo(b *testing.B) {
	ctx := context.Background()
	for _, kind := range benchKinds {
		b.Run(kind+"/serial", func(b *testing.B) {
			br := benchBreaker(b, kind)
			b.ReportAllocs()
			for b.Loop() {
				if err := br.Do(ctx, succeed); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(kind+"/parallel", func(b *testing.B) {
			br := benchBreaker(b, kind)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := br.Do(ctx, succeed); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

func BenchmarkExecute(b *testing.B) {
	ctx := context.Background()
	for _, kind := range benchKinds {
		b.Run(kind+"/serial", func(b *testing.B) {
			br := benchBreaker(b, kind)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := breaker.Execute(ctx, br, succeedInt); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(kind+"/parallel", func(b *testing.B) {
			br := benchBreaker(b, kind)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := breaker.Execute(ctx, br, succeedInt); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkAllow is the two-step form; its done func is a closure, so it
// allocates once per call.
func BenchmarkAllow(b *testing.B) {
	ctx := context.Background()
	br := benchBreaker(b, "stored")
	b.ReportAllocs()
	for b.Loop() {
		done, err := br.Allow(ctx)
		if err != nil {
			b.Fatal(err)
		}
		done(nil)
	}
}

// BenchmarkDoOpen is the rejection path: the circuit is open.
func BenchmarkDoOpen(b *testing.B) {
	ctx := context.Background()
	br := benchBreaker(b, "stored")
	if err := br.ForceOpen(ctx, 0); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := br.Do(ctx, succeed); !errors.Is(err, breaker.ErrOpen) {
			b.Fatal(err)
		}
	}
}
