package sfu

import (
	"encoding/binary"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/onair-live/onair/internal/media"
)

// countingWriter stands in for pion's SRTP writer, so that these benchmarks
// measure the SFU's own per-packet work (fan-out, queueing, header rewrite)
// apart from encryption and the send syscall, which the load tool measures.
type countingWriter struct{ bytes, packets atomic.Int64 }

func (w *countingWriter) WriteRTP(h *rtp.Header, payload []byte) (int, error) {
	n := h.MarshalSize() + len(payload)
	w.bytes.Add(int64(n))
	w.packets.Add(1)
	return n, nil
}

func (w *countingWriter) Write(b []byte) (int, error) { return len(b), nil }

// benchTrack builds a published video track with n bound, attached viewers,
// sent to by the engine's writers.
func benchTrack(b testing.TB, n int) (*upTrack, []*subscriber, func()) {
	return benchTrackConfig(b, n, Config{})
}

func benchTrackConfig(b testing.TB, n int, cfg Config) (*upTrack, []*subscriber, func()) {
	b.Helper()
	e, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	p := newPipeline(e, "bench", "bench")
	pub := newEndpoint(p, media.Publisher, "presenter:bench", media.Events{})
	c := codecParams(offeredCodec{pt: 96, mime: "video/VP8", clock: 90000}, webrtc.RTPCodecTypeVideo, true)
	up := newUpTrack(pub, webrtc.RTPCodecTypeVideo, c, map[string]uint8{"urn:3gpp:video-orientation": 3})
	subs, stop := benchViewers(p, up, n, nil)
	return up, subs, stop
}

// benchViewers attaches n bound viewers to up, sent to by the engine's
// writers; with g, each has a layer selector for it. stop ends the writers.
func benchViewers(p *Pipeline, up *upTrack, n int, g *layerGroup) ([]*subscriber, func()) {
	subs := make([]*subscriber, n)
	for i := range subs {
		ep := newEndpoint(p, media.Subscriber, fmt.Sprintf("viewer:%d", i), media.Events{})
		s := newSubscriber(ep)
		d := newDownTrack(up, s, 100)
		if g != nil {
			d.sel = newLayerSel(d, g, -1)
		}
		d.bind.Store(&binding{ssrc: uint32(1000 + i), pt: 100, writer: &countingWriter{}})
		d.bind.Load().extMap[3] = 4
		s.downs = []*downTrack{d}
		ep.sub = s
		s.attach(nil)
		subs[i] = s
	}
	stop := func() {
		for _, s := range subs {
			s.detach()
			close(s.ep.done)
		}
		p.engine.writers.close()
	}
	return subs, stop
}

// rawPacket is a 1,200-byte VP8 RTP packet with one header extension, a
// whole frame.
func rawPacket(seq uint16) []byte {
	h := rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: seq, Timestamp: uint32(seq) * 3000, SSRC: 42, Marker: true}
	_ = h.SetExtension(3, []byte{1})
	payload := make([]byte, 1200-h.MarshalSize())
	payload[0] = 0x10
	pkt := rtp.Packet{Header: h, Payload: payload}
	b, _ := pkt.Marshal()
	return b
}

// framePacket is rawPacket as packet seq of a video frame of perFrame
// packets: the frame's packets share a timestamp and the last has the marker,
// as a video frame does (a viewer's writer is woken once per frame).
func framePacket(seq uint16, perFrame int) []byte {
	b := rawPacket(seq)
	if int(seq)%perFrame != perFrame-1 {
		b[1] &^= 0x80 // marker
	}
	binary.BigEndian.PutUint32(b[4:], uint32(int(seq)/perFrame)*3000)
	return b
}

// BenchmarkForward reports the SFU's cost per packet per viewer: parse and
// store once, then queue and rewrite for each viewer, in video frames of
// four packets.
func BenchmarkForward(b *testing.B) {
	for _, viewers := range []int{1, 10, 100} {
		b.Run(fmt.Sprintf("viewers=%d", viewers), func(b *testing.B) {
			up, subs, stop := benchTrack(b, viewers)
			defer stop()
			benchForward(b, up, subs)
		})
	}
}

// benchForward dispatches b.N packets (whole frames) of up to its viewers.
func benchForward(b *testing.B, up *upTrack, subs []*subscriber) {
	const perFrame = 4
	raw := make([][]byte, 256)
	for i := range raw {
		raw[i] = framePacket(uint16(i), perFrame)
	}
	n := (b.N + perFrame - 1) / perFrame * perFrame // whole frames
	b.ReportAllocs()
	b.SetBytes(1200)
	b.ResetTimer()
	for i := 0; i < n; i++ {
		p, err := newPacket(raw[i%len(raw)])
		if err != nil {
			b.Fatal(err)
		}
		p.layer = up.layer // as the read loop does
		// numbered on, as a presenter's are: a repeated number would be a
		// duplicate, which dispatch drops
		p.header.SequenceNumber, p.header.Timestamp = uint16(i), uint32(i/perFrame)*3000
		up.dispatch(p)
		// Keep the queues from overflowing: wait when one is half full.
		if i%512 == 511 {
			drain(subs)
		}
	}
	// Every packet written to every viewer.
	for _, s := range subs {
		if w, ok := s.downs[0].bind.Load().writer.(*countingWriter); ok {
			for w.packets.Load() < int64(n) {
				runtime.Gosched()
			}
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n)/float64(len(subs)), "ns/packet/viewer")
}

// drain waits until the viewers' shards have taken everything queued.
func drain(subs []*subscriber) {
	for _, s := range subs {
		for sh := s.sh.Load(); sh != nil && len(sh.queue) > 0; {
			runtime.Gosched()
		}
	}
}
