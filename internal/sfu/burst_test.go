package sfu

import (
	"testing"
	"time"

	"github.com/pion/rtp"
)

// A video packet completes a burst at the end of its frame, when it comes
// late, when it starts a frame whose end was lost, or when the burst has
// waited long enough.
func TestBurstEnds(t *testing.T) {
	t0 := time.Now()
	pkt := func(seq uint16, ts uint32, marker bool) *packet {
		return &packet{header: rtp.Header{SequenceNumber: seq, Timestamp: ts, Marker: marker}, arrival: t0}
	}
	at := func(p *packet, d time.Duration) *packet { p.arrival = t0.Add(d); return p }
	var b burstState
	for i, c := range []struct {
		p    *packet
		want bool
	}{
		{pkt(10, 100, false), false},
		{pkt(11, 100, false), false},
		{pkt(12, 100, true), true},   // end of frame
		{pkt(13, 200, false), false}, // next frame
		{pkt(12, 100, true), true},   // a duplicate: late
		{pkt(15, 200, false), false}, // 14 is missing
		{pkt(14, 200, false), true},  // reordered: late
		{pkt(17, 300, false), true},  // frame 200 never ended: 16 lost
		{pkt(18, 300, true), true},
		{pkt(0xffff, 300, false), true}, // far in the past: late
		{pkt(19, 400, true), true},      // a frame of one packet
		{pkt(20, 500, false), false},
		{pkt(21, 500, false), false},
		{at(pkt(22, 500, false), maxBurstHold-1), false},
		{at(pkt(23, 500, false), maxBurstHold), true}, // waited long enough
		{at(pkt(24, 500, false), maxBurstHold+1), false},
		{at(pkt(25, 500, false), 2*maxBurstHold), false},
		{at(pkt(26, 500, false), 2*maxBurstHold+1), true},
	} {
		if got := b.ends(c.p); got != c.want {
			t.Errorf("packet %d (seq %d ts %d marker %v): ends %v, want %v",
				i, c.p.header.SequenceNumber, c.p.header.Timestamp, c.p.header.Marker, got, c.want)
		}
	}
}

// A viewer's writer sends a frame when it is complete, not packet by
// packet; with SendPerPacket, at once.
func TestWriterWaitsForTheEndOfAFrame(t *testing.T) {
	up, subs, stop := benchTrack(t, 1)
	defer stop()
	w := &recordingWriter{}
	setWriter(subs[0].downs[0], w)
	raw := func(seq uint16, marker bool) *packet {
		b := rawPacket(seq)
		b[1] &^= 0x80
		if marker {
			b[1] |= 0x80
		}
		p, err := newPacket(b)
		if err != nil {
			t.Fatal(err)
		}
		p.header.Timestamp = 9000 // one frame
		return p
	}
	for seq := uint16(1); seq <= 3; seq++ {
		up.dispatch(raw(seq, false))
	}
	time.Sleep(50 * time.Millisecond)
	if n := w.n.Load(); n != 0 {
		t.Fatalf("%d packets of an unfinished frame were sent", n)
	}
	up.dispatch(raw(4, true))
	waitFor(t, func() bool { return w.n.Load() == 4 })

	subs[0].sh.Load().perPacket = true
	up.dispatch(raw(5, false))
	waitFor(t, func() bool { return w.n.Load() == 5 })
}
