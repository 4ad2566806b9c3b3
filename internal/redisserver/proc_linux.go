package redisserver

import (
	"os"
	"syscall"
)

var (
	sigStop os.Signal = syscall.SIGSTOP
	sigCont os.Signal = syscall.SIGCONT
	sigTerm os.Signal = syscall.SIGTERM
)

// sysProcAttr makes the kernel SIGKILL redis-server when the thread that
// started it exits, so a test binary that dies (timeout panic, os.Exit)
// leaves no server behind. The Go runtime does not end its threads during a
// test run, so in practice this fires when the test binary exits.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
