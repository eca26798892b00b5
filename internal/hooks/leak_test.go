package hooks_test

import (
	"runtime"
	"testing"
	"time"
)

// checkGoroutines fails the test if, once its cleanups have run, more
// goroutines are left than when it started (net/http ends some of its own a
// little after Close, so the count is given a few seconds to settle).
func checkGoroutines(t *testing.T) {
	base := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(10 * time.Second)
		for runtime.NumGoroutine() > base {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				t.Errorf("goroutine leak: %d goroutines, want at most %d:\n%s",
					runtime.NumGoroutine(), base, buf[:runtime.Stack(buf, true)])
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}
