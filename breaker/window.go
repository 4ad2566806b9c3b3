package breaker

// failureWindow holds the times (UnixNano) of a circuit's failures in
// window mode, oldest first, in a ring: as of the last failure, only those
// within the window, and at most FailureThreshold of them. Counting a
// failure costs O(1), amortised, whatever the threshold (the Redis scripts
// do the same in O(log n)); Load counts in O(log n).
type failureWindow struct {
	buf   []int64
	start int // index of the oldest
	n     int
}

// at returns the i-th oldest failure time.
func (w *failureWindow) at(i int) int64 {
	j := w.start + i
	if j >= len(w.buf) {
		j -= len(w.buf)
	}
	return w.buf[j]
}

func (w *failureWindow) clear() { w.start, w.n = 0, 0 }

func (w *failureWindow) dropOldest() {
	w.start++
	if w.start == len(w.buf) {
		w.start = 0
	}
	w.n--
}

// add counts a failure at t and returns the failures held, t included. It
// first drops the failures at or before from (out of the window), those
// later than t (the clock went back: they are not counted again), and the
// oldest beyond keep - 1.
func (w *failureWindow) add(t, from int64, keep int) int {
	for w.n > 0 && w.at(w.n-1) > t {
		w.n--
	}
	for w.n > 0 && w.at(0) <= from {
		w.dropOldest()
	}
	for w.n > 0 && w.n >= keep {
		w.dropOldest()
	}
	if w.n == len(w.buf) {
		w.grow(keep)
	}
	j := w.start + w.n
	if j >= len(w.buf) {
		j -= len(w.buf)
	}
	w.buf[j] = t
	w.n++
	return w.n
}

// grow makes room for at least one more failure: it doubles the ring, up
// to keep, so a window never holds more than FailureThreshold times.
func (w *failureWindow) grow(keep int) {
	buf := make([]int64, max(min(2*len(w.buf), keep), 4, w.n+1))
	for i := range w.n {
		buf[i] = w.at(i)
	}
	w.buf, w.start = buf, 0
}

// count returns the failures in (from, to].
func (w *failureWindow) count(from, to int64) int {
	return w.after(to) - w.after(from)
}

// after returns the index of the oldest failure later than t (n if none).
func (w *failureWindow) after(t int64) int {
	lo, hi := 0, w.n
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if w.at(mid) > t {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return lo
}
