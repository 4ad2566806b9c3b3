package memory_test

import (
	"context"
	"testing"
	"time"

	"github.com/tripline/tripline/breaker"
	"github.com/tripline/tripline/store/memory"
)

var benchPolicy = breaker.Policy{
	FailureThreshold: 5,
	Timeout:          time.Minute,
	SuccessThreshold: 1,
	HalfOpenMaxCalls: 1,
	ProbeTimeout:     30 * time.Second,
}

// BenchmarkAdmitRecordSuccess is the closed-state success path on a circuit
// that has state (one failure recorded, then cleared by a success).
func BenchmarkAdmitRecordSuccess(b *testing.B) {
	ctx := context.Background()
	st := memory.New()
	p := benchPolicy
	if _, err := st.Record(ctx, "svc", p, breaker.Outcome{Kind: breaker.OutcomeFailure}); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			a, err := st.Admit(ctx, "svc", p)
			if err != nil || !a.Allowed {
				b.Fatal(a, err)
			}
			if _, err := st.Record(ctx, "svc", p, breaker.Outcome{Kind: breaker.OutcomeSuccess, Generation: a.Generation}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkAdmitRecordSuccessSerial is BenchmarkAdmitRecordSuccess on one
// goroutine.
func BenchmarkAdmitRecordSuccessSerial(b *testing.B) {
	ctx := context.Background()
	st := memory.New()
	p := benchPolicy
	if _, err := st.Record(ctx, "svc", p, breaker.Outcome{Kind: breaker.OutcomeFailure}); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		a, err := st.Admit(ctx, "svc", p)
		if err != nil || !a.Allowed {
			b.Fatal(a, err)
		}
		if _, err := st.Record(ctx, "svc", p, breaker.Outcome{Kind: breaker.OutcomeSuccess, Generation: a.Generation}); err != nil {
			b.Fatal(err)
		}
	}
}
