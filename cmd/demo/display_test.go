package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tripline/tripline/breaker"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// fixedLoader is a store that always holds snap.
type fixedLoader struct{ snap breaker.Snapshot }

func (l fixedLoader) Load(context.Context, string) (breaker.Snapshot, error) { return l.snap, nil }

// busyDisplay is a table display 12.34s into the default demo, with long
// cells and more events than any screen shows: the worst case for a
// small terminal.
func busyDisplay(t *testing.T, out *bytes.Buffer, size func() (int, int)) *display {
	t.Helper()
	cfg, err := parseArgs(nil, func(string) string { return "" }, &bytes.Buffer{})
	require.NoError(t, err)
	at := 12340 * time.Millisecond
	d := newDisplay(out, cfg, "embedded miniredis", func() time.Duration { return at }, screen{tty: true, size: size})
	d.observer = fixedLoader{breaker.Snapshot{State: breaker.StateOpen, Generation: 7, Failures: 3, Probes: 0}}
	d.replicas = []*replica{
		{name: "replica-1", st: stats{Calls: 98, OK: 90, Failed: 8, Rejected: 25, Probes: 2, Trips: 1, View: viewOpen,
			Last: "rejected: open, probe in 1.1s"}},
		{name: "replica-2", st: stats{Calls: 95, OK: 92, Failed: 3, Rejected: 28, Probes: 1, View: viewHalfOpen,
			Last: "rejected: half-open, another replica holds the probe"}},
		{name: "replica-3", st: stats{Calls: 97, OK: 93, Failed: 4, Rejected: 26, View: viewClosed, Degraded: true,
			Last: "call failed: upstream answered 503"}},
	}
	for i := range 30 {
		d.logAt(time.Duration(i)*400*time.Millisecond, fmt.Sprintf("%-10s #%d closed -> open  (failure 3 in a row, counted across the fleet: tripped it)", "replica-1", i))
	}
	return d
}

// TestTableFits80x24: the live table used to overflow an 80x24 terminal
// (the header scrolled away, cells wrapped). Each frame now fits the
// screen: no line reaches the last column, no more lines than rows.
func TestTableFits80x24(t *testing.T) {
	d := busyDisplay(t, &bytes.Buffer{}, nil)
	lines := d.frame(t.Context()).fit(80, 24)
	got := strings.Join(lines, "\n") + "\n"

	golden := filepath.Join("testdata", "table-80x24.golden")
	if *update {
		require.NoError(t, os.MkdirAll("testdata", 0o755))
		require.NoError(t, os.WriteFile(golden, []byte(got), 0o644))
	}
	want, err := os.ReadFile(golden)
	require.NoError(t, err, "run go test -run TestTableFits80x24 -update to write it")
	assert.Equal(t, string(want), got)
	assert.Len(t, lines, 24, "a full screen: the latest events fill it")
	for i, l := range lines {
		assert.Less(t, utf8.RuneCountInString(l), 80, "line %d: %q", i+1, l)
	}
	assert.True(t, strings.HasPrefix(lines[0], "tripline demo  12.3s of 20s"), "the header stays on screen")
	assert.Contains(t, got, "#29", "the latest event is shown")
}

func TestTableFitsAnyScreen(t *testing.T) {
	tests := []struct {
		width, height int
		events        bool // room for at least one event
	}{
		{80, 24, true},
		{200, 60, true},
		{40, 12, true},
		{80, 11, false},
		{20, 4, false},
		{2, 1, false},
		{0, 0, false}, // a terminal that does not know its size
		{-5, -5, false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%dx%d", tt.width, tt.height), func(t *testing.T) {
			d := busyDisplay(t, &bytes.Buffer{}, nil)
			lines := d.frame(t.Context()).fit(tt.width, tt.height)
			require.NotEmpty(t, lines)
			assert.LessOrEqual(t, len(lines), max(tt.height, 1))
			for i, l := range lines {
				assert.Less(t, utf8.RuneCountInString(l), max(tt.width, 2), "line %d: %q", i+1, l)
			}
			assert.Equal(t, tt.events, strings.Contains(strings.Join(lines, "\n"), "#29"))
		})
	}
}

func TestCutLine(t *testing.T) {
	tests := []struct {
		line string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"exactly10!", 10, "exactly10!"},
		{"one too long", 11, "one too lo…"},
		{"héllo wörld", 5, "héll…"},
		{"tab\there\nand a newline", 30, "tab here and a newline"},
		{"x", 1, "x"},
		{"xy", 1, "…"},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			assert.Equal(t, tt.want, cut(tt.line, tt.n))
		})
	}
}

// TestTableRedrawsInPlace: each frame used to clear the whole screen. It
// now moves the cursor home and overwrites, clearing only what the last
// frame left behind, and never scrolls.
func TestTableRedrawsInPlace(t *testing.T) {
	var out bytes.Buffer
	d := busyDisplay(t, &out, func() (int, int) { return 80, 24 })
	d.redraw(t.Context())
	frame := out.String()

	assert.NotContains(t, frame, "\x1b[2J", "no full clear")
	require.True(t, strings.HasPrefix(frame, cursorHome), "starts at the top left corner")
	assert.True(t, strings.HasSuffix(frame, clearLine+clearBelow), "clears what a longer frame left below")
	body := strings.TrimSuffix(strings.TrimPrefix(frame, cursorHome), clearLine+clearBelow)
	rows := strings.Split(body, clearLine+"\n")
	assert.Len(t, rows, 24, "one row per screen line, no newline after the last")
	assert.Equal(t, strings.Join(d.frame(t.Context()).fit(80, 24), "\n"), strings.ReplaceAll(body, clearLine, ""))

	out.Reset()
	d.finish()
	assert.True(t, strings.HasSuffix(out.String(), clearBelow+"\n"), "the summary starts below the last frame")
}

// TestLinesModeIsPlain: output that is not a terminal (a pipe, CI) gets
// plain lines, no terminal controls.
func TestLinesModeIsPlain(t *testing.T) {
	var out bytes.Buffer
	cfg, err := parseArgs(nil, func(string) string { return "" }, &bytes.Buffer{})
	require.NoError(t, err)
	d := newDisplay(&out, cfg, "embedded miniredis", func() time.Duration { return time.Second }, screen{})
	require.False(t, d.table)
	d.log("replica-1  closed -> open")
	d.finish()
	assert.NotContains(t, out.String(), "\x1b")
	assert.Contains(t, out.String(), "   1.00s  replica-1  closed -> open\n")
}

func TestScreenOf(t *testing.T) {
	env := func(vars map[string]string) func(string) string { return func(k string) string { return vars[k] } }
	file, err := os.Create(filepath.Join(t.TempDir(), "out"))
	require.NoError(t, err)
	defer file.Close()
	devNull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	require.NoError(t, err)
	defer devNull.Close()

	tests := []struct {
		name          string
		out           io.Writer
		env           map[string]string
		width, height int
	}{
		{"buffer", &bytes.Buffer{}, nil, 80, 24},
		{"buffer with COLUMNS and LINES", &bytes.Buffer{}, map[string]string{"COLUMNS": "120", "LINES": "40"}, 120, 40},
		{"bad COLUMNS and LINES", &bytes.Buffer{}, map[string]string{"COLUMNS": "wide", "LINES": "-3"}, 80, 24},
		{"file", file, nil, 80, 24},
		{"dev null, a character device but no terminal", devNull, nil, 80, 24},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			scr := screenOf(tt.out, env(tt.env))
			assert.False(t, scr.tty)
			w, h := scr.size()
			assert.Equal(t, tt.width, w)
			assert.Equal(t, tt.height, h)
		})
	}
}
