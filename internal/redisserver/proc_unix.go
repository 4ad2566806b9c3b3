//go:build unix && !linux

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

// sysProcAttr returns nil: only Linux has Pdeathsig, so elsewhere a test
// binary that dies without running its cleanups can leave servers behind.
func sysProcAttr() *syscall.SysProcAttr { return nil }
