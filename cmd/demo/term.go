package main

import (
	"io"
	"os"
	"strconv"
)

// screen is what the demo knows of where its output goes.
type screen struct {
	tty  bool                       // a terminal: the live table can redraw itself
	size func() (width, height int) // its size now; nil: defaultWidth x defaultHeight
}

// The size assumed when neither the terminal nor $COLUMNS and $LINES tell.
const (
	defaultWidth  = 80
	defaultHeight = 24
)

// screenOf describes out. Its size is read again at each frame, so the
// table follows a resized terminal: the terminal's own size, else $COLUMNS
// and $LINES, else 80x24.
func screenOf(out io.Writer, getenv func(string) string) screen {
	f, _ := out.(*os.File)
	_, _, tty := winsize(f)
	return screen{tty: tty, size: func() (int, int) {
		w, h, _ := winsize(f)
		if w <= 0 {
			w = positiveInt(getenv("COLUMNS"), defaultWidth)
		}
		if h <= 0 {
			h = positiveInt(getenv("LINES"), defaultHeight)
		}
		return w, h
	}}
}

// positiveInt parses s, or returns def if s is not a positive number.
func positiveInt(s string, def int) int {
	if n, err := strconv.Atoi(s); err == nil && n > 0 {
		return n
	}
	return def
}
