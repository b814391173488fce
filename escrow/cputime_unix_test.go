//go:build unix

package escrow

import "syscall"

// cpuNanos returns the CPU time (user + system) used by this process so far.
// Benchmarks report it per op next to wall time: on a shared, loaded machine
// the wall time says more about the neighbours than about the code.
func cpuNanos() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
