//go:build !linux

package loadtest

import "errors"

// threadCPU needs a per-thread CPU clock, which only the Linux build reads.
func threadCPU() (float64, error) {
	return 0, errors.New("floor: measured on Linux only")
}
