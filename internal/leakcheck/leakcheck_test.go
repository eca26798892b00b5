package leakcheck

import (
	"bytes"
	"runtime/pprof"
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
	name := label(t)
	inner := make(chan struct{})
	go func() {
		go func() { <-inner }()
		<-stop
	}()
	time.Sleep(50 * time.Millisecond)
	if n, stacks := started(name); n != 2 || !strings.Contains(stacks, "leakcheck") {
		t.Fatalf("started = %d (want 2: the two it started)\n%s", n, stacks)
	}
	close(stop)
	close(inner)
	if err := Wait(name); err != nil {
		t.Error(err)
	}
}

// label is the label Check gave the calling goroutine, read back from the
// goroutine profile.
func label(t *testing.T) string {
	t.Helper()
	var buf bytes.Buffer
	_ = pprof.Lookup("goroutine").WriteTo(&buf, 1)
	i := strings.Index(buf.String(), `"leakcheck":"`+t.Name()+"@")
	if i < 0 {
		t.Fatal("no goroutine labelled for this test")
	}
	rest := buf.String()[i+len(`"leakcheck":"`):]
	return rest[:strings.IndexByte(rest, '"')]
}
