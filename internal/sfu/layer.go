package sfu

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"

	"github.com/onair-live/onair/internal/media"
)

// A layer per viewer: a viewer's video downTrack of a simulcast broadcast
// has a layerSel, which moves it between the layers. A switch is asked
// (setTarget) by the viewer's estimator (bwe.go) or its pin; the viewer is
// then fed both layers, and keeps being sent the current one until the
// first packet of a keyframe of the target arrives (the target is asked for
// one, through its throttle). From that packet on it is sent the target.
// Sequence numbers and timestamps are rewritten so that the viewer sees one
// stream: each stretch of one layer is a segment, whose sequence numbers
// follow the previous segment's last without a gap, and whose timestamps
// follow its last by the time between them.

// maxSegments is how many segments are remembered, to map a viewer's NACKs
// back to the layer and sequence number they name.
const maxSegments = 64

// segment is a stretch of one layer as the viewer receives it: source
// sequence number src is sent as out, and timestamps are shifted by tsOff.
type segment struct {
	layer int8
	src   uint16
	out   uint16
	tsOff uint32
}

// Layer names, for pinning: WHEP ?layer= and the WebSocket message.
const (
	LayerAuto = ""
	LayerLow  = "l"
	LayerMid  = "m"
	LayerHigh = "h"
)

type layerSel struct {
	d *downTrack
	g *layerGroup

	mu      sync.Mutex
	segs    []segment // oldest first
	cur     int8      // the layer sent; -1 before the first packet
	want    int8      // the layer asked for
	pin     int8      // -1: automatic
	askedAt time.Time // when want was last changed
	lastOut uint16    // newest sequence number sent
	lastSrc uint16    // its source's
	lastTS  uint32    // and its timestamp
	lastAt  time.Time // and when its source packet arrived

	memb     sync.Mutex // serializes membership changes
	attached [maxLayers]bool
	detached bool

	switches atomic.Uint64
	resend   resendGuard
	bwe      bweState // bwe.go: the estimator's state, its goroutine's only
	probeBPS atomic.Int64
	probe    probeBudget // the writer's
	estimate atomic.Int64
}

func newLayerSel(d *downTrack, g *layerGroup, pin int8) *layerSel {
	s := &layerSel{d: d, g: g, cur: -1, pin: pin, want: int8(len(g.layers) - 1)}
	if pin >= 0 {
		s.want = min(pin, int8(len(g.layers)-1))
	}
	return s
}

// parseLayer maps a layer name to a rank among n layers: h the top, l the
// lowest, m the middle one (the top of two); -1 for automatic.
func parseLayer(name string) (int8, error) {
	switch name {
	case LayerAuto, "auto":
		return -1, nil
	case LayerLow:
		return 0, nil
	case LayerMid:
		return 1, nil
	case LayerHigh:
		return maxLayers - 1, nil
	}
	return -1, fmt.Errorf("%w: layer %q (want h, m, l or auto)", media.ErrBadLayer, name)
}

func layerName(rank, n int8) string {
	switch {
	case rank < 0:
		return ""
	case rank == n-1:
		return LayerHigh
	case rank == 0:
		return LayerLow
	}
	return LayerMid
}

// attach joins the viewer to the layer it starts on, from its last
// keyframe.
func (s *layerSel) attach() {
	s.memb.Lock()
	defer s.memb.Unlock()
	if s.detached {
		return
	}
	s.mu.Lock()
	want := s.want
	s.mu.Unlock()
	s.attached[want] = true
	s.g.layers[want].addDown(s.d)
}

// detach leaves every layer.
func (s *layerSel) detach() {
	s.memb.Lock()
	defer s.memb.Unlock()
	s.detached = true
	for i, on := range s.attached {
		if on {
			s.g.layers[i].removeDown(s.d)
			s.attached[i] = false
		}
	}
}

// sync joins the layers the viewer needs (the one sent and the one asked
// for) and leaves the others.
func (s *layerSel) sync() {
	s.memb.Lock()
	defer s.memb.Unlock()
	if s.detached || s.d.sub.sh.Load() == nil {
		return // not attached yet: attach joins the layer wanted then
	}
	s.mu.Lock()
	cur, want := s.cur, s.want
	s.mu.Unlock()
	for i := range s.g.layers {
		need := int8(i) == cur || int8(i) == want
		switch {
		case need && !s.attached[i]:
			s.attached[i] = true
			s.g.layers[i].addDownLive(s.d)
		case !need && s.attached[i]:
			s.attached[i] = false
			s.g.layers[i].removeDown(s.d)
		}
	}
}

// setTarget asks for a switch to layer l (clamped to those there are).
func (s *layerSel) setTarget(l int8) {
	l = max(0, min(l, int8(len(s.g.layers)-1)))
	s.mu.Lock()
	if l == s.want {
		s.mu.Unlock()
		return
	}
	s.want, s.askedAt = l, time.Now()
	pending := s.cur >= 0 && s.cur != l
	s.mu.Unlock()
	s.sync()
	if pending {
		s.g.layers[l].requestKeyframe()
	}
}

// setPin pins a layer, or with -1 returns to automatic choice.
func (s *layerSel) setPin(l int8) {
	s.mu.Lock()
	s.pin = l
	s.mu.Unlock()
	if l >= 0 {
		s.setTarget(l)
	}
}

// state returns the layer sent (the one asked for before the first packet),
// the one asked for, and the pin.
func (s *layerSel) state() (cur, want, pin int8) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur = s.cur
	if cur < 0 {
		cur = s.want
	}
	return cur, s.want, s.pin
}

// pendingFor is how long a switch has waited for its keyframe (0: none).
func (s *layerSel) pendingFor() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur < 0 || s.cur == s.want {
		return 0
	}
	return time.Since(s.askedAt)
}

// keyTrack is the layer whose keyframes the viewer needs now.
func (s *layerSel) keyTrack() *upTrack {
	cur, _, _ := s.state()
	return s.g.layers[cur]
}

// rewrite maps a packet of any layer into the viewer's stream, writing its
// sequence number and timestamp into h; false drops it (a layer the viewer
// is not sent, or a packet outside the stretches it was sent). It runs on
// the writer of the viewer's shard (writers.go).
func (s *layerSel) rewrite(p *packet, h *rtp.Header) bool {
	s.mu.Lock()
	l, seq := p.layer, p.header.SequenceNumber
	left := int8(-1)
	switch {
	case s.cur < 0:
		if l != s.want {
			s.mu.Unlock()
			return false
		}
		s.cur = l
		s.addSegment(segment{layer: l, src: seq, out: seq})
		s.lastOut, s.lastTS, s.lastAt = seq-1, p.header.Timestamp, p.arrival
	case l != s.cur && l == s.want && p.keyframe:
		gap := uint32(1)
		if d := p.arrival.Sub(s.lastAt); d > 0 {
			gap = max(1, uint32(d.Seconds()*float64(s.d.up.codec.ClockRate)))
		}
		s.addSegment(segment{layer: l, src: seq, out: s.lastOut + 1, tsOff: s.lastTS + gap - p.header.Timestamp})
		left, s.cur = s.cur, l
		s.switches.Add(1)
	}
	out, tsOff, ok := s.mapSource(l, seq)
	if ok {
		h.SequenceNumber, h.Timestamp = out, p.header.Timestamp+tsOff
		if seqNewer(out, s.lastOut) {
			s.lastOut, s.lastSrc, s.lastTS, s.lastAt = out, seq, h.Timestamp, p.arrival
		}
	}
	s.mu.Unlock()
	if left >= 0 {
		s.sync() // leave the old layer
	}
	return ok
}

func (s *layerSel) addSegment(sg segment) {
	if len(s.segs) == maxSegments {
		copy(s.segs, s.segs[1:])
		s.segs = s.segs[:maxSegments-1]
	}
	s.segs = append(s.segs, sg)
}

// mapSource finds the segment that holds source packet seq of layer l.
func (s *layerSel) mapSource(l int8, seq uint16) (out uint16, tsOff uint32, ok bool) {
	for i := len(s.segs) - 1; i >= 0; i-- {
		sg := s.segs[i]
		if sg.layer != l {
			continue
		}
		delta := seq - sg.src
		if delta >= 0x8000 {
			continue // before this segment
		}
		if i < len(s.segs)-1 && delta >= s.segs[i+1].out-sg.out {
			return 0, 0, false // after it: the layer was left
		}
		return sg.out + delta, sg.tsOff, true
	}
	return 0, 0, false
}

// reserve takes n sequence numbers for padding after p, the newest packet
// sent, and returns the first and the timestamp to give them: the current
// layer's next packets are then sent n further on, in a segment of their
// own.
func (s *layerSel) reserve(p *packet, n uint16) (first uint16, ts uint32, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p.layer != s.cur || p.header.SequenceNumber != s.lastSrc || len(s.segs) == 0 {
		return 0, 0, false
	}
	cur := s.segs[len(s.segs)-1]
	first = s.lastOut + 1
	s.addSegment(segment{layer: s.cur, src: s.lastSrc + 1, out: first + n, tsOff: cur.tsOff})
	s.lastOut += n
	return first, s.lastTS, true
}

// lookup finds the source packet of a sequence number the viewer was sent
// (nil for padding, or one no longer held).
func (s *layerSel) lookup(out uint16) *packet {
	s.mu.Lock()
	var (
		layer int8 = -1
		src   uint16
	)
	for i := len(s.segs) - 1; i >= 0; i-- {
		sg := s.segs[i]
		delta := out - sg.out
		if delta >= 0x8000 {
			continue
		}
		if i == len(s.segs)-1 && seqNewer(out, s.lastOut) {
			break
		}
		layer, src = sg.layer, sg.src+delta
		break
	}
	if layer >= 0 {
		if o, _, ok := s.mapSource(layer, src); !ok || o != out {
			layer = -1 // padding: its number maps to no packet
		}
	}
	s.mu.Unlock()
	if layer < 0 {
		return nil
	}
	return s.g.layers[layer].lookup(src)
}

// The downTrack's side: which track it joins, asks keyframes of, and looks
// retransmissions up in.

func (d *downTrack) join() {
	if d.sel != nil {
		d.sel.attach()
		return
	}
	d.up.addDown(d)
}

func (d *downTrack) leave() {
	if d.sel != nil {
		d.sel.detach()
		return
	}
	d.up.removeDown(d)
}

func (d *downTrack) keyTrack() *upTrack {
	if d.sel != nil {
		return d.sel.keyTrack()
	}
	return d.up
}

func (d *downTrack) lookup(seq uint16) *packet {
	if d.sel != nil {
		p := d.sel.lookup(seq)
		if p != nil && time.Since(p.arrival) > resendMaxAge {
			return nil // too late to be played
		}
		if p != nil && !d.sel.resend.allow(seq, len(p.payload)+12, d.sel.keyTrack().bitrate()) {
			return nil
		}
		return p
	}
	return d.up.lookup(seq)
}

// resendGuard bounds a simulcast viewer's retransmissions: a packet is sent
// again at most once per resendEvery, and retransmissions take at most
// resendShare of the layer's bitrate. Without it, a viewer behind a
// bottleneck asks again for what the bottleneck dropped, and the
// retransmissions, dropped in turn, grow until they crowd out the media. A
// packet that came more than resendMaxAge ago is not sent again at all
// (downTrack.lookup): a viewer asks, again and again, for packets lost
// while it was on a higher layer long after they could be played, and when
// they have fallen out of its SRTP replay window (64 packets for pion) it
// drops each copy unread, which its transport-wide feedback reports as a
// loss: a steady 20-25% that failed every probe.
type resendGuard struct {
	mu     sync.Mutex
	seq    [512]uint16
	at     [512]time.Time
	tokens float64 // bytes
	last   time.Time
}

const (
	resendEvery  = 150 * time.Millisecond
	resendMaxAge = time.Second
	resendShare  = 0.25
	resendMin    = 100_000 // bit/s allowed whatever the layer's bitrate
)

func (g *resendGuard) allow(seq uint16, size int, layerBPS int64) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := time.Now()
	i := seq % uint16(len(g.seq))
	if g.seq[i] == seq && now.Sub(g.at[i]) < resendEvery {
		return false
	}
	rate := max(float64(resendMin), resendShare*float64(layerBPS)) / 8 // bytes/s
	if !g.last.IsZero() {
		g.tokens = min(rate/5, g.tokens+now.Sub(g.last).Seconds()*rate)
	}
	g.last = now
	if g.tokens < float64(size) {
		return false
	}
	g.tokens -= float64(size)
	g.seq[i], g.at[i] = seq, now
	return true
}

// SetLayer pins the viewer's simulcast layer (h, m, l), or with auto (or "")
// lets its estimated bandwidth choose. Before the offer, it sets the layer
// the viewer starts on. Without simulcast it is remembered and has no
// effect.
func (e *Endpoint) SetLayer(name string) error {
	if e.role != media.Subscriber {
		return fmt.Errorf("%w: only a viewer has a layer", media.ErrBadLayer)
	}
	l, err := parseLayer(name)
	if err != nil {
		return err
	}
	e.pin.Store(int32(l) + 1)
	e.mu.Lock()
	sub := e.sub
	e.mu.Unlock()
	if sub == nil {
		return nil
	}
	for _, d := range sub.downs {
		if d.sel != nil {
			d.sel.setPin(l)
		}
	}
	return nil
}

var _ media.LayerPinner = (*Endpoint)(nil)

// startSelectors starts the estimator of each simulcast video the viewer
// receives.
func (e *Endpoint) startSelectors(sub *subscriber, tracks []*upTrack) {
	var audio *upTrack
	for _, t := range tracks {
		if t.group == nil && !t.isVideo {
			audio = t
		}
	}
	for _, d := range sub.downs {
		if sel := d.sel; sel != nil {
			e.goroutine(func() { sel.run(e, sub, audio) })
		}
	}
}

// layerStats adds a simulcast viewer's layer, pin, estimate and switches.
func (e *Endpoint) layerStats(s *media.EndpointStats) {
	s.Layers = e.relayLayerNames()
	e.mu.Lock()
	sub := e.sub
	e.mu.Unlock()
	if sub == nil {
		return
	}
	for _, d := range sub.downs {
		if sel := d.sel; sel != nil {
			cur, _, pin := sel.state()
			s.Layer = layerName(cur, int8(len(sel.g.layers)))
			s.LayerPinned = pin >= 0
			s.EstimateBPS = uint64(max(0, sel.estimate.Load()))
			s.LayerSwitches = sel.switches.Load()
		}
	}
}
