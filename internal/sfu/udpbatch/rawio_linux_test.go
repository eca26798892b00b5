package udpbatch

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"
)

func listenPair(t *testing.T, network, addr string) (a, b *Conn) {
	t.Helper()
	open := func() *Conn {
		c, err := net.ListenUDP(network, &net.UDPAddr{IP: net.ParseIP(addr)})
		if err != nil {
			t.Skipf("no %s on %s here: %v", network, addr, err)
		}
		bc := Wrap(c, NewBuffers())
		if bc.raw == nil {
			t.Fatal("no raw reads and writes on Linux")
		}
		t.Cleanup(func() { _ = bc.Close() })
		return bc
	}
	return open(), open()
}

// Reads and unbatched writes are raw system calls: the datagram, its
// length and its sender's address must be what the net package would give.
func TestRawReadAndWrite(t *testing.T) {
	for _, tc := range []struct{ network, addr string }{{"udp4", "127.0.0.1"}, {"udp6", "::1"}} {
		t.Run(tc.network, func(t *testing.T) {
			a, b := listenPair(t, tc.network, tc.addr)
			msg := bytes.Repeat([]byte{0xab}, 1200)
			if n, err := a.WriteToAddrPort(msg, addrOf(b.UDPConn)); err != nil || n != len(msg) {
				t.Fatalf("write: %d, %v", n, err)
			}
			buf := make([]byte, 1500)
			_ = b.SetReadDeadline(time.Now().Add(5 * time.Second))
			n, from, err := b.ReadFromAddrPort(buf)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(buf[:n], msg) {
				t.Fatalf("read %d bytes, not the %d written", n, len(msg))
			}
			if from != addrOf(a.UDPConn) {
				t.Fatalf("from %v, want %v", from, addrOf(a.UDPConn))
			}
			// an empty datagram is a datagram
			if _, err := a.WriteToAddrPort(nil, addrOf(b.UDPConn)); err != nil {
				t.Fatal(err)
			}
			if n, _, err := b.ReadFromAddrPort(buf); err != nil || n != 0 {
				t.Fatalf("empty datagram: %d, %v", n, err)
			}
		})
	}
}

// A read with nothing to read waits on the poller: until a datagram comes,
// until its deadline (a timeout error), or until the socket is closed
// (net.ErrClosed), as the net package's read does.
func TestRawReadWaits(t *testing.T) {
	a, b := listenPair(t, "udp4", "127.0.0.1")
	buf := make([]byte, 1500)

	go func() {
		time.Sleep(50 * time.Millisecond)
		_, _ = a.WriteToAddrPort([]byte("late"), addrOf(b.UDPConn))
	}()
	_ = b.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, _, err := b.ReadFromAddrPort(buf); err != nil || string(buf[:n]) != "late" {
		t.Fatalf("waiting read: %q, %v", buf[:n], err)
	}

	_ = b.SetReadDeadline(time.Now().Add(30 * time.Millisecond))
	_, _, err := b.ReadFromAddrPort(buf)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("past the deadline: %v, want a timeout", err)
	}

	_ = b.SetReadDeadline(time.Time{})
	done := make(chan error, 1)
	go func() {
		_, _, err := b.ReadFromAddrPort(buf)
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	_ = b.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("read on a closed socket: %v, want net.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a read went on after its socket was closed")
	}
}

// A write to an address of the other family is refused with an error, not
// sent somewhere else.
func TestRawWriteWrongFamily(t *testing.T) {
	a, _ := listenPair(t, "udp4", "127.0.0.1")
	if _, err := a.WriteToAddrPort([]byte("x"), netip.MustParseAddrPort("[2001:db8::1]:9")); err == nil {
		t.Fatal("an IPv6 destination on an IPv4 socket was accepted")
	}
}
