package waitgroup

import (
	"sync"
	"testing"
)

func TestAwaitFinished(t *testing.T) {
	var wg sync.WaitGroup
	wg.Go(func() {})
	if !Await(&wg, make(chan struct{}), func() { t.Error("abort called") }) {
		t.Error("Await = false, want true: the group finished")
	}
}

func TestAwaitStopped(t *testing.T) {
	var wg sync.WaitGroup
	release := make(chan struct{})
	ended := false
	wg.Go(func() {
		<-release
		ended = true
	})
	stop := make(chan struct{})
	close(stop)
	if Await(&wg, stop, func() { close(release) }) {
		t.Error("Await = true, want false: stop came first")
	}
	if !ended {
		t.Error("Await returned before the group ended")
	}
}
