package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tripline/tripline/internal/testutil"
)

func TestShown(t *testing.T) {
	tests := []struct{ in, want string }{
		{"payments", "payments"},
		{"café / ünïcode: ok", "café / ünïcode: ok"},
		{"", ""},
		{"a\nb", `"a\nb"`},
		{"red\x1b[31m", `"red\x1b[31m"`},
		{"tab\there", `"tab\there"`},
		{"bad\xffutf8", `"bad\xffutf8"`},
		{"bidi\u202eevil", `"bidi\u202eevil"`},
		{" ", `" "`},
		{"   ", `"   "`},
		{" lead", `" lead"`},
		{"trail ", `"trail "`},
		{"two  spaces", `"two  spaces"`},
		{"one space", "one space"},
		{"\u00a0", `"\u00a0"`},
		{`"looks quoted"`, `"\"looks quoted\""`},
		{`mid"quote`, `mid"quote`},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, shown(tt.in), "%q", tt.in)
	}
}

// TestHostileNamesStayOnOneLine is the reviewer's report: a circuit name
// holding "\n" or an escape sequence added fake rows to list and sent
// escape codes to the terminal from list, get, watch and the open/reset
// confirmation line. JSON output keeps the name as it is.
func TestHostileNamesStayOnOneLine(t *testing.T) {
	const evil = "pay\nfake  open  0  9  -  -\x1b[31m"
	const quoted = `"pay\nfake  open  0  9  -  -\x1b[31m"`
	f := newFleet(t)

	ctx, cancel := context.WithCancel(t.Context())
	var watchOut, watchErr testutil.SyncBuffer
	code := make(chan int, 1)
	go func() {
		code <- testApp(&watchOut, &watchErr, nil).run(ctx, []string{"watch", "--redis", f.url})
	}()
	testutil.WaitFor(t, "watch to subscribe", func() bool { return strings.Contains(watchErr.String(), "watching") })

	out := f.cbctl(t, "open", evil, "--reason", "r\x1b[2J", "--actor", "ops\x07", "--create")
	require.Equal(t, exitOK, out.code, out.stderr)
	assert.Equal(t, quoted+`: forced open until reset by "ops\a" ("r\x1b[2J"); closed -> open, generation 1`+"\n", out.stdout)

	out = f.cbctl(t, "list")
	require.Equal(t, exitOK, out.code, out.stderr)
	assert.Len(t, lines(out.stdout), 2, "header and one row:\n%s", out.stdout)
	assert.Contains(t, out.stdout, quoted)
	assert.NotContains(t, out.stdout, "\x1b")
	assert.NotContains(t, out.stdout, "\x07")

	out = f.cbctl(t, "get", evil)
	require.Equal(t, exitOK, out.code, out.stderr)
	assert.Contains(t, out.stdout, "name:         "+quoted+"\n")
	assert.Contains(t, out.stdout, `"r\x1b[2J"`)
	assert.NotContains(t, out.stdout, "\x1b")
	assert.NotContains(t, out.stdout, "\x07")

	out = f.cbctl(t, "list", "-o", "json")
	require.Equal(t, exitOK, out.code, out.stderr)
	var list []circuitJSON
	require.NoError(t, json.Unmarshal([]byte(out.stdout), &list))
	require.Len(t, list, 1)
	assert.Equal(t, evil, list[0].Name, "JSON keeps the name as it is")

	// Error messages on stderr quote the name too, as does get of a
	// circuit with nothing stored.
	out = f.cbctl(t, "reset", "ghost\x1b[31m")
	assert.Equal(t, exitFailure, out.code)
	assert.Contains(t, out.stderr, `circuit "ghost\x1b[31m": nothing stored`)
	assert.NotContains(t, out.stderr, "\x1b")
	out = f.cbctl(t, "get", "ghost\x1b[31m")
	assert.Equal(t, exitOK, out.code, out.stderr)
	assert.Contains(t, out.stdout, `name:      "ghost\x1b[31m"`+"\n")
	assert.NotContains(t, out.stdout+out.stderr, "\x1b")

	testutil.WaitFor(t, "the watch line", func() bool { return strings.Contains(watchOut.String(), "\n") })
	cancel()
	require.Equal(t, exitOK, <-code, watchErr.String())
	assert.Len(t, lines(watchOut.String()), 1, watchOut.String())
	assert.Contains(t, watchOut.String(), "  "+quoted+"  closed -> open")
	assert.NotContains(t, watchOut.String(), "\x1b")
}
