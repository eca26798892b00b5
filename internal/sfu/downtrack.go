package sfu

import (
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/onair-live/onair/internal/sfu/udpbatch"
)

// outPacket is one packet to send to one viewer's track.
type outPacket struct {
	d *downTrack
	p *packet
}

// wakeBacklog is how many queued packets wake a shard's writer even before
// a burst is complete: it bounds the burst sent at once when a presenter
// paces a large frame.
const wakeBacklog = 16

// subscriber is a viewer endpoint's send side. Its packets are sent by the
// writer of the shard it is given when it attaches (writers.go), in one
// batch of sends per burst.
type subscriber struct {
	ep    *Endpoint
	downs []*downTrack
	batch *udpbatch.Net // the viewer's own sockets, if it has any
	// home is the shard whose sockets (homeSock) the viewer is served on,
	// when it has none of its own (shardsock.go).
	home     *shard
	homeSock *shardSocket
	bwe      atomic.Pointer[estimator] // a simulcast viewer's (bwe.go)
	// Without simulcast: the SFU writes the viewer's sender reports
	// (srreport.go), and may send its RTP itself (srtpout.go; nil if not).
	reports bool
	direct  *directPath

	ice  atomic.Pointer[webrtc.ICETransport] // the viewer's, once negotiated
	sh   atomic.Pointer[shard]               // from attach on
	gone atomic.Bool                         // detached: nothing more is sent
	// pending is the viewer's part of the burst its shard's writer is
	// sending; the writer alone uses it, and the sender reports' schedule
	// (srreport.go): when the next is due, whether it goes in this burst.
	pending []outPacket
	srNext  time.Time
	srDue   bool
	srPkts  []rtcp.Packet
	pc      *webrtc.PeerConnection // set by attach, for the sender reports

	mu       sync.Mutex
	attached bool
	detached bool
}

func newSubscriber(ep *Endpoint) *subscriber {
	return &subscriber{ep: ep}
}

// wakeup has the viewer's writer send what is queued.
func (s *subscriber) wakeup() {
	if sh := s.sh.Load(); sh != nil {
		sh.wakeup()
	}
}

func (s *subscriber) begin() {
	if s.batch != nil {
		s.batch.Begin()
	}
}

func (s *subscriber) flush() {
	if s.batch != nil {
		s.batch.Flush()
	}
}

// attach joins the viewer's tracks to the broadcast, once it is connected,
// in the least loaded writer's shard.
func (s *subscriber) attach(pc *webrtc.PeerConnection) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.attached || s.detached {
		return
	}
	own := s.overTCP()
	sh := s.ep.p.engine.writers.assign(own, s.home)
	if sh == nil {
		return // the engine is closing
	}
	if own {
		s.ep.log.Debug("viewer over ICE-TCP: a writer of its own")
	}
	s.sh.Store(sh)
	s.attached = true
	for _, d := range s.downs {
		d.join()
	}
	if s.reports && pc != nil {
		s.pc = pc
		sh.reportTo(s)
	}
}

// overTCP tells whether the viewer's media goes over ICE-TCP: a write to a
// TCP connection whose buffer is full blocks (pion's TCP path cannot drop a
// datagram), so such a viewer gets a writer of its own, which only it can
// stall.
func (s *subscriber) overTCP() bool {
	t := s.ice.Load()
	if t == nil {
		return false
	}
	pair, err := t.GetSelectedCandidatePair()
	return err == nil && pair != nil && pair.Local != nil && pair.Local.Protocol == webrtc.ICEProtocolTCP
}

// detach leaves the broadcast; nothing is sent to the viewer after it.
func (s *subscriber) detach() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.detached {
		return
	}
	s.detached = true
	s.gone.Store(true)
	if s.attached {
		for _, d := range s.downs {
			d.leave()
		}
		s.ep.p.engine.writers.release(s.sh.Load())
	}
}

// sockets are the viewer's sockets: its own, or its shard's.
func (s *subscriber) sockets() *udpbatch.Net {
	if s.batch != nil {
		return s.batch
	}
	if s.homeSock != nil {
		return s.homeSock.net
	}
	return nil
}

// binding is what pion negotiated for a viewer's track.
type binding struct {
	ssrc    uint32
	pt      uint8
	extMap  [256]uint8 // presenter's extension id to the viewer's, 0 = drop
	twoByte bool
	writer  webrtc.TrackLocalWriter
}

// downTrack is one published track as one viewer receives it. It implements
// webrtc.TrackLocal so that pion negotiates it like any local track.
type downTrack struct {
	up     *upTrack
	sub    *subscriber
	wantPT uint8     // the viewer's payload type for the published codec
	sel    *layerSel // a simulcast video's layer selector (layer.go), else nil

	bind atomic.Pointer[binding]
	// The writer goroutine's: scratch space whose reuse keeps the
	// per-viewer path free of allocations (a header passed to pion escapes
	// to the heap), and the replay going on (replay.go).
	hdr  rtp.Header
	exts []rtp.Extension
	sr   senderStats // when the SFU writes the sender reports
	rp   *replay
}

func newDownTrack(up *upTrack, sub *subscriber, pt uint8) *downTrack {
	return &downTrack{up: up, sub: sub, wantPT: pt}
}

func (d *downTrack) ID() string                { return d.trackID() }
func (d *downTrack) RID() string               { return "" }
func (d *downTrack) StreamID() string          { return "onair" }
func (d *downTrack) Kind() webrtc.RTPCodecType { return d.up.kind }

// Bind picks the viewer's payload type for the published codec and maps
// header extension ids.
func (d *downTrack) Bind(ctx webrtc.TrackLocalContext) (webrtc.RTPCodecParameters, error) {
	var chosen *webrtc.RTPCodecParameters
	for _, c := range ctx.CodecParameters() {
		if !strings.EqualFold(c.MimeType, d.up.codec.MimeType) {
			continue
		}
		if chosen == nil || uint8(c.PayloadType) == d.wantPT {
			c := c
			chosen = &c
		}
	}
	if chosen == nil {
		return webrtc.RTPCodecParameters{}, webrtc.ErrUnsupportedCodec
	}
	b := &binding{ssrc: uint32(ctx.SSRC()), pt: uint8(chosen.PayloadType), writer: ctx.WriteStream()}
	for _, h := range ctx.HeaderExtensions() {
		if upID, ok := d.up.extensions[h.URI]; ok && h.ID > 0 && h.ID < 256 {
			b.extMap[upID] = uint8(h.ID)
			if h.ID > 14 {
				b.twoByte = true
			}
		}
	}
	d.bind.Store(b)
	return *chosen, nil
}

// Unbind stops writing.
func (d *downTrack) Unbind(webrtc.TrackLocalContext) error {
	d.bind.Store(nil)
	return nil
}

// enqueue hands one packet to the viewer's writer without waiting (a
// retransmission; live packets are handed to a shard once for all its
// viewers: upTrack.dispatch). When the shard's queue is full the packet is
// dropped.
func (d *downTrack) enqueue(p *packet) {
	sh := d.sub.sh.Load()
	if sh == nil || d.sub.gone.Load() {
		return
	}
	if !sh.push(item{d: d, p: p}, false) {
		d.dropped(1)
	}
}

// dropped counts packets the viewer lost to a full queue and, for video,
// asks for a keyframe to recover.
func (d *downTrack) dropped(n uint64) {
	if d.sub.ep.dropped.Add(n)%100 < n {
		d.sub.ep.log.Warn("viewer's writer queue full, dropping packets", "dropped", d.sub.ep.dropped.Load())
	}
	if d.up.isVideo {
		d.keyTrack().requestKeyframe()
	}
}

// write sends one packet with the viewer's SSRC, payload type and extension
// ids. The shared packet is not modified: its header is copied.
func (d *downTrack) write(p *packet) {
	b := d.bind.Load()
	if b == nil {
		return
	}
	d.hdr = p.header
	h := &d.hdr
	if d.sel != nil && !d.sel.rewrite(p, h) {
		return
	}
	h.SSRC = b.ssrc
	h.PayloadType = b.pt
	h.Extension, h.Extensions, h.ExtensionProfile = false, d.exts[:0], 0
	profile := uint16(rtp.ExtensionProfileOneByte)
	if b.twoByte {
		profile = rtp.ExtensionProfileTwoByte
	}
	for _, e := range p.exts {
		if id := b.extMap[e.id]; id != 0 {
			_ = h.SetExtensionWithProfile(id, e.payload, profile)
		}
	}
	d.exts = h.Extensions[:0]
	direct, err := d.sub.direct.send(h, p.payload)
	if !direct {
		_, err = b.writer.WriteRTP(h, p.payload)
	}
	if err != nil {
		return
	}
	d.sub.ep.packetsOut.Add(1)
	d.sub.ep.bytesOut.Add(uint64(h.MarshalSize() + len(p.payload)))
	if d.sel != nil {
		d.sel.pad(b.writer, b, p)
	}
	if d.sub.reports {
		d.sr.sent(h.Timestamp, p.arrival, len(p.payload))
	}
}

// readRTCP answers a viewer's NACKs from the shared cache and passes its
// keyframe requests to the presenter through the throttle.
func (d *downTrack) readRTCP(sender *webrtc.RTPSender) {
	for {
		pkts, _, err := sender.ReadRTCP()
		if err != nil {
			return
		}
		for _, pkt := range pkts {
			switch m := pkt.(type) {
			case *rtcp.TransportLayerNack:
				for _, pair := range m.Nacks {
					for _, seq := range pair.PacketList() {
						d.sub.ep.nacks.Add(1)
						if p := d.lookup(seq); p != nil {
							d.enqueue(p)
						}
					}
				}
				d.sub.wakeup() // retransmissions are late already
			case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
				d.sub.ep.plis.Add(1)
				d.keyTrack().requestKeyframe()
			case *rtcp.ReceiverReport:
				if d.sel != nil {
					d.sel.onReport(m)
				}
			}
		}
	}
}
