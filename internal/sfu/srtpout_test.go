package sfu

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/dtls/v3"
	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/nack"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"

	"github.com/onair-live/onair/internal/leakcheck"
	"github.com/onair-live/onair/internal/media"
	"github.com/onair-live/onair/internal/sfu/udpbatch"
)

// The SFU's own send path (srtpout.go), through real pion viewers on
// loopback: a viewer declaring header encryption (cryptex), two that do
// not (AES-GCM, sealed by the SFU's own sealer, and AES-CM, by pion's
// context), and one that wants to be the DTLS server (which keeps pion's path)
// get every video and audio packet intact, their header extensions too; the
// packets each viewer loses once are recovered by NACK, across a wrap of the
// sequence numbers (the SRTP rollover counter); a PLI still reaches the SFU;
// the sender reports count what was sent; an ICE restart moves the path to
// the new sockets.
func TestDirectPath(t *testing.T) {
	leakcheck.Check(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	eng, mp := newLoopbackPipeline(t, Config{}, "direct")
	pres := newDirectPresenter(ctx, t, mp)
	defer func() { _ = pres.pc.Close(); _ = eng.Close() }()

	viewers := []*directViewer{
		newDirectViewer(ctx, t, mp, "cryptex", webrtc.Configuration{}, dtls.SRTP_AEAD_AES_128_GCM, false),
		newDirectViewer(ctx, t, mp, "gcm", webrtc.Configuration{
			RTPHeaderEncryptionPolicy: webrtc.RTPHeaderEncryptionPolicyDisable}, dtls.SRTP_AEAD_AES_128_GCM, false),
		newDirectViewer(ctx, t, mp, "plain", webrtc.Configuration{
			RTPHeaderEncryptionPolicy: webrtc.RTPHeaderEncryptionPolicyDisable}, dtls.SRTP_AES128_CM_HMAC_SHA1_80, false),
		newDirectViewer(ctx, t, mp, "passive", webrtc.Configuration{}, dtls.SRTP_AEAD_AES_128_GCM, true),
	}
	for _, v := range viewers {
		defer func() { _ = v.pc.Close(); _ = v.mux.Close() }()
	}
	waitFor(t, func() bool { // connected: the path is chosen
		for _, v := range viewers {
			if v.ep.Stats().State != "connected" {
				return false
			}
		}
		return true
	})

	pres.send(t, 45)
	restarted := viewers[0]
	waitFor(t, func() bool { return restarted.complete(pres) }) // audio lost in a restart stays lost
	restarted.restartICE(ctx, t)
	pres.send(t, 45)

	for _, v := range viewers {
		v.check(t, pres)
	}
	if st := viewers[0].ep.Stats(); st.PLIs != 0 {
		t.Fatalf("PLIs before any was sent: %d", st.PLIs)
	}
	if err := viewers[0].pc.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: viewers[0].videoSSRC()}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return viewers[0].ep.Stats().PLIs == 1 })
}

// directPresenter sends VP8 and Opus with the audio level extension, its
// video sequence numbers about to wrap.
type directPresenter struct {
	pc           *webrtc.PeerConnection
	video, audio *webrtc.TrackLocalStaticRTP
	levelID      uint8
	frame        uint32
	audioN       uint32
	seq          [2]uint16
	first        uint16 // the first video sequence number
}

const audioLevelURI = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"

func directAPI(t testing.TB, ir *interceptor.Registry) *webrtc.API {
	m := &webrtc.MediaEngine{}
	if err := m.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	if err := m.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: audioLevelURI}, webrtc.RTPCodecTypeAudio); err != nil {
		t.Fatal(err)
	}
	if ir == nil {
		ir = &interceptor.Registry{}
	}
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir),
		webrtc.WithSettingEngine(loopbackSettings()))
}

func newDirectPresenter(ctx context.Context, t testing.TB, mp media.Pipeline) *directPresenter {
	pc, err := directAPI(t, nil).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	p := &directPresenter{pc: pc, seq: [2]uint16{65400, 1000}, first: 65401}
	p.video, _ = webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8}, "video", "presenter")
	p.audio, _ = webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "audio", "presenter")
	var audioSender *webrtc.RTPSender
	for _, tr := range []*webrtc.TrackLocalStaticRTP{p.video, p.audio} {
		s, err := pc.AddTrack(tr)
		if err != nil {
			t.Fatal(err)
		}
		if tr == p.audio {
			audioSender = s
		}
		go drainRTCP(s.Read)
	}
	ep, err := mp.NewEndpoint(media.Publisher, "presenter", media.Events{})
	if err != nil {
		t.Fatal(err)
	}
	negotiate(ctx, t, pc, ep)
	for _, h := range audioSender.GetParameters().HeaderExtensions {
		if h.URI == audioLevelURI {
			p.levelID = uint8(h.ID)
		}
	}
	if p.levelID == 0 {
		t.Fatal("the audio level extension was not negotiated")
	}
	return p
}

// send sends frames video frames at 30 a second, of 6 packets, and an audio
// packet every 20 ms.
func (p *directPresenter) send(t *testing.T, frames int) {
	buf := make([]byte, videoSize)
	tick := time.NewTicker(time.Second / 30)
	defer tick.Stop()
	for i := 0; i < frames; i++ {
		<-tick.C
		p.frame++
		for k := 0; k < 6; k++ {
			size, last := videoSize, k == 5
			if last {
				size = 300 + int(p.frame%9)*100
			}
			p.seq[0]++
			h := rtp.Header{Version: 2, Marker: last, SequenceNumber: p.seq[0], Timestamp: p.frame * 3000}
			if err := p.video.WriteRTP(&rtp.Packet{Header: h, Payload: mediaPayload(buf[:size], p.frame, uint16(k), last, time.Now())}); err != nil {
				t.Error(err)
			}
		}
		if p.frame%3 != 0 {
			continue
		}
		for a := 0; a < 2; a++ {
			p.audioN++
			p.seq[1]++
			h := rtp.Header{Version: 2, SequenceNumber: p.seq[1], Timestamp: p.audioN * 960}
			_ = h.SetExtension(p.levelID, []byte{byte(p.audioN % 127)})
			if err := p.audio.WriteRTP(&rtp.Packet{Header: h, Payload: mediaPayload(buf[:audioSize], p.audioN, 0, false, time.Now())}); err != nil {
				t.Error(err)
			}
		}
	}
}

// directViewer is a pion viewer whose socket loses some video packets once,
// and which counts what arrived on the wire.
type directViewer struct {
	name string
	pc   *webrtc.PeerConnection
	mux  *ice.UDPMuxDefault
	conn *lossyConn
	ep   *Endpoint

	mu      sync.Mutex
	video   map[[2]uint32]bool // frame, index
	audio   map[uint32]bool
	bad     []string
	tag     int                  // the SRTP profile's tag length
	wire    map[uint32][2]uint64 // per SSRC: packets and payload octets, losses included
	wireLen uint64               // RTP bytes, losses included
	dropped map[uint16]bool
	srs     map[uint32][]rtcp.SenderReport
	tracks  map[webrtc.RTPCodecType]*webrtc.TrackRemote
	levelID uint8
}

// dropOnce are the video sequence numbers a viewer loses once: around the
// wrap, so that a packet sent before it is asked for after it.
var dropOnce = []uint16{65420, 65534, 65535, 0, 2, 300}

func newDirectViewer(ctx context.Context, t testing.TB, mp media.Pipeline, name string, cfg webrtc.Configuration,
	profile dtls.SRTPProtectionProfile, passive bool) *directViewer {
	v := &directViewer{name: name, video: map[[2]uint32]bool{}, audio: map[uint32]bool{}, wire: map[uint32][2]uint64{},
		dropped: map[uint16]bool{}, srs: map[uint32][]rtcp.SenderReport{}, tracks: map[webrtc.RTPCodecType]*webrtc.TrackRemote{}}
	ir := &interceptor.Registry{}
	gen, err := nack.NewGeneratorInterceptor(nack.GeneratorInterval(20 * time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	ir.Add(gen)
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	v.conn = &lossyConn{PacketConn: conn, v: v}
	v.mux = ice.NewUDPMuxDefault(ice.UDPMuxParams{UDPConn: v.conn})
	se := loopbackSettings()
	se.SetICEUDPMux(v.mux)
	se.SetSRTPProtectionProfiles(profile)
	v.tag = map[dtls.SRTPProtectionProfile]int{dtls.SRTP_AEAD_AES_128_GCM: 16, dtls.SRTP_AES128_CM_HMAC_SHA1_80: 10}[profile]
	m := &webrtc.MediaEngine{}
	if err := m.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	if err := m.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: audioLevelURI}, webrtc.RTPCodecTypeAudio); err != nil {
		t.Fatal(err)
	}
	pc, err := webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir),
		webrtc.WithSettingEngine(se)).NewPeerConnection(cfg)
	if err != nil {
		t.Fatal(err)
	}
	v.pc = pc
	recvOnly(t, pc, webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio)
	pc.OnTrack(func(tr *webrtc.TrackRemote, rc *webrtc.RTPReceiver) {
		v.mu.Lock()
		v.tracks[tr.Kind()] = tr
		for _, h := range rc.GetParameters().HeaderExtensions {
			if h.URI == audioLevelURI && tr.Kind() == webrtc.RTPCodecTypeAudio {
				v.levelID = uint8(h.ID)
			}
		}
		v.mu.Unlock()
		go v.readRTCP(rc)
		v.read(tr)
	})
	ep, err := mp.NewEndpoint(media.Subscriber, name, media.Events{})
	if err != nil {
		t.Fatal(err)
	}
	v.ep = ep.(*Endpoint)
	sdpOffer := gatheredOffer(t, pc, nil)
	if passive { // the viewer wants to be the DTLS server
		sdpOffer = strings.ReplaceAll(sdpOffer, "a=setup:actpass", "a=setup:passive")
	}
	answer, err := ep.ProcessOfferGathered(ctx, sdpOffer)
	if err != nil {
		t.Fatal(err)
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		t.Fatal(err)
	}
	return v
}

func (v *directViewer) videoSSRC() uint32 {
	v.mu.Lock()
	defer v.mu.Unlock()
	return uint32(v.tracks[webrtc.RTPCodecTypeVideo].SSRC())
}

func (v *directViewer) read(tr *webrtc.TrackRemote) {
	for {
		p, _, err := tr.ReadRTP()
		if err != nil {
			return
		}
		n, idx, _, _, ok := checkPayload(p.Payload)
		v.mu.Lock()
		switch {
		case !ok:
			v.bad = append(v.bad, fmt.Sprintf("%s seq %d: wrong bytes", tr.Kind(), p.SequenceNumber))
		case tr.Kind() == webrtc.RTPCodecTypeVideo:
			v.video[[2]uint32{n, uint32(idx)}] = true
		default:
			if lv := p.GetExtension(v.levelID); len(lv) != 1 || lv[0] != byte(n%127) {
				v.bad = append(v.bad, fmt.Sprintf("audio %d: level extension %v", n, lv))
			}
			v.audio[n] = true
		}
		v.mu.Unlock()
	}
}

func (v *directViewer) readRTCP(rc *webrtc.RTPReceiver) {
	for {
		pkts, _, err := rc.ReadRTCP()
		if err != nil {
			return
		}
		v.mu.Lock()
		for _, p := range pkts {
			if sr, ok := p.(*rtcp.SenderReport); ok {
				v.srs[sr.SSRC] = append(v.srs[sr.SSRC], *sr)
			}
		}
		v.mu.Unlock()
	}
}

// restartICE restarts ICE from the viewer, as a WHEP client's PATCH does.
func (v *directViewer) restartICE(ctx context.Context, t *testing.T) {
	before := v.ep.sub.direct.packets.Load()
	route := func() *udpbatch.Conn {
		o := v.ep.sub.direct
		o.mu.Lock()
		defer o.mu.Unlock()
		return o.route.conn
	}
	old := route()
	var sd sdp.SessionDescription
	if err := sd.UnmarshalString(gatheredOffer(t, v.pc, &webrtc.OfferOptions{ICERestart: true})); err != nil {
		t.Fatal(err)
	}
	ufrag, _ := sd.MediaDescriptions[0].Attribute("ice-ufrag")
	pwd, _ := sd.MediaDescriptions[0].Attribute("ice-pwd")
	answer, err := v.ep.RestartICE(ctx, ufrag, pwd)
	if err != nil {
		t.Fatal(err)
	}
	if err := v.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		t.Fatal(err)
	}
	if before == 0 {
		t.Fatalf("%s: nothing sent directly before the restart", v.name)
	}
	// The path follows the new pair, from a socket gathered for it (with a
	// socket per viewer), once the viewer has selected it too (before, what
	// is sent may be lost, on any path).
	ice := v.pc.GetTransceivers()[0].Receiver().Transport().ICETransport()
	// On its shard's socket, the viewer's new candidate is on the same
	// socket as before.
	shared := v.ep.sub.home != nil
	waitFor(t, func() bool {
		c := route()
		if c == nil || c == old && !shared {
			return false
		}
		pair, err := ice.GetSelectedCandidatePair()
		return err == nil && pair != nil && int(pair.Remote.Port) == c.LocalAddr().(*net.UDPAddr).Port
	})
}

// complete tells whether the viewer has every packet the presenter sent.
func (v *directViewer) complete(pres *directPresenter) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	return len(v.video) == int(pres.frame)*6 && len(v.audio) == int(pres.audioN)
}

// check waits for every packet the presenter sent, then for a sender
// report of each track counting what the viewer was sent.
func (v *directViewer) check(t *testing.T, pres *directPresenter) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !v.complete(pres) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	v.mu.Lock()
	if len(v.video) != int(pres.frame)*6 || len(v.audio) != int(pres.audioN) || len(v.bad) > 0 {
		t.Errorf("%s: got %d of %d video and %d of %d audio packets; %d bad %v", v.name,
			len(v.video), pres.frame*6, len(v.audio), pres.audioN, len(v.bad), v.bad)
	}
	sent := 0 // of dropOnce
	for _, seq := range dropOnce {
		if seq-pres.first < pres.seq[0]-pres.first+1 {
			sent++
		}
	}
	if len(v.dropped) != sent {
		t.Errorf("%s: lost %d packets, want %d", v.name, len(v.dropped), sent)
	}
	v.mu.Unlock()

	st := v.ep.Stats()
	wantDirect := st.PacketsOut
	if v.name == "passive" {
		wantDirect = 0
	}
	if st.NACKs < uint64(sent) || v.name != "viewer" && st.PacketsDirect != wantDirect {
		t.Errorf("%s: %d of %d packets sent directly, want %d; %d NACKs", v.name, st.PacketsDirect, st.PacketsOut, wantDirect, st.NACKs)
	}
	var reported string
	for i := 0; i < 50; i++ { // reports are sent every second
		v.mu.Lock()
		var packets, bytes uint64
		for _, w := range v.wire {
			packets += w[0]
		}
		bytes = v.wireLen
		reported = v.reportsMatch()
		v.mu.Unlock()
		if reported == "" && packets == st.PacketsOut && bytes == st.BytesOut {
			return
		}
		time.Sleep(100 * time.Millisecond)
		st = v.ep.Stats()
	}
	t.Errorf("%s: sent %d packets, %d bytes; sender reports: %s", v.name, st.PacketsOut, st.BytesOut, reported)
}

// reportsMatch tells how the last sender report of each track differs from
// what arrived, and whether the counts ever went back.
func (v *directViewer) reportsMatch() string {
	var out []string
	for _, tr := range v.tracks {
		ssrc := uint32(tr.SSRC())
		srs, w := v.srs[ssrc], v.wire[ssrc]
		if len(srs) == 0 {
			out = append(out, fmt.Sprintf("%s: none", tr.Kind()))
			continue
		}
		for i := 1; i < len(srs); i++ {
			if srs[i].PacketCount < srs[i-1].PacketCount || srs[i].RTPTime-srs[i-1].RTPTime > 1<<31 {
				out = append(out, fmt.Sprintf("%s: report %d went back", tr.Kind(), i))
			}
		}
		last := srs[len(srs)-1]
		if uint64(last.PacketCount) != w[0] || uint64(last.OctetCount) != w[1] {
			out = append(out, fmt.Sprintf("%s: %d packets %d octets, arrived %d, %d",
				tr.Kind(), last.PacketCount, last.OctetCount, w[0], w[1]))
		}
	}
	return strings.Join(out, "; ")
}

// lossyConn is a viewer's socket, which loses each of dropOnce once.
type lossyConn struct {
	net.PacketConn
	v    *directViewer
	sink atomic.Bool // lose every RTP packet (a benchmark's viewer)
}

func (c *lossyConn) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		n, addr, err := c.PacketConn.ReadFrom(b)
		if err == nil && c.sink.Load() && n > 1 && b[0]>>6 == 2 && (b[1]&0x7f < 64 || b[1]&0x7f >= 96) {
			continue // RTP (RTCP's types are 64 to 95 once the marker bit is masked)
		}
		if err != nil || !c.arrived(b[:n]) {
			return n, addr, err
		}
	}
}

// arrived counts an SRTP packet and tells whether to lose it.
func (c *lossyConn) arrived(b []byte) (lose bool) {
	if len(b) < 12 || b[0]>>6 != 2 || b[1]&0x7f >= 64 && b[1]&0x7f < 96 {
		return false // not RTP
	}
	head := 12 + 4*int(b[0]&0x0f)
	if b[0]&0x10 != 0 && len(b) >= head+4 {
		head += 4 + 4*int(binary.BigEndian.Uint16(b[head+2:]))
	}
	ssrc, seq := binary.BigEndian.Uint32(b[8:]), binary.BigEndian.Uint16(b[2:])
	v := c.v
	v.mu.Lock()
	defer v.mu.Unlock()
	w := v.wire[ssrc]
	v.wire[ssrc] = [2]uint64{w[0] + 1, w[1] + uint64(len(b)-head-v.tag)}
	v.wireLen += uint64(len(b) - v.tag)
	if b[1]&0x7f != 96 || !slices.Contains(dropOnce, seq) || v.dropped[seq] {
		return false
	}
	v.dropped[seq] = true
	return true
}

// When the selected pair moves where the direct path cannot send (a relay
// on the SFU's side), pion's path takes over and the viewer keeps getting
// every packet, as long as no sequence number has wrapped; after a wrap,
// the viewer is failed (to reconnect) rather than sent what it cannot
// decrypt.
func TestDirectPathFallsBackToPion(t *testing.T) {
	for _, wrapped := range []bool{false, true} {
		t.Run(fmt.Sprintf("wrapped=%v", wrapped), func(t *testing.T) {
			leakcheck.Check(t)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			eng, mp := newLoopbackPipeline(t, Config{}, "fallback")
			pres := newDirectPresenter(ctx, t, mp)
			if !wrapped { // 101 to 460: one loss (300), after the fallback
				pres.seq[0], pres.first = 100, 101
			}
			v := newDirectViewer(ctx, t, mp, "viewer", webrtc.Configuration{}, dtls.SRTP_AEAD_AES_128_GCM, false)
			defer func() { _ = v.pc.Close(); _ = v.mux.Close(); _ = pres.pc.Close(); _ = eng.Close() }()
			waitFor(t, func() bool { return v.ep.Stats().State == "connected" })
			pres.send(t, 30)
			waitFor(t, func() bool { return v.complete(pres) })

			relay := &webrtc.ICECandidatePair{
				Local:  &webrtc.ICECandidate{Typ: webrtc.ICECandidateTypeRelay, Protocol: webrtc.ICEProtocolUDP, Address: "127.0.0.1", Port: 3478},
				Remote: &webrtc.ICECandidate{Typ: webrtc.ICECandidateTypeHost, Protocol: webrtc.ICEProtocolUDP, Address: "127.0.0.1", Port: 9},
			}
			v.ep.sub.direct.follow(relay)
			failed := func() bool {
				v.ep.mu.Lock()
				defer v.ep.mu.Unlock()
				return v.ep.failed
			}
			if failed() != wrapped {
				t.Fatalf("failed = %v after the pair moved to a relay", failed())
			}
			if wrapped {
				return
			}
			direct := v.ep.Stats().PacketsDirect
			pres.send(t, 30)
			v.check(t, pres)
			if st := v.ep.Stats(); st.PacketsDirect != direct || st.PacketsOut <= direct {
				t.Errorf("after the fallback: %d of %d packets sent directly, want %d", st.PacketsDirect, st.PacketsOut, direct)
			}
		})
	}
}
