package sfu

import (
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/onair-live/onair/internal/leakcheck"
	"github.com/onair-live/onair/internal/media"
	"github.com/onair-live/onair/internal/sfu/udpbatch"
)

var (
	latencyViewers = flag.Int("sfu.latency-viewers", 0, "TestForwardingLatency: viewers (0: skip the test)")
	latencyFrames  = flag.Int("sfu.latency-frames", 300, "TestForwardingLatency: video frames sent, at 30 per second")
	latencyGap     = flag.Duration("sfu.latency-gap", 0, "TestForwardingLatency: time between a frame's packets at the presenter (0: back to back)")
)

// Through real pion peers on loopback, every packet reaches every viewer
// intact and in order, whether viewers' sends are batched (UDP GSO, one
// wakeup per frame) on their writer's sockets or on their own, or made one
// by one.
func TestForwardingIntact(t *testing.T) {
	for _, c := range []struct {
		name                 string
		perPacket, perViewer bool
	}{{"shared", false, false}, {"perViewer", false, true}, {"perPacket", true, false}} {
		t.Run(c.name, func(t *testing.T) {
			r := runForwarding(t, forwardRun{viewers: 3, frames: 45, perFrame: 6, perPacket: c.perPacket,
				socketPerViewer: c.perViewer})
			if r.lost != 0 {
				t.Errorf("%d packets lost", r.lost)
			}
			if !c.perPacket && r.sends.GSO && r.sends.GSOSends == 0 {
				t.Errorf("no GSO send: %+v", r.sends)
			}
			// Batched, viewers are sent every packet by the SFU's own SRTP
			// path; one by one, through pion.
			if want := map[bool]uint64{false: r.out, true: 0}[c.perPacket]; r.out == 0 || r.direct != want {
				t.Errorf("%d of %d packets sent directly, want %d", r.direct, r.out, want)
			}
			t.Logf("%s", r)
		})
	}
}

// TestForwardingLatency compares the forwarding latency of batched and
// one-by-one sends: go test ./internal/sfu -run ForwardingLatency -v
// -sfu.latency-viewers 100 [-sfu.latency-gap 1ms].
func TestForwardingLatency(t *testing.T) {
	if *latencyViewers == 0 {
		t.Skip("set -sfu.latency-viewers to run")
	}
	for _, perPacket := range []bool{true, false} {
		r := runForwarding(t, forwardRun{viewers: *latencyViewers, frames: *latencyFrames, perFrame: 5,
			gap: *latencyGap, perPacket: perPacket})
		t.Logf("perPacket=%v gap=%s: %s", perPacket, *latencyGap, r)
	}
}

type forwardRun struct {
	viewers         int
	frames          int           // video frames, at 30 per second, with an audio packet every 20 ms
	perFrame        int           // packets per frame: 1,200 bytes of payload but the last
	gap             time.Duration // between a frame's packets (0: back to back)
	perPacket       bool          // Config.SendPerPacket
	socketPerViewer bool          // Config.SocketPerViewer
	writers         int           // Config.Writers
	stalled         int           // viewers (the first) whose sockets stop being read once they get media
}

type forwardResult struct {
	packet, frame, audio []time.Duration // latencies, every viewer's
	lost                 int             // of the viewers not stalled
	sends                udpbatch.Stats  // the viewers' sockets' (their own or their writers')
	ports                int             // the local ports of the viewers' selected candidate pairs
	out, direct          uint64          // packets sent to viewers, and of them directly (srtpout.go)
	shards               []int           // viewers per writer shard
}

func (r forwardResult) String() string {
	q := func(d []time.Duration) string {
		if len(d) == 0 {
			return "none"
		}
		slices.Sort(d)
		at := func(f float64) time.Duration { return d[int(f*float64(len(d)-1))].Round(time.Microsecond) }
		return fmt.Sprintf("p50 %s p90 %s p99 %s max %s", at(0.5), at(0.9), at(0.99), at(1))
	}
	return fmt.Sprintf("video packet latency %s; frame completion latency %s; audio latency %s; lost %d; "+
		"%d datagrams in %d system calls (%d GSO)",
		q(r.packet), q(r.frame), q(r.audio), r.lost, r.sends.Datagrams, r.sends.Sends, r.sends.GSOSends)
}

// The synthetic media: each packet's payload says which it is and when it
// was sent, and its other bytes are a function of that, so that a viewer can
// check every byte.
const (
	mediaHeader = 16 // frame (4), index (2), last (1), pad (1), send time (8)
	videoSize   = 1200
	audioSize   = 160
)

func mediaPayload(b []byte, frame uint32, index uint16, last bool, sent time.Time) []byte {
	binary.BigEndian.PutUint32(b[0:], frame)
	binary.BigEndian.PutUint16(b[4:], index)
	b[6] = 0
	if last {
		b[6] = 1
	}
	b[7] = 0
	binary.BigEndian.PutUint64(b[8:], uint64(sent.UnixNano()))
	for i := mediaHeader; i < len(b); i++ {
		b[i] = byte(frame*7 + uint32(index)*13 + uint32(i))
	}
	return b
}

func checkPayload(b []byte) (frame uint32, index uint16, last bool, sent time.Time, ok bool) {
	if len(b) < mediaHeader {
		return 0, 0, false, time.Time{}, false
	}
	frame, index, last = binary.BigEndian.Uint32(b[0:]), binary.BigEndian.Uint16(b[4:]), b[6] == 1
	sent = time.Unix(0, int64(binary.BigEndian.Uint64(b[8:])))
	for i := mediaHeader; i < len(b); i++ {
		if b[i] != byte(frame*7+uint32(index)*13+uint32(i)) {
			return frame, index, last, sent, false
		}
	}
	return frame, index, last, sent, true
}

func loopbackSettings() webrtc.SettingEngine {
	se := webrtc.SettingEngine{}
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetIncludeLoopbackCandidate(true)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	return se
}

func clientAPI(t testing.TB) *webrtc.API {
	m := &webrtc.MediaEngine{}
	if err := m.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithSettingEngine(loopbackSettings()))
}

// recvOnly adds a receive-only transceiver of each kind to pc.
func recvOnly(t testing.TB, pc *webrtc.PeerConnection, kinds ...webrtc.RTPCodecType) {
	t.Helper()
	for _, k := range kinds {
		if _, err := pc.AddTransceiverFromKind(k, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			t.Fatal(err)
		}
	}
}

// gatheredOffer makes pc's offer (with opts), sets it, and returns it with
// every candidate gathered.
func gatheredOffer(t testing.TB, pc *webrtc.PeerConnection, opts *webrtc.OfferOptions) string {
	t.Helper()
	offer, err := pc.CreateOffer(opts)
	if err != nil {
		t.Fatal(err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	<-gathered
	return pc.LocalDescription().SDP
}

// negotiate offers pc's media to an endpoint and applies its answer.
func negotiate(ctx context.Context, t testing.TB, pc *webrtc.PeerConnection, ep media.Endpoint) {
	t.Helper()
	answer, err := ep.ProcessOfferGathered(ctx, gatheredOffer(t, pc, nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		t.Fatal(err)
	}
}

// viewerLog is what one viewer received of the measured media.
type viewerLog struct {
	mu            sync.Mutex
	warm          bool // got a packet
	video         map[[2]uint32]bool
	bad           int
	lastSeq       map[uint32]uint16 // per SSRC
	disordered    int
	firstDisorder string
	packet        []time.Duration
	frame         []time.Duration
	audio         []time.Duration
}

func (v *viewerLog) read(track *webrtc.TrackRemote, measureFrom *sync.Map) {
	buf := make([]byte, 1500)
	var p rtp.Packet
	for {
		n, _, err := track.Read(buf)
		if err != nil {
			return
		}
		now := time.Now()
		if p.Unmarshal(buf[:n]) != nil {
			continue
		}
		frame, index, last, sent, ok := checkPayload(p.Payload)
		v.mu.Lock()
		v.warm = true
		if prev, seen := v.lastSeq[uint32(p.SSRC)]; seen && !seqNewer(p.SequenceNumber, prev) {
			v.disordered++
			if v.firstDisorder == "" {
				v.firstDisorder = fmt.Sprintf("%s seq %d after %d", track.Kind(), p.SequenceNumber, prev)
			}
		}
		v.lastSeq[uint32(p.SSRC)] = p.SequenceNumber
		from, _ := measureFrom.Load("from")
		if from != nil && frame >= from.(uint32) {
			switch {
			case !ok:
				v.bad++
			case track.Kind() == webrtc.RTPCodecTypeAudio:
				v.audio = append(v.audio, now.Sub(sent))
			default:
				v.video[[2]uint32{frame, uint32(index)}] = true
				v.packet = append(v.packet, now.Sub(sent))
				if last {
					v.frame = append(v.frame, now.Sub(sent))
				}
			}
		}
		v.mu.Unlock()
	}
}

// runForwarding runs a presenter and viewers through a real engine and
// measures what the viewers receive.
func runForwarding(t testing.TB, run forwardRun) forwardResult {
	t.Helper()
	leakcheck.Check(t) // when the test ends, after the closes below
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	eng, mp := newLoopbackPipeline(t, Config{SendPerPacket: run.perPacket, Writers: run.writers,
		SocketPerViewer: run.socketPerViewer}, "forwarding")
	api := clientAPI(t)
	var pcs []*webrtc.PeerConnection
	defer func() {
		for _, pc := range pcs {
			_ = pc.Close()
		}
		_ = eng.Close()
	}()

	// The presenter.
	video, _ := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8}, "video", "presenter")
	audio, _ := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "audio", "presenter")
	pub, _ := startTestPresenter(ctx, t, api, mp, video, audio)
	pcs = append(pcs, pub)

	// The viewers.
	var measureFrom sync.Map
	logs := make([]*viewerLog, run.viewers)
	eps := make([]*Endpoint, run.viewers)
	stalls := make([]*stallNet, run.stalled)
	for i := range logs {
		v := &viewerLog{video: map[[2]uint32]bool{}, lastSeq: map[uint32]uint16{}}
		logs[i] = v
		vapi := api
		if i < run.stalled {
			stalls[i] = newStallNet(t)
			vapi = stalls[i].api(t)
		}
		pc, err := vapi.NewPeerConnection(webrtc.Configuration{})
		if err != nil {
			t.Fatal(err)
		}
		pcs = append(pcs, pc)
		recvOnly(t, pc, webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio)
		pc.OnTrack(func(tr *webrtc.TrackRemote, rc *webrtc.RTPReceiver) {
			go drainRTCP(rc.Read)
			v.read(tr, &measureFrom)
		})
		ep, err := mp.NewEndpoint(media.Subscriber, fmt.Sprintf("viewer%d", i), media.Events{})
		if err != nil {
			t.Fatal(err)
		}
		eps[i] = ep.(*Endpoint)
		negotiate(ctx, t, pc, ep)
	}

	// Send: warm up until every viewer gets packets, then the measured frames.
	var seq [2]uint16
	buf := make([]byte, videoSize)
	send := func(tr *webrtc.TrackLocalStaticRTP, k int, marker bool, ts uint32, payload []byte) {
		seq[k]++
		if err := tr.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, Marker: marker, SequenceNumber: seq[k],
			Timestamp: ts}, Payload: payload}); err != nil {
			t.Error(err)
		}
	}
	frameTick := time.Second / 30
	start := time.Now()
	nextAudio := start
	var audioN uint32
	measured, warm := 0, false
	warmDeadline := time.Now().Add(30 * time.Second)
	for frame := uint32(1); measured < run.frames; frame++ {
		if !warm {
			warm = true
			for _, v := range logs {
				v.mu.Lock()
				warm = warm && v.warm
				v.mu.Unlock()
			}
			if warm {
				measureFrom.Store("from", frame)
				for _, sn := range stalls {
					sn.stall()
				}
			} else if time.Now().After(warmDeadline) {
				t.Fatal("viewers got nothing within 30s")
			}
		}
		if warm {
			measured++
		}
		due := start.Add(time.Duration(frame) * frameTick)
		time.Sleep(time.Until(due))
		for ; !nextAudio.After(time.Now()); nextAudio = nextAudio.Add(20 * time.Millisecond) {
			audioN++
			send(audio, 1, false, audioN*960, mediaPayload(buf[:audioSize], frame, uint16(audioN), false, time.Now()))
		}
		for i := 0; i < run.perFrame; i++ {
			size, last := videoSize, i == run.perFrame-1
			if last {
				size = 500 + int(frame%7)*100
			}
			if i > 0 && run.gap > 0 {
				time.Sleep(run.gap)
			}
			send(video, 0, last, frame*3000, mediaPayload(buf[:size], frame, uint16(i), last, time.Now()))
		}
	}
	time.Sleep(300 * time.Millisecond) // the last frames in flight

	var r forwardResult
	for _, ep := range eps {
		if b := ep.sub.batch; b != nil {
			st := b.Stats()
			r.sends.Datagrams += st.Datagrams
			r.sends.Sends += st.Sends
			r.sends.GSOSends += st.GSOSends
			r.sends.GSO = r.sends.GSO || st.GSO
		}
		st := ep.Stats()
		r.out += st.PacketsOut
		r.direct += st.PacketsDirect
	}
	r.shards = eng.writers.loads()
	if n, st := eng.writers.sockets(); n > 0 {
		r.sends = st
	}
	r.ports = localPorts(t, eps)
	from, _ := measureFrom.Load("from")
	for i, v := range logs[run.stalled:] {
		i += run.stalled
		v.mu.Lock()
		for f := from.(uint32); f < from.(uint32)+uint32(run.frames); f++ {
			for k := 0; k < run.perFrame; k++ {
				if !v.video[[2]uint32{f, uint32(k)}] {
					r.lost++
				}
			}
		}
		if v.bad > 0 || v.disordered > 0 {
			t.Errorf("perPacket=%v viewer %d: %d packets with wrong bytes, %d out of order (first: %s)",
				run.perPacket, i, v.bad, v.disordered, v.firstDisorder)
		}
		r.packet = append(r.packet, v.packet...)
		r.frame = append(r.frame, v.frame...)
		r.audio = append(r.audio, v.audio...)
		v.mu.Unlock()
	}
	return r
}

// localPorts counts the local ports of the viewers' selected candidate
// pairs: the sockets they are sent from.
func localPorts(t testing.TB, eps []*Endpoint) int {
	t.Helper()
	ports := map[uint16]bool{}
	for _, ep := range eps {
		pair, err := ep.sub.ice.Load().GetSelectedCandidatePair()
		if err != nil || pair == nil {
			t.Fatalf("viewer %s has no selected candidate pair: %v", ep.name, err)
		}
		ports[pair.Local.Port] = true
	}
	return len(ports)
}

// newLoopbackPipeline starts an engine that offers 127.0.0.1 only (cfg
// gives the rest; no logs unless it names a Logger) and a pipeline named
// name on it. The caller closes the engine.
func newLoopbackPipeline(t testing.TB, cfg Config, name string) (*Engine, media.Pipeline) {
	t.Helper()
	cfg.Loopback = true
	cfg.AllowedIPs = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	eng, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	mp, err := eng.NewPipeline(name)
	if err != nil {
		_ = eng.Close()
		t.Fatal(err)
	}
	return eng, mp
}

// startTestPresenter publishes tracks to mp from a new pion peer of api,
// negotiated with the pipeline's presenter endpoint. The caller closes the
// peer.
func startTestPresenter(ctx context.Context, t testing.TB, api *webrtc.API, mp media.Pipeline,
	tracks ...webrtc.TrackLocal) (*webrtc.PeerConnection, media.Endpoint) {
	t.Helper()
	pub, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tr := range tracks {
		s, err := pub.AddTrack(tr)
		if err != nil {
			_ = pub.Close()
			t.Fatal(err)
		}
		go drainRTCP(s.Read)
	}
	ep, err := mp.NewEndpoint(media.Publisher, "presenter", media.Events{})
	if err != nil {
		_ = pub.Close()
		t.Fatal(err)
	}
	negotiate(ctx, t, pub, ep)
	return pub, ep
}
