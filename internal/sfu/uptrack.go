package sfu

import (
	"errors"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"

	"github.com/onair-live/onair/internal/codec"
)

const (
	// keyframeInterval is the least time between two keyframe requests to a
	// presenter, whoever asks (a joining viewer, a viewer's PLI or FIR).
	keyframeInterval = 500 * time.Millisecond
	videoCacheSize   = 2048
	audioCacheSize   = 512
	// maxReplay bounds how many cached packets a joining viewer is sent.
	maxReplay = 1500
)

// upTrack is one track the presenter publishes, and the fan-out to its
// viewers. Its read loop is the only writer of the cache; it never blocks on a
// viewer: each viewer has a bounded queue and loses only its own packets.
type upTrack struct {
	ep         *Endpoint // the publisher
	kind       webrtc.RTPCodecType
	codec      webrtc.RTPCodecParameters
	extensions map[string]uint8 // forwarded extension URI to the presenter's id
	isVideo    bool
	// Simulcast (simulcast.go): the layer's RID and rank (0 is the lowest),
	// its group, and its bitrate; rid is empty and group nil without it.
	rid   string
	layer int8
	group *layerGroup
	rate  *rateMeter

	mu         sync.Mutex // guards cache, GOP state and membership changes
	cache      *packetCache
	frameTS    uint32
	frameStart uint16
	inFrame    bool
	gopStart   uint16
	haveGOP    bool
	burst      burstState

	// downs are the consumers, guarded by mu. A membership change replaces
	// the slice, never changes it in place, so dispatch can fan a packet out
	// after unlocking mu. dispatch takes it under mu with the cache: a viewer
	// that joins gets the cached GOP replay and then the live packets, with
	// none missed or repeated between them.
	downs []consumer
	// fans are the viewers' tracks, by writer shard (writers.go): dispatch
	// hands each packet once to each shard. Guarded and replaced as downs.
	fans []*fan

	ssrc atomic.Uint32 // the presenter's SSRC, once its first packet arrives

	kfMu      sync.Mutex
	kfLast    time.Time
	kfTimer   *time.Timer
	kfWanted  bool // asked before the presenter's track arrived
	closed    bool
	keyframes atomic.Uint64
}

func newUpTrack(ep *Endpoint, kind webrtc.RTPCodecType, c webrtc.RTPCodecParameters, exts map[string]uint8) *upTrack {
	size := audioCacheSize
	if kind == webrtc.RTPCodecTypeVideo {
		size = videoCacheSize
	}
	t := &upTrack{ep: ep, kind: kind, codec: c, extensions: exts,
		isVideo: kind == webrtc.RTPCodecTypeVideo, cache: newPacketCache(size)}
	return t
}

// consumer is what a published track fans out to: a viewer's downTrack, or
// a recorder's track (recorder.go). enqueue must never block.
type consumer interface {
	enqueue(p *packet)
}

// start runs the read loop for the presenter's remote track.
func (t *upTrack) start(remote *webrtc.TrackRemote, receiver *webrtc.RTPReceiver) {
	t.ssrc.Store(uint32(remote.SSRC()))
	t.ep.goroutine(func() { t.readLoop(remote, nil) })
	read := receiver.Read
	if rid := t.rid; rid != "" {
		read = func(b []byte) (int, interceptor.Attributes, error) { return receiver.ReadSimulcast(b, rid) }
	}
	t.ep.goroutine(func() { drainRTCP(read) })
	t.sendWantedKeyframe()
}

// sendWantedKeyframe asks for the keyframe asked for before the track's
// SSRC was known; the SSRC has just been stored.
func (t *upTrack) sendWantedKeyframe() {
	t.kfMu.Lock()
	wanted := t.kfWanted
	t.kfWanted = false
	t.kfMu.Unlock()
	if wanted {
		t.requestKeyframe()
	}
}

// readLoop reads a remote track into the pipeline's track; accept, if set,
// drops the packets it refuses (a relay pull's: relay.go).
func (t *upTrack) readLoop(remote *webrtc.TrackRemote, accept func(*packet) bool) {
	buf := make([]byte, 1500)
	for {
		n, _, err := remote.Read(buf)
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrClosedPipe) {
				t.ep.log.Debug("track read ended", "kind", t.kind.String(), "err", err)
			}
			return
		}
		p, err := newPacket(buf[:n])
		if err != nil {
			continue
		}
		p.arrival = time.Now()
		p.layer = t.layer
		if accept != nil && !accept(p) {
			continue
		}
		t.ep.packetsIn.Add(1)
		t.ep.bytesIn.Add(uint64(n))
		t.dispatch(p)
	}
}

// dispatch stores a packet and hands it to every shard of viewers and to
// every other consumer.
func (t *upTrack) dispatch(p *packet) {
	t.mu.Lock()
	if had := t.cache.get(p.header.SequenceNumber); had != nil && had.header.Timestamp == p.header.Timestamp {
		// A copy of a packet already forwarded: a presenter's RTX padding
		// (Chromium probes its uplink with copies of recent packets) or a
		// retransmission that crossed the original. Each viewer has it
		// already; a second copy is dropped by its SRTP replay check,
		// which its transport-wide feedback reports as a loss.
		t.mu.Unlock()
		t.ep.duplicates.Add(1)
		return
	}
	if t.isVideo {
		t.trackGOP(p)
		p.wake = t.burst.ends(p)
	} else {
		p.wake = true
	}
	t.cache.put(p)
	if t.rate != nil {
		t.rate.add(p.header.MarshalSize()+len(p.payload), p.arrival)
	}
	downs, fans := t.downs, t.fans
	t.mu.Unlock()
	for _, f := range fans {
		if !f.sh.push(item{p: p, to: f}, p.wake) {
			for _, d := range f.downs {
				d.dropped(1)
			}
		}
	}
	for _, d := range downs {
		d.enqueue(p)
	}
}

// trackGOP remembers where the newest keyframe starts: the first packet of the
// frame (RTP timestamp) in which a keyframe packet is seen.
func (t *upTrack) trackGOP(p *packet) {
	if !t.inFrame || p.header.Timestamp != t.frameTS {
		if !t.inFrame || seqNewer(p.header.SequenceNumber, t.frameStart) {
			t.frameTS, t.frameStart, t.inFrame = p.header.Timestamp, p.header.SequenceNumber, true
		}
	}
	if len(p.payload) > 0 && codec.IsKeyframe(t.codec.MimeType, p.payload) {
		p.keyframe = true
		if p.header.Timestamp == t.frameTS {
			if !t.haveGOP || t.gopStart != t.frameStart {
				t.keyframes.Add(1)
			}
			t.gopStart, t.haveGOP = t.frameStart, true
		}
	}
}

// maxBurstHold bounds how long a viewer's writer lets the first packet of a
// burst wait for the rest: a presenter that paces a frame's packets (as
// browsers do) then has them forwarded in small bursts as they come, not
// all at the end of the frame, which would delay the frame's completion by
// the time it takes to send the whole frame to every viewer at once.
const maxBurstHold = time.Millisecond

// burstState follows a video track's frames, to tell when viewers' writers
// have a whole burst to send.
type burstState struct {
	started    bool
	lastSeq    uint16 // newest sequence number
	lastTS     uint32 // and its frame
	lastMarker bool   // whether it ended its frame
	open       bool   // packets are waiting for the end of a burst
	since      time.Time
}

// ends tells whether p completes a burst: it is the last packet of a frame
// (marker), or it comes late (a retransmission, a reordered packet), or it
// starts a frame whose predecessor's last packet was lost, so that nothing
// waits for a marker that will not come, or the burst has waited
// maxBurstHold since its first packet. The hold is judged when a packet
// arrives (there is no timer): a burst whose marker is lost waits for the
// next packet of the track, or for an audio packet, which wakes the writer
// too; at 30 fps that is at most one frame interval.
func (b *burstState) ends(p *packet) bool {
	seq, ts := p.header.SequenceNumber, p.header.Timestamp
	end := b.started && !seqNewer(seq, b.lastSeq) // late
	if !end {
		lost := b.started && !b.lastMarker && ts != b.lastTS
		b.started, b.lastSeq, b.lastTS, b.lastMarker = true, seq, ts, p.header.Marker
		end = p.header.Marker || lost
	}
	switch {
	case end:
	case !b.open:
		b.open, b.since = true, p.arrival
		return false
	case p.arrival.Sub(b.since) < maxBurstHold:
		return false
	}
	b.open = false
	return true
}

// addDown attaches a viewer's track. A video viewer is first sent the cached
// pictures since the last keyframe, so it can decode at once (a viewer's
// track paced: replay.go), and the presenter is asked for a fresh keyframe
// when there is none to send.
func (t *upTrack) addDown(c consumer) {
	t.mu.Lock()
	var replay []*packet
	if t.isVideo && t.haveGOP {
		replay = t.cache.since(t.gopStart)
		if len(replay) > maxReplay {
			replay = nil
		}
	}
	if d, ok := c.(*downTrack); ok {
		sh := d.sub.sh.Load()
		if sh == nil { // not attached (subscriber.attach): nothing to send to
			t.mu.Unlock()
			return
		}
		if len(replay) > 0 && !sh.push(item{d: d, rp: newReplay(replay, t.codec.ClockRate, t.bitrate())}, true) {
			replay = nil
		}
		t.fans = withDown(t.fans, d, sh)
	} else {
		for _, p := range replay {
			c.enqueue(p)
		}
		t.downs = append(slices.Clip(t.downs), c)
	}
	t.mu.Unlock()
	if t.isVideo && len(replay) == 0 {
		t.requestKeyframe()
	}
}

// addDownLive attaches a viewer's track from the next packet on, without a
// replay or a keyframe request: a simulcast viewer joining the layer it is
// to switch to (layer.go), which asks for the keyframe itself.
func (t *upTrack) addDownLive(c consumer) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if d, ok := c.(*downTrack); ok {
		if sh := d.sub.sh.Load(); sh != nil {
			t.fans = withDown(t.fans, d, sh)
		}
		return
	}
	t.downs = append(slices.Clip(t.downs), c)
}

func (t *upTrack) removeDown(c consumer) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if d, ok := c.(*downTrack); ok {
		t.fans = withoutDown(t.fans, d)
		return
	}
	next := make([]consumer, 0, len(t.downs))
	for _, x := range t.downs {
		if x != c {
			next = append(next, x)
		}
	}
	t.downs = next
}

// lookup returns a cached packet for a retransmission.
func (t *upTrack) lookup(seq uint16) *packet {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.cache.get(seq)
}

// requestKeyframe asks the presenter for a keyframe, at most once per
// keyframeInterval; a request inside the interval is sent when it ends.
func (t *upTrack) requestKeyframe() {
	if !t.isVideo {
		return
	}
	t.kfMu.Lock()
	defer t.kfMu.Unlock()
	if t.closed || t.kfTimer != nil {
		return
	}
	wait := keyframeInterval - time.Since(t.kfLast)
	if wait <= 0 {
		t.sendPLI()
		return
	}
	t.kfTimer = time.AfterFunc(wait, func() {
		t.kfMu.Lock()
		defer t.kfMu.Unlock()
		t.kfTimer = nil
		if !t.closed {
			t.sendPLI()
		}
	})
}

// sendPLI writes a PLI to the presenter; kfMu is held. Before the track's
// SSRC is known (its first connection, or a relay pull's next one: Pull
// forgets the old SSRC), the keyframe is asked for when it arrives
// (sendWantedKeyframe), also when a throttled request's timer fires.
func (t *upTrack) sendPLI() {
	if t.ssrc.Load() == 0 {
		t.kfWanted = true
		return
	}
	t.kfLast = time.Now()
	t.ep.mu.Lock()
	pc := t.ep.pc
	t.ep.mu.Unlock()
	if pc == nil {
		return
	}
	t.ep.plis.Add(1)
	if err := pc.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: t.ssrc.Load()}}); err != nil {
		t.ep.log.Debug("send PLI", "err", err)
	}
}

// close stops the keyframe timer; the read loop ends with the connection.
func (t *upTrack) close() {
	t.kfMu.Lock()
	t.closed = true
	if t.kfTimer != nil {
		t.kfTimer.Stop()
		t.kfTimer = nil
	}
	t.kfMu.Unlock()
}

// drainRTCP reads RTCP until the connection ends, so interceptors see it.
func drainRTCP(read func([]byte) (int, interceptor.Attributes, error)) {
	buf := make([]byte, 1500)
	for {
		if _, _, err := read(buf); err != nil {
			return
		}
	}
}
