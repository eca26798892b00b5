package loadtest

import (
	"encoding/binary"
	"net/netip"
	"testing"
)

// TestHeaderOnlyCounting feeds a shared socket's filter the packets of a
// header-only viewer with one missing: they are counted (not passed on to
// pion) and the gap shows as loss; RTCP and other streams' packets pass.
func TestHeaderOnlyCounting(t *testing.T) {
	v := &viewer{}
	v.videoSSRC.Store(0x1111)
	v.audioSSRC.Store(0x2222)
	from := netip.MustParseAddrPort("127.0.0.1:5000")
	s := &sharedSocket{headerOnly: map[netip.AddrPort]*viewer{from: v}}
	pkt := func(ssrc uint32, seq uint16) []byte {
		b := make([]byte, 12+100+srtpTagLen)
		b[0], b[1] = 0x80, 102
		binary.BigEndian.PutUint16(b[2:], seq)
		binary.BigEndian.PutUint32(b[8:], ssrc)
		return b
	}
	for seq := uint16(65530); seq != 10; seq++ { // across the wrap
		if seq == 3 {
			continue // lost
		}
		if !s.consume(pkt(0x1111, seq), from) {
			t.Fatalf("video packet %d not consumed", seq)
		}
	}
	if !s.consume(pkt(0x2222, 7), from) {
		t.Error("audio packet not consumed")
	}
	if s.consume(pkt(0x3333, 7), from) {
		t.Error("a packet of an unknown stream was consumed")
	}
	if s.consume(pkt(0x1111, 11), netip.MustParseAddrPort("127.0.0.1:5001")) {
		t.Error("a packet from another address was consumed")
	}
	rtcp := pkt(0x1111, 0)
	rtcp[1] = 200 // sender report
	if s.consume(rtcp, from) {
		t.Error("an RTCP packet was consumed")
	}
	rx, lost := v.video.lossCounts()
	if rx != 15 || lost != 1 {
		t.Errorf("video received %d, lost %d; want 15 and 1", rx, lost)
	}
	if got := v.video.bytes.Load(); got != 15*112 {
		t.Errorf("video bytes %d, want %d (without the SRTP tag)", got, 15*112)
	}
}
