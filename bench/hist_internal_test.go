package bench

import (
	"math"
	"testing"
	"time"
)

// TestHist checks the latency histogram against exact quantiles: every
// bucket's value is within 1/(1<<histSubBits) of what it holds, and the
// quantiles of 1..n ns are found to that precision.
func TestHist(t *testing.T) {
	prev := -1
	for _, v := range []int64{0, 1, 63, 64, 65, 127, 128, 1000, 1 << 20, 1<<40 + 12345, math.MaxInt64} {
		i := histIndex(v)
		if i < prev || i >= histBuckets {
			t.Fatalf("histIndex(%d) = %d: out of order or out of range", v, i)
		}
		prev = i
		if got := histValue(i); math.Abs(got-float64(v)) > float64(v)/(1<<histSubBits)+0.5 {
			t.Errorf("histValue(histIndex(%d)) = %.0f: more than 1/%d off", v, got, 1<<histSubBits)
		}
	}
	h := new(hist)
	const n = 100_000
	for v := 1; v <= n; v++ {
		h.record(time.Duration(v))
	}
	for _, q := range []float64{0.5, 0.99, 1} {
		want := q * n
		if got := h.quantile(q); math.Abs(got-want) > want/(1<<histSubBits) {
			t.Errorf("quantile(%v) = %.0f, want %.0f within %.1f%%", q, got, want, 100.0/(1<<histSubBits))
		}
	}
	var s histSet
	s.add(h)
	s.add(h)
	if s.all.n != 2*n || s.all.quantile(0.5) != h.quantile(0.5) {
		t.Errorf("merged: n = %d, p50 = %.0f; want %d, %.0f", s.all.n, s.all.quantile(0.5), 2*n, h.quantile(0.5))
	}
	if got := new(hist).quantile(0.5); got != 0 {
		t.Errorf("empty quantile = %v, want 0", got)
	}
}
