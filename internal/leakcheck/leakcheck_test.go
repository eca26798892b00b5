package leakcheck

import (
	"strings"
	"testing"
	"time"
)

// A goroutine the test started, and one it started in turn, are counted
// until they end; goroutines started elsewhere are not.
func TestCountsOnlyTheTestsGoroutines(t *testing.T) {
	stop := make(chan struct{})
	elsewhere := make(chan struct{})
	go func() { <-elsewhere }() // started before the label: not the test's
	defer close(elsewhere)

	Check(t)
	inner := make(chan struct{})
	go func() {
		go func() { <-inner }()
		<-stop
	}()
	time.Sleep(50 * time.Millisecond)
	if n, stacks := started(t.Name()); n != 2 || !strings.Contains(stacks, "leakcheck") {
		t.Fatalf("started = %d (want 2: the two it started)\n%s", n, stacks)
	}
	close(stop)
	close(inner)
	if err := Wait(t.Name() + "-none"); err != nil {
		t.Error(err)
	}
}
