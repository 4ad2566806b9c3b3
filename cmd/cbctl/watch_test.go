package main

import (
	"context"
	"encoding/json"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tripline/tripline/internal/testutil"
)

// TestWatchSaysWhenInterrupted is issue 16's report: `cbctl watch` said
// nothing when Redis went away and came back, though transitions published
// meanwhile were lost. It now says on stderr that the stream was
// interrupted and may miss transitions, then that it resumed; with -o json
// both are also objects on stdout, in order with the transitions.
func TestWatchSaysWhenInterrupted(t *testing.T) {
	for _, format := range []string{"table", "json"} {
		t.Run(format, func(t *testing.T) {
			f := newFleet(t)
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			var stdout, stderr testutil.SyncBuffer
			code := make(chan int, 1)
			go func() {
				code <- testApp(&stdout, &stderr, nil).run(ctx, []string{"watch", "--redis", f.url, "-o", format})
			}()
			testutil.WaitFor(t, "watch to subscribe", func() bool { return strings.Contains(stderr.String(), "watching") })
			open := func(name string) {
				t.Helper()
				out := f.cbctl(t, "open", name, "--reason", "r", "--create")
				require.Equal(t, exitOK, out.code, out.stderr)
			}
			open("before")
			testutil.WaitFor(t, "the first transition", func() bool { return len(lines(stdout.String())) == 1 })

			f.mr.Close()
			testutil.WaitFor(t, "the interruption", func() bool { return strings.Contains(stderr.String(), "watch interrupted") })
			require.NoError(t, f.mr.Restart())
			testutil.WaitFor(t, "the resumption", func() bool { return strings.Contains(stderr.String(), "watch resumed") })
			open("after")
			testutil.WaitFor(t, "the transition after", func() bool { return strings.Contains(stdout.String(), "after") })
			cancel()
			require.Equal(t, exitOK, <-code, stderr.String())

			errLines := lines(stderr.String())
			require.Len(t, errLines, 3, stderr.String())
			assert.Regexp(t, `^\S+Z  watch interrupted: `+regexp.QuoteMeta(f.url)+`: the server closed the connection \(.+\); transitions published until it resumes may be missed$`, errLines[1])
			assert.NotContains(t, errLines[1], "rediss://", "no TLS hint for a connection that worked")
			assert.Regexp(t, `^\S+Z  watch resumed after \S+; transitions in that time may have been missed: cbctl list shows the state now$`, errLines[2])

			out := lines(stdout.String())
			if format == "table" {
				require.Len(t, out, 2, stdout.String())
				assert.Contains(t, out[0], "  before  closed -> open")
				assert.Contains(t, out[1], "  after  closed -> open")
				return
			}
			require.Len(t, out, 4, stdout.String())
			var events []map[string]any
			for _, l := range out {
				var ev map[string]any
				require.NoError(t, json.Unmarshal([]byte(l), &ev), l)
				events = append(events, ev)
			}
			assert.Equal(t, "transition", events[0]["event"])
			assert.Equal(t, "before", events[0]["name"])
			assert.Equal(t, "interrupted", events[1]["event"])
			assert.Contains(t, events[1]["error"], "the server closed the connection")
			assert.NotContains(t, events[1], "name")
			assert.Equal(t, "resumed", events[2]["event"])
			assert.NotContains(t, events[2], "error")
			assert.Equal(t, "transition", events[3]["event"])
			assert.Equal(t, "after", events[3]["name"])
		})
	}
}
