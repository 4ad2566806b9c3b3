package main

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tripline/tripline/breaker"
	"github.com/tripline/tripline/internal/testutil"
	"github.com/tripline/tripline/store/memory"
)

// flakyStore is a memory store that fails every call while down is set.
type flakyStore struct {
	*memory.Store
	down atomic.Bool
}

var errStoreDown = errors.New("store down")

func (s *flakyStore) Admit(ctx context.Context, name string, p breaker.Policy) (breaker.Admission, error) {
	if s.down.Load() {
		return breaker.Admission{}, errStoreDown
	}
	return s.Store.Admit(ctx, name, p)
}

func (s *flakyStore) Record(ctx context.Context, name string, p breaker.Policy, o breaker.Outcome) (breaker.Result, error) {
	if s.down.Load() {
		return breaker.Result{}, errStoreDown
	}
	return s.Store.Record(ctx, name, p, o)
}

func (s *flakyStore) Apply(ctx context.Context, name string, c breaker.Command) (breaker.Result, error) {
	if s.down.Load() {
		return breaker.Result{}, errStoreDown
	}
	return s.Store.Apply(ctx, name, c)
}

func (s *flakyStore) Load(ctx context.Context, name string) (breaker.Snapshot, error) {
	if s.down.Load() {
		return breaker.Snapshot{}, errStoreDown
	}
	return s.Store.Load(ctx, name)
}

// TestReplicaShowsDegraded: with the default degraded mode (FallbackLocal)
// Do returns no *StoreError during a store outage, so the demo used to show
// nothing of it. It now reads Snapshot.Degraded after each call.
func TestReplicaShowsDegraded(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer up.Close()
	store := &flakyStore{Store: memory.New()}
	var lines testutil.SyncBuffer
	report := func(line string) { _, _ = lines.Write([]byte(line + "\n")) }
	r, err := newReplica("r1", up.URL, store, breakerConfig{circuit: "c", threshold: 3, openTimeout: time.Second},
		func() time.Duration { return 0 }, report, nil)
	require.NoError(t, err)

	r.call(t.Context())
	st := r.snapshot()
	require.Equal(t, 1, st.OK)
	assert.False(t, st.Degraded)
	assert.Equal(t, "closed", st.sees())

	store.down.Store(true)
	r.call(t.Context())
	st = r.snapshot()
	assert.Equal(t, 2, st.OK, "the local fallback admits the call: Do returns nil")
	assert.True(t, st.Degraded)
	assert.Equal(t, "closed (degraded)", st.sees())
	assert.Positive(t, st.StoreErrors)
	assert.Positive(t, st.DegradedCalls)
	assert.Contains(t, lines.String(), "r1         degraded: the store does not answer")

	res := &result{backend: "test", circuit: "c", names: []string{"r1"}, replicas: map[string]stats{"r1": st}}
	var out strings.Builder
	res.print(&out)
	assert.Contains(t, out.String(), "calls decided locally while degraded: ")

	// The Breaker probes the store again after a short backoff (50ms).
	store.down.Store(false)
	testutil.WaitFor(t, "the replica to leave the degraded episode", func() bool {
		r.call(t.Context())
		return !r.snapshot().Degraded
	})
	assert.Contains(t, lines.String(), "r1         store answers again: back on the shared circuit")
	assert.Equal(t, "closed", r.snapshot().sees())
}
