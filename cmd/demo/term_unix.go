//go:build unix

package main

import (
	"os"

	"golang.org/x/sys/unix"
)

// winsize returns the size of the terminal f is, with ok false if f is nil
// or not a terminal. A terminal that does not know its size reports 0x0.
func winsize(f *os.File) (width, height int, ok bool) {
	if f == nil {
		return 0, 0, false
	}
	conn, err := f.SyscallConn()
	if err != nil {
		return 0, 0, false
	}
	var ws *unix.Winsize
	var wsErr error
	if err := conn.Control(func(fd uintptr) {
		ws, wsErr = unix.IoctlGetWinsize(int(fd), unix.TIOCGWINSZ)
	}); err != nil || wsErr != nil {
		return 0, 0, false
	}
	return int(ws.Col), int(ws.Row), true
}
