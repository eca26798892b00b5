package sfu

import (
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/pion/rtp"
)

// fullWriter fails every write as a socket whose send buffer is full does
// (udpbatch drops, it does not wait): a viewer whose network stalls.
type fullWriter struct{ n atomic.Int64 }

func (w *fullWriter) WriteRTP(*rtp.Header, []byte) (int, error) { w.n.Add(1); return 0, syscall.EAGAIN }
func (w *fullWriter) Write([]byte) (int, error)                 { return 0, syscall.EAGAIN }

// recordingWriter keeps what a viewer was sent.
type recordingWriter struct {
	n    atomic.Int64
	last atomic.Pointer[rtp.Header]
}

func (w *recordingWriter) WriteRTP(h *rtp.Header, _ []byte) (int, error) {
	c := *h
	c.Extensions = append([]rtp.Extension(nil), h.Extensions...)
	w.last.Store(&c)
	w.n.Add(1)
	return 0, nil
}
func (w *recordingWriter) Write([]byte) (int, error) { return 0, nil }

// A stalled viewer must cost the others nothing: the presenter's dispatch
// never waits, and the viewer that shares the stalled one's writer gets
// every packet.
func TestStalledViewerLosesOnlyItsOwnPackets(t *testing.T) {
	up, subs, stop := benchTrackConfig(t, 2, Config{Writers: 1})
	defer stop()
	stalled := &fullWriter{}
	healthy := &recordingWriter{}
	setWriter(subs[0].downs[0], stalled)
	setWriter(subs[1].downs[0], healthy)

	const packets = 5000
	for i := 0; i < packets; i++ {
		p, err := newPacket(rawPacket(uint16(i)))
		if err != nil {
			t.Fatal(err)
		}
		up.dispatch(p)
		if i%256 == 255 { // let the writer keep up
			waitEmpty(t, subs[1])
		}
	}
	waitFor(t, func() bool { return healthy.n.Load() == packets && stalled.n.Load() == packets })
	if d := subs[1].ep.dropped.Load(); d != 0 {
		t.Errorf("healthy viewer dropped %d packets", d)
	}
}

// Each viewer gets its own SSRC, payload type and extension id, and the
// shared packet is left as the presenter sent it.
func TestRewriteIsPerViewer(t *testing.T) {
	up, subs, stop := benchTrack(t, 2)
	defer stop()
	w0, w1 := &recordingWriter{}, &recordingWriter{}
	setWriter(subs[0].downs[0], w0)
	setWriter(subs[1].downs[0], w1)
	b1 := *subs[1].downs[0].bind.Load()
	b1.pt, b1.ssrc = 111, 7777
	b1.extMap = [256]uint8{}
	b1.extMap[3] = 9
	b1.writer = w1
	subs[1].downs[0].bind.Store(&b1)

	p, err := newPacket(rawPacket(7))
	if err != nil {
		t.Fatal(err)
	}
	up.dispatch(p)
	waitFor(t, func() bool { return w0.n.Load() == 1 && w1.n.Load() == 1 })
	h0, h1 := w0.last.Load(), w1.last.Load()
	if h0 == nil || h1 == nil {
		t.Fatal("a viewer got nothing")
	}
	if h0.PayloadType != 100 || h0.SSRC != 1000 || h0.GetExtension(4) == nil {
		t.Errorf("viewer 0 header: pt %d ssrc %d ext ids %v", h0.PayloadType, h0.SSRC, h0.GetExtensionIDs())
	}
	if h1.PayloadType != 111 || h1.SSRC != 7777 || h1.GetExtension(9) == nil || h1.GetExtension(4) != nil {
		t.Errorf("viewer 1 header: pt %d ssrc %d ext ids %v", h1.PayloadType, h1.SSRC, h1.GetExtensionIDs())
	}
	if h0.SequenceNumber != 7 || h1.SequenceNumber != 7 {
		t.Errorf("sequence numbers %d, %d: want the presenter's 7", h0.SequenceNumber, h1.SequenceNumber)
	}
	if p.header.SSRC != 42 || p.header.PayloadType != 96 || p.header.GetExtension(3) == nil {
		t.Errorf("the shared packet was modified: %+v", p.header)
	}
}

func setWriter(d *downTrack, w interface {
	WriteRTP(*rtp.Header, []byte) (int, error)
	Write([]byte) (int, error)
}) {
	b := *d.bind.Load()
	b.writer = w
	d.bind.Store(&b)
}

func waitEmpty(t testing.TB, s *subscriber) {
	t.Helper()
	waitFor(t, func() bool { sh := s.sh.Load(); return sh == nil || len(sh.queue) == 0 })
}

func waitFor(t testing.TB, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(100 * time.Microsecond)
	}
}
