//go:build unix

package replay

import "syscall"

// processCPU returns the CPU time the process has used, in nanoseconds. On
// a machine shared with other work, CPU time is steadier than wall time,
// which also counts the time the benchmark waits for a core.
func processCPU() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return -1
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
