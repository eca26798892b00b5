package sfu

import (
	"testing"
	"time"
)

// A presenter's copy of a packet already forwarded (Chromium's RTX padding
// repeats recent packets) is not sent to viewers again: their SRTP replay
// check would drop it, and their transport-wide feedback report it lost.
func TestDuplicateIsNotForwarded(t *testing.T) {
	up, subs, stop := benchTrack(t, 1)
	defer stop()
	w := &recordingWriter{}
	setWriter(subs[0].downs[0], w)

	for _, seq := range []uint16{7, 7, 8, 7} {
		p, err := newPacket(rawPacket(seq))
		if err != nil {
			t.Fatal(err)
		}
		up.dispatch(p)
	}
	waitFor(t, func() bool { return w.n.Load() >= 2 })
	time.Sleep(50 * time.Millisecond) // a copy would follow
	if n := w.n.Load(); n != 2 {
		t.Errorf("the viewer was sent %d packets, want 2 (seq 7 and 8 once each)", n)
	}
	if d := up.ep.Stats().PacketsDuplicate; d != 2 {
		t.Errorf("%d duplicates counted, want 2", d)
	}
}
