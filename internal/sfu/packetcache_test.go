package sfu

import (
	"bytes"
	"errors"
	"testing"

	"github.com/pion/rtp"
)

func pkt(seq uint16) *packet {
	return &packet{header: rtp.Header{Version: 2, SequenceNumber: seq}, payload: []byte{byte(seq)}}
}

func seqs(ps []*packet) []uint16 {
	out := make([]uint16, len(ps))
	for i, p := range ps {
		out[i] = p.header.SequenceNumber
	}
	return out
}

func equalSeqs(a, b []uint16) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestPacketCacheSize(t *testing.T) {
	for _, tt := range []struct{ ask, want int }{{1, 1}, {3, 4}, {16, 16}, {2000, 2048}, {1 << 20, 1 << 15}} {
		if got := len(newPacketCache(tt.ask).slots); got != tt.want {
			t.Errorf("newPacketCache(%d) has %d slots, want %d", tt.ask, got, tt.want)
		}
	}
}

func TestPacketCacheGetAndEviction(t *testing.T) {
	c := newPacketCache(16)
	if c.get(0) != nil || c.since(0) != nil {
		t.Fatal("an empty cache returned a packet")
	}
	for s := uint16(0); s <= 40; s++ {
		c.put(pkt(s))
	}
	if p := c.get(40); p == nil || p.header.SequenceNumber != 40 {
		t.Errorf("get(40) = %v", p)
	}
	if p := c.get(25); p == nil || p.header.SequenceNumber != 25 {
		t.Errorf("get(25) = %v, want the oldest packet still held", p)
	}
	// 24 shares its slot with 40: it was overwritten and must not be
	// mistaken for it.
	if p := c.get(24); p != nil {
		t.Errorf("get(24) = seq %d, want nil (evicted)", p.header.SequenceNumber)
	}
	if p := c.get(41); p != nil {
		t.Errorf("get(41) = seq %d, want nil (not yet sent)", p.header.SequenceNumber)
	}
}

func TestPacketCacheWraparound(t *testing.T) {
	c := newPacketCache(32)
	for s := uint16(65530); s != 11; s++ { // 65530 … 65535, 0 … 10
		c.put(pkt(s))
	}
	if c.last != 10 {
		t.Errorf("newest is %d, want 10", c.last)
	}
	want := []uint16{65533, 65534, 65535, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	if got := seqs(c.since(65533)); !equalSeqs(got, want) {
		t.Errorf("since(65533) = %v, want %v", got, want)
	}
	if got := seqs(c.since(10)); !equalSeqs(got, []uint16{10}) {
		t.Errorf("since(10) = %v, want [10]", got)
	}
	for _, s := range []uint16{65535, 0, 10} {
		if p := c.get(s); p == nil || p.header.SequenceNumber != s {
			t.Errorf("get(%d) = %v", s, p)
		}
	}
	// A late packet from before the wrap does not make the cache think
	// time went backwards.
	c.put(pkt(65529))
	if c.last != 10 {
		t.Errorf("after a late packet the newest is %d, want 10", c.last)
	}
}

func TestPacketCacheSince(t *testing.T) {
	c := newPacketCache(16)
	for _, s := range []uint16{100, 101, 103, 104} { // 102 was lost
		c.put(pkt(s))
	}
	if got, want := seqs(c.since(100)), []uint16{100, 101, 103, 104}; !equalSeqs(got, want) {
		t.Errorf("since(100) = %v, want %v (skipping the lost packet)", got, want)
	}
	if got := c.since(105); got != nil {
		t.Errorf("since(105), after the newest, = %v, want nil", seqs(got))
	}
	if got := c.since(80); got != nil {
		t.Errorf("since(80), older than the cache holds, = %v, want nil", seqs(got))
	}
	if got := c.since(88); got != nil {
		t.Errorf("since(88), 17 packets for a cache of 16, = %v, want nil", seqs(got))
	}
	if got := seqs(c.since(89)); !equalSeqs(got, []uint16{100, 101, 103, 104}) {
		t.Errorf("since(89), exactly the cache's span, = %v", got)
	}
}

func TestSeqNewer(t *testing.T) {
	for _, tt := range []struct {
		a, b uint16
		want bool
	}{
		{1, 0, true}, {0, 1, false}, {5, 5, false},
		{0, 65535, true}, {65535, 0, false}, {10, 65530, true},
		{0x7fff, 0, true}, {0x8000, 0, false}, {0, 0x8001, true},
	} {
		if got := seqNewer(tt.a, tt.b); got != tt.want {
			t.Errorf("seqNewer(%d, %d) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}

func TestNewPacket(t *testing.T) {
	orig := &rtp.Packet{
		Header:  rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: 7, Timestamp: 9000, SSRC: 1234, Marker: true},
		Payload: []byte{0x10, 1, 2, 3, 4, 5},
	}
	if err := orig.Header.SetExtension(3, []byte{0xaa, 0xbb}); err != nil {
		t.Fatal(err)
	}
	buf, err := orig.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	p, err := newPacket(buf)
	if err != nil {
		t.Fatal(err)
	}
	for i := range buf {
		buf[i] = 0 // the packet owns a copy: the read buffer is reused
	}
	if !bytes.Equal(p.payload, orig.Payload) || p.header.SequenceNumber != 7 || !p.header.Marker {
		t.Errorf("packet %+v payload % x, want seq 7, marker, payload % x", p.header, p.payload, orig.Payload)
	}
	if len(p.exts) != 1 || p.exts[0].id != 3 || !bytes.Equal(p.exts[0].payload, []byte{0xaa, 0xbb}) {
		t.Errorf("extensions %+v, want id 3 = aa bb", p.exts)
	}

	// Padding is stripped, so that a viewer is not sent the padding as media.
	padded := &rtp.Packet{Header: rtp.Header{Version: 2, Padding: true, SequenceNumber: 8},
		Payload: []byte{1, 2, 3}, PaddingSize: 4}
	buf, err = padded.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	p, err = newPacket(buf)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(p.payload, []byte{1, 2, 3}) || p.header.Padding || p.header.PaddingSize != 0 {
		t.Errorf("padded packet: payload % x, padding %v/%d; want 01 02 03 without padding",
			p.payload, p.header.Padding, p.header.PaddingSize)
	}

	// A padding count of zero or one that runs into the header is refused.
	for _, last := range []byte{0, 200} {
		bad := append([]byte(nil), buf...)
		bad[len(bad)-1] = last
		if _, err := newPacket(bad); !errors.Is(err, errBadPadding) {
			t.Errorf("padding count %d: err %v, want errBadPadding", last, err)
		}
	}
	if _, err := newPacket([]byte{0x80, 96}); err == nil {
		t.Error("a 2-byte packet was accepted")
	}
}
