package loadtest

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"

	"github.com/onair-live/onair/internal/codec"
)

// Viewer states.
const (
	stateJoining   int32 = iota
	stateConnected       // the media connection is up
	stateFailed          // it never came up
	stateLost            // it came up, then failed or the broadcast was stopped
)

var stateNames = [...]string{"joining", "connected", "failed", "lost"}

// viewer is one receive-only pion peer that joins over the WebSocket
// protocol or WHEP and counts what it receives. It keeps no packet history:
// per track a sequence counter, and its latency samples go to the run's
// shared histograms.
type viewer struct {
	r     *runner
	c     *client // the node it joins
	node  int     // its index in Options.ViewerURLs
	index int
	email string

	// Set by join (its goroutine) and read after it returns.
	pc        *webrtc.PeerConnection
	ws        *wsSession
	location  string // WHEP resource
	joined    bool   // POST /room/view succeeded
	joinStart time.Time
	err       error

	// Unix nanoseconds of each step, 0 until it happens.
	answerAt, connectedAt, firstPacketAt, firstKeyAt atomic.Int64

	state     atomic.Int32
	connected chan struct{}
	down      chan struct{} // failed or closed
	downOnce  sync.Once
	leaving   atomic.Bool
	lostWhy   atomic.Pointer[string]

	video, audio         seqCounter
	videoSSRC, audioSSRC atomic.Uint32
	// With -shared-sockets: its socket, whether it goes header-only after
	// its first keyframe (-sample-viewers), and then the server address its
	// socket counts it by.
	sock       *sharedSocket
	headerOnly bool
	headerFrom netip.AddrPort
	layers     layerLog // with -simulcast
	plisSent   atomic.Uint64

	mu       sync.Mutex
	closed   bool
	pliTimer *time.Timer
	stopHLS  context.CancelFunc // an HLS viewer's readers (hls.go)
	hlsHTTP  *http.Client
	readers  sync.WaitGroup
}

func newViewer(r *runner, index int) *viewer {
	v := &viewer{r: r, c: r.vcs[index%len(r.vcs)], node: index % len(r.vcs), index: index, email: fmt.Sprintf("%s-viewer-%d", r.o.Room, index),
		connected: make(chan struct{}), down: make(chan struct{})}
	v.layers.layer.Store(-1)
	if len(r.socks) > 0 && !v.capped() {
		v.sock = r.socks[index%len(r.socks)]
		v.headerOnly = !r.sampled(index)
	}
	return v
}

// join runs the whole join and records how far it got.
func (v *viewer) join(ctx context.Context) {
	connect := v.connect
	if v.r.o.Protocol == "hls" {
		connect = v.connectHLS
	}
	if err := connect(ctx); err != nil {
		v.err = err
		if !v.state.CompareAndSwap(stateJoining, stateFailed) {
			v.state.CompareAndSwap(stateConnected, stateFailed) // connected, but cannot be measured
		}
	}
}

// capped tells whether the viewer is behind -cap (the first -cap-viewers).
func (v *viewer) capped() bool { return v.index < v.r.o.CapViewers }

func (v *viewer) connect(ctx context.Context) error {
	api := v.r.api
	switch {
	case v.sock != nil:
		api = v.sock.api
	case v.capped():
		var err error
		if api, err = viewerAPI(v.r.o.LoopbackOnly, v.r.o.Simulcast, v.r.o.CapBitrate, nil); err != nil {
			return err
		}
	}
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return err
	}
	v.pc = pc
	for _, kind := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeAudio, webrtc.RTPCodecTypeVideo} {
		if _, err := pc.AddTransceiverFromKind(kind, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			return err
		}
	}
	pc.OnTrack(v.onTrack)
	pc.OnConnectionStateChange(v.onState)
	// The offer and its candidates are ready before the clock starts, so
	// that join latency is the server's.
	off, err := makeOffer(ctx, pc)
	if err != nil {
		return err
	}
	v.joinStart = time.Now()
	if v.r.o.Protocol == "whep" {
		answer, loc, err := v.c.postOffer(ctx, "whep", v.r.o.Room, v.email, off.gatheredSDP)
		if err != nil {
			return err
		}
		v.location = loc
		if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
			return fmt.Errorf("set answer: %w", err)
		}
	} else {
		if err := v.c.join(ctx, v.email, v.r.o.Room); err != nil {
			return err
		}
		v.joined = true
		ws, err := dialWS(ctx, v.c, v.email, pc, v.onStop)
		if err != nil {
			return err
		}
		v.ws = ws
		if err := ws.negotiate(ctx, "viewer", v.r.o.Room, v.email, off.trickleSDP, off.candidates); err != nil {
			return err
		}
	}
	v.answerAt.Store(time.Now().UnixNano())
	select {
	case <-v.connected:
		if v.sock != nil {
			return v.claimSender()
		}
		return nil
	case <-v.down:
		return errors.New("media connection failed")
	case <-ctx.Done():
		return fmt.Errorf("media connection: %w", ctx.Err())
	}
}

func (v *viewer) onState(s webrtc.PeerConnectionState) {
	switch s {
	case webrtc.PeerConnectionStateConnected:
		if !v.connectedAt.CompareAndSwap(0, time.Now().UnixNano()) {
			return
		}
		v.state.CompareAndSwap(stateJoining, stateConnected)
		close(v.connected)
		if d := v.r.o.ViewerPLI; d > 0 {
			v.mu.Lock()
			if !v.closed {
				v.pliTimer = time.AfterFunc(d, v.pliIfNoKeyframe)
			}
			v.mu.Unlock()
		}
	case webrtc.PeerConnectionStateFailed, webrtc.PeerConnectionStateClosed:
		v.downOnce.Do(func() { close(v.down) })
		if !v.leaving.Load() {
			v.markLost("media connection " + s.String())
		}
	}
}

// claimSender records, on the viewer's shared socket, the server address
// its media comes from (the selected candidate pair's remote), and fails
// the viewer if another viewer on the socket has it already.
func (v *viewer) claimSender() error {
	for _, r := range v.pc.GetReceivers() {
		t := r.Transport()
		if t == nil {
			continue
		}
		pair, err := t.ICETransport().GetSelectedCandidatePair()
		if err != nil || pair == nil || pair.Remote == nil {
			continue
		}
		addr, err := netip.ParseAddr(pair.Remote.Address)
		if err != nil {
			return fmt.Errorf("the server's candidate %q: %w", pair.Remote.Address, err)
		}
		return v.sock.claim(netip.AddrPortFrom(addr.Unmap(), pair.Remote.Port), v)
	}
	return nil
}

func (v *viewer) onStop(message string) {
	if !v.leaving.Load() {
		v.markLost("stopCommunication: " + message)
	}
}

func (v *viewer) markLost(why string) {
	if v.state.CompareAndSwap(stateConnected, stateLost) {
		v.lostWhy.Store(&why)
	}
}

// pliIfNoKeyframe asks for a keyframe once, as a browser does when it has
// nothing to decode a while after connecting.
func (v *viewer) pliIfNoKeyframe() {
	ssrc := v.videoSSRC.Load()
	if v.firstKeyAt.Load() != 0 || ssrc == 0 || v.leaving.Load() {
		return
	}
	if v.pc.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: ssrc}}) == nil {
		v.plisSent.Add(1)
	}
}

func (v *viewer) onTrack(track *webrtc.TrackRemote, receiver *webrtc.RTPReceiver) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.closed {
		return
	}
	v.readers.Add(2)
	go v.read(track)
	go func() {
		defer v.readers.Done()
		buf := make([]byte, 1500)
		for {
			if _, _, err := receiver.Read(buf); err != nil {
				return
			}
		}
	}()
}

// read counts a track's packets until the connection ends. One buffer, no
// allocation per packet.
func (v *viewer) read(track *webrtc.TrackRemote) {
	defer v.readers.Done()
	mime := track.Codec().MimeType
	isVideo := track.Kind() == webrtc.RTPCodecTypeVideo
	counter, hist := &v.audio, v.r.audioLatency
	if isVideo {
		counter, hist = &v.video, v.r.videoLatency
		v.videoSSRC.Store(uint32(track.SSRC()))
	} else {
		v.audioSSRC.Store(uint32(track.SSRC()))
	}
	buf := make([]byte, 1500)
	for {
		n, _, err := track.Read(buf)
		if err != nil {
			return
		}
		seq, payload, ok := parseRTP(buf[:n])
		if !ok {
			continue
		}
		now := time.Now().UnixNano()
		counter.add(seq, n)
		if v.firstPacketAt.Load() == 0 {
			v.firstPacketAt.CompareAndSwap(0, now)
		}
		if isVideo && v.firstKeyAt.Load() == 0 && codec.IsKeyframe(mime, payload) {
			v.firstKeyAt.Store(now)
			if v.headerOnly {
				v.goHeaderOnly()
			}
		}
		// Frames sent before the viewer connected are the server's replay
		// of the group of pictures: their age is not forwarding latency.
		st, ok := frameStamp(mime, payload)
		if ok && isVideo && v.r.o.Simulcast {
			v.layers.note(st, now)
		}
		if ok && v.r.measuring.Load() && st.sentNanos >= v.connectedAt.Load() {
			hist.add(time.Duration(now - st.sentNanos))
			if isVideo {
				v.r.nodeVideo[v.node].add(time.Duration(now - st.sentNanos))
			}
		}
	}
}

// parseRTP reads what the viewer needs of an RTP packet: its sequence
// number and payload.
func parseRTP(b []byte) (seq uint16, payload []byte, ok bool) {
	if len(b) < 12 || b[0]>>6 != 2 {
		return 0, nil, false
	}
	off := 12 + 4*int(b[0]&0x0f)
	if b[0]&0x10 != 0 { // header extension
		if len(b) < off+4 {
			return 0, nil, false
		}
		off += 4 + 4*int(binary.BigEndian.Uint16(b[off+2:]))
	}
	end := len(b)
	if b[0]&0x20 != 0 { // padding
		end -= int(b[end-1])
	}
	if off > end {
		return 0, nil, false
	}
	return binary.BigEndian.Uint16(b[2:]), b[off:end], true
}

// leave ends the viewer's session (DELETE /room/view or the WHEP resource),
// then closes its WebSocket and peer connection and waits for its readers.
func (v *viewer) leave(ctx context.Context) error {
	v.leaving.Store(true)
	v.mu.Lock()
	if v.pliTimer != nil {
		v.pliTimer.Stop()
	}
	if v.stopHLS != nil {
		v.stopHLS()
	}
	if v.headerFrom.IsValid() {
		v.sock.setHeaderOnly(v.headerFrom, nil)
	}
	v.mu.Unlock()
	if v.sock != nil {
		v.sock.unclaim(v)
	}
	var err error
	switch {
	case v.location != "":
		err = v.c.deleteResource(ctx, v.location, v.email)
	case v.joined:
		err = v.c.leave(ctx, v.email)
	}
	if v.ws != nil {
		v.ws.close()
	}
	if v.pc != nil {
		_ = v.pc.Close()
	}
	v.mu.Lock()
	v.closed = true
	v.mu.Unlock()
	v.readers.Wait()
	if v.hlsHTTP != nil {
		v.hlsHTTP.CloseIdleConnections()
	}
	return err
}

// ViewerResult is one viewer's record, at the end of the measurement window.
type ViewerResult struct {
	Type            string   `json:"type"` // "viewer"
	Index           int      `json:"index"`
	Email           string   `json:"email"`
	State           string   `json:"state"`
	Error           string   `json:"error,omitempty"`
	AnswerMs        *float64 `json:"answerMs,omitempty"`
	ConnectedMs     *float64 `json:"connectedMs,omitempty"`
	FirstPacketMs   *float64 `json:"firstPacketMs,omitempty"`
	FirstKeyframeMs *float64 `json:"firstKeyframeMs,omitempty"`
	VideoReceived   uint64   `json:"videoReceived"`
	VideoLost       uint64   `json:"videoLost"`
	AudioReceived   uint64   `json:"audioReceived"`
	AudioLost       uint64   `json:"audioLost"`
	VideoLossPct    float64  `json:"videoLossPercent"`
	AudioLossPct    float64  `json:"audioLossPercent"`
	PLIsSent        uint64   `json:"plisSent"`
	// With -simulcast: the layer it was last sent (0 the lowest), its
	// switches, and the times from its connection to its first and last
	// switch. Capped: it was behind -cap.
	Layer         *int     `json:"layer,omitempty"`
	LayerSwitches uint64   `json:"layerSwitches,omitempty"`
	FirstSwitchMs *float64 `json:"firstSwitchMs,omitempty"`
	LastSwitchMs  *float64 `json:"lastSwitchMs,omitempty"`
	Capped        bool     `json:"capped,omitempty"`
	// HeaderOnly: with -sample-viewers, a viewer not sampled, whose packets
	// after its first keyframe were counted from their headers (no
	// forwarding latency, no payload read).
	HeaderOnly bool `json:"headerOnly,omitempty"`
}

// result snapshots the viewer; call it after join has returned.
func (v *viewer) result() ViewerResult {
	res := ViewerResult{Type: "viewer", Index: v.index, Email: v.email, State: stateNames[v.state.Load()],
		PLIsSent: v.plisSent.Load()}
	if v.err != nil {
		res.Error = v.err.Error()
	} else if why := v.lostWhy.Load(); why != nil {
		res.Error = *why
	}
	since := func(at *atomic.Int64) *float64 {
		t := at.Load()
		if t == 0 || v.joinStart.IsZero() {
			return nil
		}
		ms := float64(t-v.joinStart.UnixNano()) / 1e6
		return &ms
	}
	res.AnswerMs, res.ConnectedMs = since(&v.answerAt), since(&v.connectedAt)
	res.FirstPacketMs, res.FirstKeyframeMs = since(&v.firstPacketAt), since(&v.firstKeyAt)
	res.VideoReceived, res.VideoLost = v.video.lossCounts()
	res.AudioReceived, res.AudioLost = v.audio.lossCounts()
	res.VideoLossPct = lossPercent(res.VideoReceived, res.VideoLost)
	res.AudioLossPct = lossPercent(res.AudioReceived, res.AudioLost)
	res.Capped = v.capped()
	v.mu.Lock()
	res.HeaderOnly = v.headerFrom.IsValid()
	v.mu.Unlock()
	if v.r.o.Simulcast {
		if l := int(v.layers.layer.Load()); l >= 0 {
			res.Layer = &l
		}
		res.LayerSwitches = v.layers.switches.Load()
		fromConnect := func(at *atomic.Int64) *float64 {
			t, c := at.Load(), v.connectedAt.Load()
			if t == 0 || c == 0 {
				return nil
			}
			ms := float64(t-c) / 1e6
			return &ms
		}
		res.FirstSwitchMs, res.LastSwitchMs = fromConnect(&v.layers.firstSwitchAt), fromConnect(&v.layers.lastSwitchAt)
	}
	return res
}
