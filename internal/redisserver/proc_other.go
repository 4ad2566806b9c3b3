//go:build !unix

package redisserver

import (
	"os"
	"syscall"
)

// No SIGSTOP/SIGCONT here: Stop and Cont fail the test. SIGTERM is replaced
// by os.Kill.
var (
	sigStop os.Signal
	sigCont os.Signal
	sigTerm os.Signal = os.Kill
)

func sysProcAttr() *syscall.SysProcAttr { return nil }
