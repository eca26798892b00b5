package udpbatch

import (
	"net"
	"net/netip"
	"testing"
)

// upper is a Filler that writes its datagram and turns it upper case in
// place, as an encrypter does: the datagram is written once, where it is sent.
type upper struct{ p []byte }

func (u *upper) Fill(dst []byte) (int, error) {
	n := copy(dst, u.p)
	for i := range dst[:n] {
		if c := dst[i]; c >= 'a' && c <= 'z' {
			dst[i] = c - 'a' + 'A'
		}
	}
	return n, nil
}

type failing struct{}

func (failing) Fill([]byte) (int, error) { return 0, errFill }

// Datagrams written in place arrive intact and in order, within a batch (one
// GSO run, more runs than a batch holds) and outside one.
func TestWriteFilled(t *testing.T) {
	rx, rx2 := listen(t), listen(t)
	c := sender(t)
	var want, want2 [][]byte
	mk := func(i, n int) ([]byte, []byte) {
		p := make([]byte, n)
		for j := range p {
			p[j] = 'a' + byte((i+j)%26)
		}
		u := make([]byte, n)
		(&upper{p}).Fill(u)
		return p, u
	}
	c.Begin()
	for i := 0; i < 40; i++ { // alternating addresses: more runs than maxRuns
		p, u := mk(i, 1000)
		to, w := addrOf(rx), &want
		if i%2 == 1 {
			to, w = addrOf(rx2), &want2
		}
		if n, err := c.WriteFilled(to, len(p)+16, &upper{p}); err != nil || n != len(p) {
			t.Fatalf("WriteFilled = %d, %v", n, err)
		}
		*w = append(*w, u)
	}
	c.Flush()
	p, u := mk(99, 300) // outside a batch: sent at once
	if _, err := c.WriteFilled(addrOf(rx), len(p), &upper{p}); err != nil {
		t.Fatal(err)
	}
	want = append(want, u)
	receive(t, rx, want)
	receive(t, rx2, want2)
	c.Begin()
	if _, err := c.WriteFilled(addrOf(rx), 10, failing{}); err == nil {
		t.Fatal("a datagram whose filler failed was sent")
	}
	c.Flush()
	if s := c.Stats(); s.Datagrams != 41 {
		t.Fatalf("sent %d datagrams, want 41", s.Datagrams)
	}
}

// Lookup finds a Net's socket by its local address, and forgets it closed.
func TestNetLookup(t *testing.T) {
	n, err := NewNet(NewBuffers())
	if err != nil {
		t.Fatal(err)
	}
	uc, err := n.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	la := uc.LocalAddr().(*net.UDPAddr).AddrPort()
	if got := n.Lookup(la); got == nil || got != uc.(*Conn) {
		t.Fatalf("Lookup(%v) = %v", la, got)
	}
	other := netip.AddrPortFrom(netip.MustParseAddr("10.0.0.1"), la.Port())
	if n.Lookup(other) != uc.(*Conn) {
		t.Fatal("a socket is not found by its port alone (a rewritten host address)")
	}
	_ = uc.Close()
	if n.Lookup(la) != nil {
		t.Fatal("a closed socket is still found")
	}
}
