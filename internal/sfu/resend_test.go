package sfu

import (
	"testing"
	"time"
)

// A simulcast viewer's NACK is answered while the packet can still be
// played, not for a packet that came more than resendMaxAge ago.
func TestLateResendIsNotSent(t *testing.T) {
	up, subs, stop := benchLayeredTrack(t, 1)
	defer stop()
	w := &recordingWriter{}
	d := subs[0].downs[0]
	setWriter(d, w)
	for seq := uint16(10); seq < 13; seq++ {
		p, err := newPacket(rawPacket(seq))
		if err != nil {
			t.Fatal(err)
		}
		p.layer = up.layer
		if seq == 10 {
			p.arrival = time.Now().Add(-2 * resendMaxAge)
		} else {
			p.arrival = time.Now()
		}
		up.dispatch(p)
	}
	waitFor(t, func() bool { return w.n.Load() == 3 })
	d.lookup(12)                       // starts the resend budget's clock
	time.Sleep(200 * time.Millisecond) // and fills it
	if p := d.lookup(10); p != nil {
		t.Errorf("a packet that came %v ago is resent", 2*resendMaxAge)
	}
	if p := d.lookup(11); p == nil {
		t.Error("a packet that just came is not resent")
	}
}
