package memory_test

import (
	"context"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tripline/tripline/breaker"
	"github.com/tripline/tripline/store/memory"
)

// footprintCircuits and footprintBudget are the product target: 100k
// circuits in one process in at most 50 MB.
const (
	footprintCircuits = 100_000
	footprintBudget   = 50 << 20
)

// TestFootprint measures the heap that footprintCircuits tripped circuits
// take, names included, in each counting mode and forced open.
func TestFootprint(t *testing.T) {
	p := breaker.Policy{
		FailureThreshold: 5,
		Timeout:          time.Minute,
		SuccessThreshold: 1,
		HalfOpenMaxCalls: 1,
		ProbeTimeout:     time.Minute,
	}
	windowed := p
	windowed.FailureWindow = time.Minute
	tests := []struct {
		name string
		fill func(t *testing.T, st *memory.Store, name string)
	}{
		{"Consecutive", func(t *testing.T, st *memory.Store, name string) { trip(t, st, name, p) }},
		{"Window", func(t *testing.T, st *memory.Store, name string) { trip(t, st, name, windowed) }},
		{"ForcedOpen", func(t *testing.T, st *memory.Store, name string) {
			cmd := breaker.Command{Kind: breaker.CommandForceOpen, TTL: time.Hour, Actor: "alice", Reason: "maintenance"}
			_, err := st.Apply(t.Context(), name, cmd)
			require.NoError(t, err)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := heapInUse()
			st := memory.New()
			for i := range footprintCircuits {
				tt.fill(t, st, "service-"+strconv.Itoa(i))
			}
			after := heapInUse()
			snap, err := st.Load(t.Context(), "service-"+strconv.Itoa(footprintCircuits-1))
			require.NoError(t, err)
			require.Equal(t, breaker.StateOpen, snap.State)
			runtime.KeepAlive(st)

			total := after - before
			t.Logf("%d circuits: %.1f MB, %d bytes per circuit", footprintCircuits,
				float64(total)/(1<<20), total/footprintCircuits)
			assert.LessOrEqual(t, total, int64(footprintBudget), "heap for %d circuits", footprintCircuits)
		})
	}
}

// trip opens the new circuit with FailureThreshold failures, each recorded
// in generation 0 as if admitted before the first.
func trip(t *testing.T, st *memory.Store, name string, p breaker.Policy) {
	ctx := context.Background()
	for range p.FailureThreshold {
		if _, err := st.Record(ctx, name, p, breaker.Outcome{Kind: breaker.OutcomeFailure}); err != nil {
			t.Fatal(err)
		}
	}
}

// heapInUse returns the bytes of live heap objects after a full collection.
func heapInUse() int64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}
