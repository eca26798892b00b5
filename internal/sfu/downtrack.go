package sfu

import (
	"strings"
	"sync"
	"sync/atomic"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/onair-live/onair/internal/sfu/udpbatch"
)

// outPacket is one packet queued for one viewer's track.
type outPacket struct {
	d *downTrack
	p *packet
}

// wakeBacklog is how many queued packets wake a viewer's writer even before
// a burst is complete: it bounds the burst sent at once when a presenter
// paces a large frame.
const wakeBacklog = 16

// subscriber is a viewer endpoint's send side: one bounded queue and one
// writer goroutine for all its tracks, so a slow viewer delays only itself.
// The writer is woken once per burst (a video frame, an audio packet), not
// per packet: it then sends the burst in as few system calls as it can.
type subscriber struct {
	ep    *Endpoint
	queue chan outPacket
	wake  chan struct{} // holds a token when the writer has a burst to send
	downs []*downTrack
	batch *udpbatch.Net             // the viewer's sockets; nil on a shared UDP port
	bwe   atomic.Pointer[estimator] // a simulcast viewer's (bwe.go)
	// Without simulcast: the SFU writes the viewer's sender reports
	// (srreport.go), and may send its RTP itself (srtpout.go; nil if not).
	reports bool
	direct  *directPath
	// perPacket wakes the writer for every packet (Config.SendPerPacket).
	perPacket bool

	mu       sync.Mutex
	attached bool
	detached bool
}

func newSubscriber(ep *Endpoint, queueLen int) *subscriber {
	return &subscriber{ep: ep, queue: make(chan outPacket, queueLen), wake: make(chan struct{}, 1),
		perPacket: ep.p.engine.cfg.SendPerPacket}
}

// run writes queued packets until the endpoint is released. Woken when a
// burst is complete, it writes every packet queued as one batch of sends,
// flushed at the end of each video frame and when the queue is empty: a
// frame's packets, which go to the same address and are mostly of the same
// size, then leave in one system call (see udpbatch).
func (s *subscriber) run() {
	for {
		select {
		case <-s.wake:
		case <-s.ep.done:
			return
		}
		s.begin()
	drain:
		for {
			select {
			case o := <-s.queue:
				o.d.write(o.p)
				if o.p.header.Marker && o.d.up.isVideo {
					s.flush()
					s.begin()
				}
			default:
				break drain
			}
		}
		s.flush()
	}
}

// wakeup has the writer send what is queued.
func (s *subscriber) wakeup() {
	select {
	case s.wake <- struct{}{}:
	default: // a token is already there
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

// attach joins the viewer's tracks to the broadcast, once it is connected.
func (s *subscriber) attach() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.attached || s.detached {
		return
	}
	s.attached = true
	for _, d := range s.downs {
		d.join()
	}
}

// detach leaves the broadcast; nothing is queued for the viewer after it.
func (s *subscriber) detach() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.detached {
		return
	}
	s.detached = true
	if s.attached {
		for _, d := range s.downs {
			d.leave()
		}
	}
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
	// The writer goroutine's scratch space: reusing it keeps the per-viewer
	// path free of allocations (a header passed to pion escapes to the heap).
	hdr  rtp.Header
	exts []rtp.Extension
	sr   senderStats // when the SFU writes the sender reports
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

// enqueue hands a packet to the viewer's writer without waiting. When the
// queue is full the packet is dropped: the viewer may recover it by NACK,
// and a video viewer is sent a keyframe soon.
func (d *downTrack) enqueue(p *packet) {
	select {
	case d.sub.queue <- outPacket{d: d, p: p}:
		if p.wake || d.sub.perPacket || len(d.sub.queue) >= wakeBacklog {
			d.sub.wakeup()
		}
	default:
		d.sub.wakeup()
		if d.sub.ep.dropped.Add(1)%100 == 1 {
			d.sub.ep.log.Warn("viewer queue full, dropping packets", "dropped", d.sub.ep.dropped.Load())
		}
		if d.up.isVideo {
			d.keyTrack().requestKeyframe()
		}
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
