// Package waitgroup waits for a sync.WaitGroup under a deadline: the one
// context-aware wait that shutdowns share. It owns no goroutine beyond the
// call.
package waitgroup

import "sync"

// Await waits for wg. If stop is closed first, it calls abort (which must
// make the goroutines wg counts end, for instance by cancelling them) and
// waits for wg all the same, so that nothing is left running when it
// returns. It reports whether wg finished before stop was closed.
func Await(wg *sync.WaitGroup, stop <-chan struct{}, abort func()) bool {
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return true
	case <-stop:
		if abort != nil {
			abort()
		}
		<-done
		return false
	}
}
