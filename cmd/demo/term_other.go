//go:build !unix

package main

import "os"

// winsize reports whether f is a terminal (a character device); its size is
// unknown here, so $COLUMNS, $LINES or 80x24 apply.
func winsize(f *os.File) (width, height int, ok bool) {
	if f == nil {
		return 0, 0, false
	}
	fi, err := f.Stat()
	return 0, 0, err == nil && fi.Mode()&os.ModeCharDevice != 0
}
