package loadtest

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// TestGROSplit hands a shared socket one coalesced read (three 1,200-byte
// datagrams and a 500-byte one, with the UDP_GRO control message) and then
// a single datagram without one: pion's mux reads them as five datagrams,
// from their sender, as the kernel would have delivered them without GRO.
func TestGROSplit(t *testing.T) {
	sizes := []int{1200, 1200, 1200, 500}
	var coalesced []byte
	for i, n := range sizes {
		coalesced = append(coalesced, bytes.Repeat([]byte{byte('a' + i)}, n)...)
	}
	oob := make([]byte, unix.CmsgSpace(4))
	h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
	h.Level, h.Type = unix.SOL_UDP, unix.UDP_GRO
	h.SetLen(unix.CmsgLen(4))
	binary.NativeEndian.PutUint32(oob[unix.CmsgLen(0):], 1200)

	from := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5000}
	other := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5001}
	s := &sharedSocket{gro: true, msgs: newBatch(true), have: 2}
	s.msgs[0].N = copy(s.msgs[0].Buffers[0], coalesced)
	s.msgs[0].NN = copy(s.msgs[0].OOB, oob)
	s.msgs[0].Addr = from
	s.msgs[1].N = copy(s.msgs[1].Buffers[0], "single")
	s.msgs[1].Addr = other
	s.msgs[1].OOB = s.msgs[1].OOB[:0] // no control message

	b := make([]byte, 1500)
	for i, n := range sizes {
		got, addr, err := s.ReadFromAddrPort(b)
		if err != nil {
			t.Fatal(err)
		}
		if got != n || !bytes.Equal(b[:got], bytes.Repeat([]byte{byte('a' + i)}, n)) {
			t.Errorf("datagram %d: %d bytes starting %q, want %d of %q", i, got, b[:min(got, 4)], n, string(rune('a'+i)))
		}
		if addr != netip.MustParseAddrPort("127.0.0.1:5000") {
			t.Errorf("datagram %d from %v", i, addr)
		}
	}
	got, addr, err := s.ReadFromAddrPort(b)
	if err != nil || string(b[:got]) != "single" || addr != netip.MustParseAddrPort("127.0.0.1:5001") {
		t.Errorf("single datagram: %q from %v (%v)", b[:got], addr, err)
	}
	if n := s.coalesced.Load(); n != 1 {
		t.Errorf("coalesced reads counted: %d, want 1", n)
	}
}
