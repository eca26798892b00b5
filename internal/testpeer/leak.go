package testpeer

import (
	"runtime"
	"testing"
	"time"
)

// goroutineSettle is how long CheckGoroutines waits for goroutines to end:
// pion and net/http end some of theirs a little after Close returns.
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
		deadline := time.Now().Add(goroutineSettle)
		for {
			n := runtime.NumGoroutine()
			if n <= base {
				return
			}
			if time.Now().After(deadline) {
				t.Errorf("goroutine leak: %d goroutines, %d when the test began; all stacks:\n%s",
					n, base, allStacks())
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
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
