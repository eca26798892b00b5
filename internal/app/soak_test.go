package app_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/onair-live/onair/internal/config"
	"github.com/onair-live/onair/internal/testpeer"
)

// openFDs is the number of file descriptors this process holds.
func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatalf("counting descriptors: %v", err)
	}
	return len(ents)
}

// parallel runs f(i) for i in [0, n) on workers goroutines.
func parallel(n, workers int, f func(i int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
				f(i)
			}
		}()
	}
	wg.Wait()
}

// TestSoakIdleSocketsAndSlowBodies: 1,000 WebSockets that upgrade and then
// say nothing, and 1,000 requests that announce a body and never send it,
// all at once from one address (loopback: exempt from the per-address cap).
// The server holds them, then lets every one go by its own deadlines
// (-ws-bind-timeout, -http-read-timeout): its connections come back to
// zero, and the process's goroutines and file descriptors to what they
// were before.
func TestSoakIdleSocketsAndSlowBodies(t *testing.T) {
	const n = 1000
	srv := testpeer.StartServer(t, func(c *config.Config) {
		c.HTTPReadTimeout = 10 * time.Second
		c.WSBindTimeout = 10 * time.Second
	})
	baseG, baseFD := runtime.NumGoroutine(), openFDs(t)
	start := time.Now()

	var peak atomic.Int64
	sampled := make(chan struct{})
	stopSampling := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			if c := int64(srv.App.Connections()); c > peak.Load() {
				peak.Store(c)
			}
			select {
			case <-stopSampling:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()

	sockets := make([]*websocket.Conn, n)
	bodies := make([]net.Conn, n)
	var failed atomic.Int64
	var firstErr sync.Once
	fail := func(err error) {
		failed.Add(1)
		firstErr.Do(func() { t.Errorf("opening: %v", err) })
	}
	parallel(2*n, 32, func(i int) {
		if i%2 == 0 {
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			c, _, err := websocket.Dial(ctx, srv.WSURL, nil)
			if err != nil {
				fail(err)
				return
			}
			sockets[i/2] = c
			return
		}
		c, err := net.DialTimeout("tcp", hostOf(srv), timeout)
		if err != nil {
			fail(err)
			return
		}
		bodies[i/2] = c
		if _, err := fmt.Fprintf(c, "POST /signal/room/view HTTP/1.1\r\nHost: onair\r\nemail: slow%d@example.com\r\n"+
			"Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{\"ro", i); err != nil {
			fail(err)
		}
	})
	opened := time.Since(start)
	if failed.Load() > 0 {
		t.Fatalf("%d of %d connections could not be opened", failed.Load(), 2*n)
	}

	// The server lets every one go by itself.
	// A socket's connection is released when the server closes it, its
	// session a moment later, once its read loop has seen the close and
	// cleaned up: wait for both.
	if !testpeer.Eventually(2*timeout, func() bool { return srv.App.Connections() == 0 && srv.App.WebSockets() == 0 }) {
		t.Fatalf("%d connections still held, %d WebSockets, %s after opening", srv.App.Connections(), srv.App.WebSockets(), time.Since(start))
	}
	released := time.Since(start)
	close(stopSampling)
	<-sampled
	// Each slow body was answered or closed by the server, not by us.
	for i, c := range bodies {
		_ = c.SetReadDeadline(time.Now().Add(timeout))
		_, err := io.Copy(io.Discard, c)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("slow body %d: still open", i)
		}
		c.Close()
	}
	for _, c := range sockets {
		c.CloseNow()
	}
	if err := testpeer.WaitGoroutines(baseG); err != nil {
		t.Error(err)
	}
	var fds int
	if !testpeer.Eventually(timeout, func() bool { fds = openFDs(t); return fds <= baseFD }) {
		t.Errorf("%d file descriptors open, %d before", fds, baseFD)
	}
	t.Logf("%d idle WebSockets and %d slow bodies opened in %s (peak %d connections held), all released by the server %s after the start; goroutines %d→%d, descriptors %d→%d",
		n, n, opened.Round(time.Millisecond), peak.Load(), released.Round(time.Millisecond), baseG, runtime.NumGoroutine(), baseFD, fds)
}
