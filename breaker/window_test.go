package breaker

import (
	"slices"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"
)

// TestFailureWindow checks the ring of failure times against a plain slice
// that does the same: drop the times later than the new one, those at or
// before the window's start, and the oldest beyond keep - 1; then count by
// time.
func TestFailureWindow(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		var w failureWindow
		var model []int64
		now := int64(1000)
		t.Repeat(map[string]func(*rapid.T){
			"add": func(t *rapid.T) {
				now += int64(rapid.IntRange(-3, 20).Draw(t, "step")) // the clock may go back
				window := int64(rapid.IntRange(1, 40).Draw(t, "window"))
				keep := rapid.IntRange(1, 12).Draw(t, "keep")
				model = slices.DeleteFunc(model, func(x int64) bool { return x > now || x <= now-window })
				if len(model) >= keep {
					model = model[len(model)-keep+1:]
				}
				model = append(model, now)
				require.Equal(t, len(model), w.add(now, now-window, keep), "add")
			},
			"count": func(t *rapid.T) {
				from := now - int64(rapid.IntRange(0, 50).Draw(t, "back"))
				to := from + int64(rapid.IntRange(0, 60).Draw(t, "span"))
				want := 0
				for _, x := range model {
					if x > from && x <= to {
						want++
					}
				}
				require.Equal(t, want, w.count(from, to), "count(%d, %d) of %v", from, to, model)
			},
			"clear": func(t *rapid.T) {
				w.clear()
				model = model[:0]
			},
			"": func(t *rapid.T) {
				held := []int64{}
				for i := range w.n {
					held = append(held, w.at(i))
				}
				require.Equal(t, append([]int64{}, model...), held, "the times held")
			},
		})
	})
}

// TestFailureWindowBounded: at a fixed threshold the ring never grows past
// it, and a failure on a full window allocates nothing.
func TestFailureWindowBounded(t *testing.T) {
	for _, keep := range []int{1, 5, 1000} {
		t.Run(strconv.Itoa(keep), func(t *testing.T) {
			var w failureWindow
			now := int64(0)
			for range 3 * keep {
				now++
				w.add(now, now-1<<40, keep)
			}
			assert.Equal(t, keep, w.n, "times held")
			assert.LessOrEqual(t, len(w.buf), max(keep, 4), "ring size")
			allocs := testing.AllocsPerRun(100, func() {
				now++
				w.add(now, now-1<<40, keep)
			})
			assert.Zero(t, allocs, "allocations per failure")
		})
	}
}
