package testpeer

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/onair-live/onair/internal/leakcheck"
)

// goroutineSettle is how long goroutines are given to end: pion and
// net/http end some of theirs a little after Close returns.
const goroutineSettle = 10 * time.Second

// CheckGoroutines fails the test if a goroutine it started (the server
// StartServer runs for it included) is left when it ends: see leakcheck.
// Only the test's own goroutines are counted, so tests may run in parallel.
func CheckGoroutines(t testing.TB) {
	t.Helper()
	leakcheck.Check(t)
}

// WaitGoroutines waits for the number of goroutines in the whole process to
// come down to base, and returns an error with every goroutine's stack if
// it does not: for tests that measure the process (they cannot run in
// parallel with others).
func WaitGoroutines(base int) error {
	deadline := time.Now().Add(goroutineSettle)
	for {
		n := runtime.NumGoroutine()
		if n <= base {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("goroutine leak: %d goroutines, want at most %d; all stacks:\n%s",
				n, base, allStacks())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func allStacks() string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return string(buf[:n])
		}
		buf = make([]byte, 2*len(buf))
	}
}
