package loadtest

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// threadCPU is the calling thread's user and system CPU time, in seconds
// (getrusage RUSAGE_THREAD: the caller locks itself to its thread).
func threadCPU() (float64, error) {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_THREAD, &ru); err != nil {
		return 0, fmt.Errorf("floor: getrusage: %w", err)
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9, nil
}
