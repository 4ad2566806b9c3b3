package bench

import (
	"math/bits"
	"sync"
	"time"
)

// histSubBits sets the histogram's precision: each power of two is split
// into 1<<histSubBits buckets, so a recorded value is known to within
// 1/(1<<histSubBits) (about 3%); values below 1<<(histSubBits+1) ns are
// exact.
const histSubBits = 5

// histBuckets covers every int64: 64 powers of two, 1<<histSubBits buckets
// each.
const histBuckets = 64 << histSubBits

// hist is a log-linear latency histogram in the manner of HDR histograms:
// a fixed array, so recording allocates nothing and costs a few
// instructions. One goroutine records into its own hist; merge adds them up
// once the timed loop is over.
type hist struct {
	counts [histBuckets]uint64
	n      uint64
}

// histIndex returns the bucket of v (v >= 0).
func histIndex(v int64) int {
	if v < 0 {
		v = 0
	}
	u := uint64(v)
	if u < 1<<(histSubBits+1) {
		return int(u)
	}
	shift := bits.Len64(u) - 1 - histSubBits
	mantissa := u >> shift // in [1<<histSubBits, 1<<(histSubBits+1))
	return (shift+1)<<histSubBits + int(mantissa-1<<histSubBits)
}

// histValue returns the middle of bucket i, the value reported for it.
func histValue(i int) float64 {
	if i < 1<<(histSubBits+1) {
		return float64(i)
	}
	shift := i>>histSubBits - 1
	mantissa := uint64(i&(1<<histSubBits-1)) + 1<<histSubBits
	low := mantissa << shift
	return float64(low) + float64(uint64(1)<<shift)/2
}

// record adds one latency.
func (h *hist) record(d time.Duration) {
	h.counts[histIndex(int64(d))]++
	h.n++
}

// merge adds o's counts to h.
func (h *hist) merge(o *hist) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
}

// quantile returns the q-quantile (0 < q <= 1) in ns: the value of the
// bucket holding the ceil(q*n)-th smallest latency; 0 when h is empty.
func (h *hist) quantile(q float64) float64 {
	if h.n == 0 {
		return 0
	}
	rank := uint64(q * float64(h.n))
	if float64(rank) < q*float64(h.n) {
		rank++
	}
	if rank == 0 {
		rank = 1
	}
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return histValue(i)
		}
	}
	return histValue(histBuckets - 1)
}

// histSet collects the hists of the goroutines of one benchmark.
type histSet struct {
	mu  sync.Mutex
	all hist
}

// add merges one goroutine's hist.
func (s *histSet) add(h *hist) {
	s.mu.Lock()
	s.all.merge(h)
	s.mu.Unlock()
}
