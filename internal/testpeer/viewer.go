package testpeer

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// ViewerPeer is a viewer's media: a recvonly audio + video peer that
// reassembles every frame it receives and checks it byte for byte against
// what the publisher sent (CheckFrame), and checks every audio packet.
type ViewerPeer struct {
	*peer
	asVP8 func(*rtp.Packet) error // nil for VP8; see newViewerPeer

	mu        sync.Mutex
	stats     ViewerStats
	asm       map[uint32]*frameAsm // frames being reassembled, by RTP timestamp
	completed map[uint32]bool      // timestamps of frames already checked
	order     []uint32             // completed, oldest first, to bound it
	tsBase    uint32
	haveBase  bool
	baseLayer uint32 // the simulcast layer tsBase is of
	videoSSRC uint32
	sawHigh   bool // saw a sequence number near 65535
	closed    bool
	wg        sync.WaitGroup
	closeOnce sync.Once
}

// ViewerStats are what a viewer has received.
type ViewerStats struct {
	VideoPackets, AudioPackets int
	// Frames and Keyframes count whole frames that matched what was sent.
	Frames, Keyframes int
	// Corrupt counts frames that did not; AudioCorrupt, audio packets.
	Corrupt, AudioCorrupt int
	// Incomplete counts frames given up on (a packet never came).
	Incomplete int
	// LastFrame is the number of the newest whole frame.
	LastFrame uint32
	// FirstPacket and FirstKeyframe are the times from the viewer's
	// creation to its first video packet and its first whole keyframe.
	FirstPacket, FirstKeyframe time.Duration
	// SeqWrapped: the video sequence numbers wrapped around 65535.
	SeqWrapped bool
	// Errors describes the first corrupt frames or packets.
	Errors []string
}

func (s ViewerStats) String() string {
	return fmt.Sprintf("video %d pkts, %d frames (%d key, %d corrupt, %d incomplete, last #%d), audio %d pkts (%d corrupt), first packet %s, first keyframe %s",
		s.VideoPackets, s.Frames, s.Keyframes, s.Corrupt, s.Incomplete, s.LastFrame,
		s.AudioPackets, s.AudioCorrupt, s.FirstPacket, s.FirstKeyframe)
}

// frameAsm is one frame being put together from its packets.
type frameAsm struct {
	pkts       map[uint16][]byte // VP8 payload after the descriptor, by sequence number
	start, end uint16
	haveStart  bool
	haveEnd    bool
	seen       time.Time
}

const (
	maxPendingFrames = 90  // frames in reassembly before the oldest is given up
	maxCompleted     = 512 // completed timestamps remembered, to drop duplicates
	maxErrors        = 10
)

// NewViewerPeer makes a viewer peer; it receives once negotiated.
func NewViewerPeer() (*ViewerPeer, error) { return NewViewerPeerOn(Network{}) }

// NewViewerPeerOn makes a viewer peer that reaches the server only as n
// allows: over TCP, or through a TURN relay.
func NewViewerPeerOn(n Network) (*ViewerPeer, error) {
	m, ir, err := newAPIParts()
	if err != nil {
		return nil, err
	}
	return newViewerPeer(m, ir, n, nil)
}

// newViewerPeer makes a viewer peer taking the codecs of m, on n. asVP8,
// unless nil, rewrites each video packet in place into the VP8 packet that
// carries the same bytes of the frame, or says why it cannot.
func newViewerPeer(m *webrtc.MediaEngine, ir *interceptor.Registry, n Network, asVP8 func(*rtp.Packet) error) (*ViewerPeer, error) {
	pr, err := newPeerOn(m, ir, n)
	if err != nil {
		return nil, err
	}
	v := &ViewerPeer{peer: pr, asVP8: asVP8, asm: map[uint32]*frameAsm{}, completed: map[uint32]bool{}}
	recvonly := webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}
	for _, kind := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
		if _, err := pr.pc.AddTransceiverFromKind(kind, recvonly); err != nil {
			pr.close()
			return nil, err
		}
	}
	pr.pc.OnTrack(v.onTrack)
	return v, nil
}

func (v *ViewerPeer) onTrack(track *webrtc.TrackRemote, receiver *webrtc.RTPReceiver) {
	v.mu.Lock()
	if v.closed {
		v.mu.Unlock()
		return
	}
	v.wg.Add(2)
	if track.Kind() == webrtc.RTPCodecTypeVideo {
		v.videoSSRC = uint32(track.SSRC())
	}
	v.mu.Unlock()
	defer v.wg.Done()
	go func() {
		defer v.wg.Done()
		// Drain RTCP (the SFU's sender reports) so that interceptors see it.
		buf := make([]byte, 1500)
		for {
			if _, _, err := receiver.Read(buf); err != nil {
				return
			}
		}
	}()
	for {
		pkt, _, err := track.ReadRTP()
		if err != nil {
			return
		}
		if track.Kind() != webrtc.RTPCodecTypeVideo {
			v.audio(pkt)
			continue
		}
		if v.asVP8 != nil {
			if err := v.asVP8(pkt); err != nil {
				v.mu.Lock()
				v.stats.VideoPackets++
				v.stats.Corrupt++
				v.fail("seq %d: %v", pkt.SequenceNumber, err)
				v.mu.Unlock()
				continue
			}
		}
		v.video(pkt)
	}
}

func (v *ViewerPeer) fail(format string, args ...any) {
	if len(v.stats.Errors) < maxErrors {
		v.stats.Errors = append(v.stats.Errors, fmt.Sprintf(format, args...))
	}
}

func (v *ViewerPeer) audio(pkt *rtp.Packet) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.stats.AudioPackets++
	if _, err := CheckAudio(pkt.Payload); err != nil {
		v.stats.AudioCorrupt++
		v.fail("seq %d: %v", pkt.SequenceNumber, err)
	}
}

func (v *ViewerPeer) video(pkt *rtp.Packet) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.stats.VideoPackets++
	if v.stats.VideoPackets == 1 {
		v.stats.FirstPacket = since(v.created)
	}
	seq, ts := pkt.SequenceNumber, pkt.Timestamp
	if seq >= 0xff00 {
		v.sawHigh = true
	} else if seq < 0x0100 && v.sawHigh {
		v.stats.SeqWrapped = true
	}
	if v.completed[ts] {
		return // a retransmission of a packet of a frame already checked
	}
	if len(pkt.Payload) < 2 {
		v.stats.Corrupt++
		v.fail("seq %d: VP8 payload of %d bytes", seq, len(pkt.Payload))
		return
	}
	f := v.asm[ts]
	if f == nil {
		f = &frameAsm{pkts: map[uint16][]byte{}, seen: time.Now()}
		v.asm[ts] = f
	}
	if _, dup := f.pkts[seq]; dup {
		return
	}
	f.pkts[seq] = pkt.Payload[1:]
	if pkt.Payload[0]&0x10 != 0 {
		f.start, f.haveStart = seq, true
	}
	if pkt.Marker {
		f.end, f.haveEnd = seq, true
	}
	if f.haveStart && f.haveEnd && int(f.end-f.start)+1 == len(f.pkts) {
		v.finish(ts, f)
	}
	if len(v.asm) > maxPendingFrames {
		v.giveUpOldest()
	}
}

// finish checks a whole frame; mu is held.
func (v *ViewerPeer) finish(ts uint32, f *frameAsm) {
	delete(v.asm, ts)
	v.completed[ts] = true
	v.order = append(v.order, ts)
	if len(v.order) > maxCompleted {
		delete(v.completed, v.order[0])
		v.order = v.order[1:]
	}
	var frame []byte
	for s := f.start; ; s++ {
		frame = append(frame, f.pkts[s]...)
		if s == f.end {
			break
		}
	}
	n, key, err := CheckFrame(frame)
	if err == nil {
		base := ts - n*frameTicks
		if !v.haveBase || n/LayerFrames != v.baseLayer {
			// A simulcast layer's timestamps are its own: the SFU makes
			// them follow the old layer's, so the base moves at a switch.
			v.tsBase, v.haveBase, v.baseLayer = base, true, n/LayerFrames
		} else if base != v.tsBase {
			err = fmt.Errorf("frame %d has RTP timestamp %d, %d frames from the first", n, ts, int64(ts-v.tsBase)/frameTicks)
		}
	}
	if err != nil {
		v.stats.Corrupt++
		v.fail("%v", err)
		return
	}
	v.stats.Frames++
	v.stats.LastFrame = n
	if key {
		v.stats.Keyframes++
		if v.stats.Keyframes == 1 {
			v.stats.FirstKeyframe = since(v.created)
		}
	}
}

// giveUpOldest drops the frame waited for longest; mu is held.
func (v *ViewerPeer) giveUpOldest() {
	var oldest uint32
	var at time.Time
	for ts, f := range v.asm {
		if at.IsZero() || f.seen.Before(at) {
			oldest, at = ts, f.seen
		}
	}
	delete(v.asm, oldest)
	v.stats.Incomplete++
}

// Stats returns what the viewer has received so far.
func (v *ViewerPeer) Stats() ViewerStats {
	v.mu.Lock()
	defer v.mu.Unlock()
	s := v.stats
	s.Errors = append([]string(nil), s.Errors...)
	return s
}

// Check returns an error if any frame or audio packet was corrupt.
func (v *ViewerPeer) Check() error {
	s := v.Stats()
	if s.Corrupt > 0 || s.AudioCorrupt > 0 {
		return fmt.Errorf("corrupt media: %s; %q", s, s.Errors)
	}
	return nil
}

// WaitFor waits until cond holds for the viewer's stats; desc says what is
// awaited, for the error.
func (v *ViewerPeer) WaitFor(ctx context.Context, desc string, cond func(ViewerStats) bool) error {
	for {
		s := v.Stats()
		if s.Corrupt > 0 || s.AudioCorrupt > 0 {
			return fmt.Errorf("waiting for %s: corrupt media: %s; %q", desc, s, s.Errors)
		}
		if cond(s) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w; %s (connection %s)", desc, ctx.Err(), s, v.State())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// WaitMedia waits until the viewer has received at least frames whole
// frames in all, among them a keyframe, and some audio.
func (v *ViewerPeer) WaitMedia(ctx context.Context, frames int) error {
	return v.WaitFor(ctx, fmt.Sprintf("%d frames", frames), func(s ViewerStats) bool {
		return s.Frames >= frames && s.Keyframes > 0 && s.AudioPackets > 0
	})
}

// WaitMoreMedia waits until the viewer has received frames more whole
// frames and more audio than it had when called: the broadcast still flows.
func (v *ViewerPeer) WaitMoreMedia(ctx context.Context, frames int) error {
	from := v.Stats()
	return v.WaitFor(ctx, fmt.Sprintf("%d more frames", frames), func(s ViewerStats) bool {
		return s.Frames >= from.Frames+frames && s.AudioPackets > from.AudioPackets
	})
}

// RequestKeyframe sends a PLI for the video track, as a decoder that lost
// its picture does.
func (v *ViewerPeer) RequestKeyframe() error {
	v.mu.Lock()
	ssrc := v.videoSSRC
	v.mu.Unlock()
	if ssrc == 0 {
		return fmt.Errorf("no video track yet")
	}
	return v.pc.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: ssrc}})
}

// Close closes the connection and waits for the viewer's goroutines.
func (v *ViewerPeer) Close() {
	v.closeOnce.Do(func() {
		v.mu.Lock()
		v.closed = true
		v.mu.Unlock()
		v.peer.close()
		v.wg.Wait()
	})
}
