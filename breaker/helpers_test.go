package breaker_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tripline/tripline/breaker"
	"github.com/tripline/tripline/store/memory"
)

var (
	errBoom    = errors.New("boom")
	errIgnored = errors.New("ignored by IsFailure")
)

func ok(context.Context) error      { return nil }
func failing(context.Context) error { return errBoom }

// fakeClock is the memory store's clock in tests: time moves only when a
// test says so.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

var epoch = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func newClock() *fakeClock { return &fakeClock{now: epoch} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// hookLog records OnStateChange calls, as "name: from -> to".
type hookLog struct {
	mu  sync.Mutex
	got []string
}

func (h *hookLog) hook(name string, from, to breaker.State) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.got = append(h.got, fmt.Sprintf("%s: %s -> %s", name, from, to))
}

func (h *hookLog) list() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.got...)
}

// env is one memory store on a fake clock, shared by the Breakers a test
// makes with it.
type env struct {
	clock *fakeClock
	store *memory.Store
}

func newEnv() *env {
	c := newClock()
	return &env{clock: c, store: memory.New(memory.WithClock(c.Now))}
}

// breaker returns a Breaker named "svc" on the env's store, with a hook log
// of its own. cfg.Store and cfg.OnStateChange are filled in.
func (e *env) breaker(t *testing.T, cfg breaker.Config) (*breaker.Breaker, *hookLog) {
	t.Helper()
	h := &hookLog{}
	cfg.Store = e.store
	cfg.OnStateChange = h.hook
	b, err := breaker.New("svc", cfg)
	require.NoError(t, err)
	return b, h
}

func snapshot(t *testing.T, b *breaker.Breaker) breaker.Snapshot {
	t.Helper()
	s, err := b.Snapshot(context.Background())
	require.NoError(t, err)
	return s
}

// counter is a protected function that counts its runs and returns err.
type counter struct {
	mu   sync.Mutex
	runs int
	err  error
}

func (c *counter) fn(context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.runs++
	return c.err
}

func (c *counter) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.runs
}

// logBuffer is a JSON slog handler's output, safe for concurrent writes.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// records returns every logged record as a map, without its time.
func (l *logBuffer) records(t *testing.T) []map[string]any {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(l.buf.Bytes()))
	for sc.Scan() {
		var m map[string]any
		require.NoError(t, json.Unmarshal(sc.Bytes(), &m), "log line %q", sc.Text())
		delete(m, "time")
		out = append(out, m)
	}
	require.NoError(t, sc.Err())
	return out
}
