package hooks_test

import (
	"testing"

	"github.com/onair-live/onair/internal/leakcheck"
)

// checkGoroutines fails the test if a goroutine it started is left once
// its cleanups have run (see leakcheck).
func checkGoroutines(t *testing.T) {
	t.Helper()
	leakcheck.Check(t)
}
