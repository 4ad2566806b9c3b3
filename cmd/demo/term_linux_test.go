package main

import (
	"fmt"
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// openPTY returns the terminal side of a new pseudo-terminal of the given
// size.
func openPTY(t *testing.T, width, height int) *os.File {
	t.Helper()
	ptmx, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	require.NoError(t, err)
	t.Cleanup(func() { _ = ptmx.Close() })
	require.NoError(t, unix.IoctlSetPointerInt(int(ptmx.Fd()), unix.TIOCSPTLCK, 0), "unlock the pty")
	n, err := unix.IoctlGetInt(int(ptmx.Fd()), unix.TIOCGPTN)
	require.NoError(t, err)
	tty, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	require.NoError(t, err)
	t.Cleanup(func() { _ = tty.Close() })
	require.NoError(t, unix.IoctlSetWinsize(int(tty.Fd()), unix.TIOCSWINSZ,
		&unix.Winsize{Col: uint16(width), Row: uint16(height)}))
	return tty
}

// TestScreenOfATerminal: on a terminal the table follows the terminal's own
// size, read again at each frame, over $COLUMNS and $LINES.
func TestScreenOfATerminal(t *testing.T) {
	tty := openPTY(t, 80, 24)
	env := map[string]string{"COLUMNS": "200", "LINES": "60"}
	scr := screenOf(tty, func(k string) string { return env[k] })
	assert.True(t, scr.tty)
	w, h := scr.size()
	assert.Equal(t, 80, w)
	assert.Equal(t, 24, h)

	require.NoError(t, unix.IoctlSetWinsize(int(tty.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Col: 132, Row: 43}))
	w, h = scr.size()
	assert.Equal(t, 132, w, "resized")
	assert.Equal(t, 43, h, "resized")

	// A terminal that does not know its size: the environment tells.
	require.NoError(t, unix.IoctlSetWinsize(int(tty.Fd()), unix.TIOCSWINSZ, &unix.Winsize{}))
	w, h = scr.size()
	assert.Equal(t, 200, w)
	assert.Equal(t, 60, h)
}
