package testpeer

import (
	"fmt"
	"runtime"
	"testing"
	"time"
)

// goroutineSettle is how long goroutines are given to end: pion and
// net/http end some of theirs a little after Close returns.
const goroutineSettle = 10 * time.Second

// CheckGoroutines records the number of goroutines now and, when the test
// ends (after the cleanups registered later, which run first), waits for the
// number to come back to it, failing with every goroutine's stack if it does
// not. There is no slack: every goroutine a test starts must end. Tests that
// use it must not run in parallel with others (the count is process-wide).
func CheckGoroutines(t testing.TB) {
	t.Helper()
	base := runtime.NumGoroutine()
	t.Cleanup(func() {
		if err := WaitGoroutines(base); err != nil {
			t.Error(err)
		}
	})
}

// WaitGoroutines waits for the number of goroutines to come down to base,
// and returns an error with every goroutine's stack if it does not.
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
