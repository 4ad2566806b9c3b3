//go:build !unix

package bench

// cpuTime cannot read the CPU time here; the cpu-ns/op metric is left out.
func cpuTime() (int64, bool) { return 0, false }
