package sfu

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"strconv"
	"testing"
	"time"
)

// The ICE-TCP port holds at most TCPMaxConns connections: one more is
// closed at once, the others stay open, and a closed one makes room.
func TestICETCPConnectionsCapped(t *testing.T) {
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	e, err := New(Config{TCPMuxPort: port, TCPMaxConns: 2, Loopback: true,
		AllowedIPs: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}})
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	defer func() {
		if !closed {
			e.Close()
		}
	}()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	dial := func() net.Conn {
		c, err := net.Dial("tcp4", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	// open reports whether c is still open: a read waits (there is
	// nothing to read) rather than ending.
	open := func(c net.Conn, wait time.Duration) bool {
		_ = c.SetReadDeadline(time.Now().Add(wait))
		_, err := c.Read(make([]byte, 1))
		return errors.Is(err, os.ErrDeadlineExceeded)
	}
	a, b := dial(), dial()
	over := dial()
	if open(over, 5*time.Second) {
		t.Error("a third connection over a cap of 2 stays open")
	}
	if !open(a, 500*time.Millisecond) || !open(b, 500*time.Millisecond) {
		t.Error("the two connections within the cap were closed")
	}
	a.Close()
	// The server sees the close after a moment: retry until there is room.
	deadline := time.Now().Add(10 * time.Second)
	for {
		c := dial()
		if open(c, 500*time.Millisecond) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no room for a new connection after one was closed")
		}
	}

	// Close does not wait for the open connections' first STUN request:
	// it ends them.
	start := time.Now()
	closed = true
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > tcpFirstSTUN/2 {
		t.Errorf("Close took %v with idle connections open", took)
	}
	if open(b, 5*time.Second) {
		t.Error("a connection is still open after Close")
	}
}
