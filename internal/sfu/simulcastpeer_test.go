package sfu

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/transport/v5/stdnet"
	"github.com/pion/webrtc/v4"

	"github.com/onair-live/onair/internal/media"
	"github.com/onair-live/onair/internal/netcap"
)

// The test peers of the simulcast tests: a presenter that sends three VP8
// layers by RID (l, m, h) and Opus, as a browser or a WHIP encoder does, and
// viewers that log which layer each packet is of, optionally behind a
// bottleneck that drops datagrams over a rate at their socket.

var scRIDs = [3]string{"l", "m", "h"}

// scPayload is a packet of frame n of layer: a VP8 payload descriptor (S
// set on the frame's first packet) and VP8 frame tag (P = 0 on a
// keyframe), then the layer, the keyframe flag, the frame number, the
// packet's index and the frame's packet count.
func scPayload(b []byte, layer int, n uint32, index, count int, key bool) []byte {
	b[0] = 0x00
	if index == 0 {
		b[0] = 0x10
	}
	b[1] = 0x11
	b[3] = 0
	if key {
		b[1], b[3] = 0x10, 1
	}
	b[2] = byte(layer)
	binary.BigEndian.PutUint32(b[4:], n)
	binary.BigEndian.PutUint16(b[8:], uint16(index))
	b[10] = byte(count)
	return b
}

type scPublisher struct {
	pc       *webrtc.PeerConnection
	layers   [3]*webrtc.TrackLocalStaticRTP
	audio    *webrtc.TrackLocalStaticRTP
	sender   *webrtc.RTPSender
	rates    [3]int // bit/s of each layer
	forceKey [3]atomic.Bool
	plis     [3]atomic.Uint64
	stop     chan struct{}
	wg       sync.WaitGroup
}

func newSCPublisher(t testing.TB, rates [3]int) *scPublisher {
	t.Helper()
	m := &webrtc.MediaEngine{}
	if err := m.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	ir := &interceptor.Registry{}
	if err := webrtc.RegisterDefaultInterceptors(m, ir); err != nil {
		t.Fatal(err)
	}
	api := webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir),
		webrtc.WithSettingEngine(loopbackSettings()))
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	p := &scPublisher{pc: pc, rates: rates, stop: make(chan struct{})}
	for i, rid := range scRIDs {
		p.layers[i], err = webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8},
			"video", "presenter", webrtc.WithRTPStreamID(rid))
		if err != nil {
			t.Fatal(err)
		}
	}
	if p.sender, err = pc.AddTrack(p.layers[0]); err != nil {
		t.Fatal(err)
	}
	for _, l := range p.layers[1:] {
		if err := p.sender.AddEncoding(l); err != nil {
			t.Fatal(err)
		}
	}
	p.audio, _ = webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "audio", "presenter")
	as, err := pc.AddTrack(p.audio)
	if err != nil {
		t.Fatal(err)
	}
	go drainRTCP(as.Read)
	for i, rid := range scRIDs {
		i, rid := i, rid
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			for {
				pkts, _, err := p.sender.ReadSimulcastRTCP(rid)
				if err != nil {
					return
				}
				for _, pkt := range pkts {
					switch pkt.(type) {
					case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
						p.plis[i].Add(1)
						p.forceKey[i].Store(true)
					}
				}
			}
		}()
	}
	return p
}

// start sends 30 frames a second on each layer, and audio, until close.
func (p *scPublisher) start(t testing.TB) {
	var midID, ridID uint8
	for _, e := range p.sender.GetParameters().HeaderExtensions {
		switch e.URI {
		case sdp.SDESMidURI:
			midID = uint8(e.ID)
		case sdp.SDESRTPStreamIDURI:
			ridID = uint8(e.ID)
		}
	}
	var mid string
	for _, tr := range p.pc.GetTransceivers() {
		if tr.Sender() == p.sender {
			mid = tr.Mid()
		}
	}
	if midID == 0 || ridID == 0 || mid == "" {
		t.Fatalf("no mid/rid extension negotiated (%d, %d, %q)", midID, ridID, mid)
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		tick := time.NewTicker(time.Second / 30)
		defer tick.Stop()
		var seq [4]uint16
		for i := range seq {
			seq[i] = uint16(60000 + 1700*i) // wraps soon, and differs by layer
		}
		buf := make([]byte, 1200)
		for n := uint32(0); ; n++ {
			select {
			case <-p.stop:
				return
			case <-tick.C:
			}
			for l := range p.layers {
				if p.rates[l] == 0 {
					continue // a layer the presenter does not send
				}
				key := n == 0 || p.forceKey[l].Swap(false)
				size := p.rates[l] / 8 / 30
				if key {
					size *= 2
				}
				packets := max(1, (size+1099)/1100)
				for i := 0; i < packets; i++ {
					h := rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: seq[l],
						Timestamp: uint32(l)*777777 + n*3000, Marker: i == packets-1}
					_ = h.SetExtension(midID, []byte(mid))
					_ = h.SetExtension(ridID, []byte(scRIDs[l]))
					seq[l]++
					_ = p.layers[l].WriteRTP(&rtp.Packet{Header: h, Payload: scPayload(buf[:min(1100, size)+11], l, n, i, packets, key)})
				}
			}
			for k := 0; k < 2 && n%3 != 2; k++ { // 50 audio packets a second, near enough
				seq[3]++
				_ = p.audio.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 111,
					SequenceNumber: seq[3], Timestamp: n * 1600}, Payload: make([]byte, 100)})
			}
		}
	}()
}

func (p *scPublisher) close() {
	select {
	case <-p.stop:
	default:
		close(p.stop)
	}
	_ = p.pc.Close()
	p.wg.Wait()
}

// scViewer is a viewer that logs the layers it is sent.
type scViewer struct {
	pc  *webrtc.PeerConnection
	ep  *Endpoint
	net *netcap.Net // nil: uncapped

	mu       sync.Mutex
	started  bool
	maxSeq   int64 // extended, newest received
	maxLayer int   // the layer of the newest packet
	got      map[int64]scPkt
	frames   map[scFrame]*scFrameLog
	packets  int
}

type scFrame struct {
	layer int
	n     uint32
}

type scFrameLog struct {
	count int
	got   map[int]bool
	first time.Time
}

type scPkt struct {
	at    time.Time
	layer int  // -1: padding
	start bool // the first packet of a frame
	key   bool // of a keyframe
}

func newSCViewer(ctx context.Context, t testing.TB, mp media.Pipeline, name string, capBPS int64, layer string) *scViewer {
	t.Helper()
	return newSCViewerWith(ctx, t, mp, name, capBPS, func(ep *Endpoint) {
		if layer != "" {
			if err := ep.SetLayer(layer); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// newSCViewerWith is newSCViewer with what is done to its endpoint before
// the offer.
func newSCViewerWith(ctx context.Context, t testing.TB, mp media.Pipeline, name string, capBPS int64, setup func(*Endpoint)) *scViewer {
	t.Helper()
	m := &webrtc.MediaEngine{}
	if err := m.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	ir := &interceptor.Registry{}
	if err := webrtc.RegisterDefaultInterceptors(m, ir); err != nil {
		t.Fatal(err)
	}
	se := loopbackSettings()
	v := &scViewer{got: map[int64]scPkt{}, frames: map[scFrame]*scFrameLog{}, maxLayer: -1}
	if capBPS > 0 {
		std, err := stdnet.NewNet()
		if err != nil {
			t.Fatal(err)
		}
		v.net = netcap.New(std, capBPS)
		se.SetNet(v.net)
	}
	api := webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se))
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	v.pc = pc
	recvOnly(t, pc, webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio)
	pc.OnTrack(func(tr *webrtc.TrackRemote, rc *webrtc.RTPReceiver) {
		go drainRTCP(rc.Read)
		if tr.Kind() == webrtc.RTPCodecTypeVideo {
			v.read(tr)
		} else {
			drainRTCP(tr.Read)
		}
	})
	ep, err := mp.NewEndpoint(media.Subscriber, name, media.Events{})
	if err != nil {
		t.Fatal(err)
	}
	v.ep = ep.(*Endpoint)
	setup(v.ep)
	negotiate(ctx, t, pc, ep)
	return v
}

func (v *scViewer) read(tr *webrtc.TrackRemote) {
	buf := make([]byte, 1500)
	var p rtp.Packet
	for {
		n, _, err := tr.Read(buf)
		if err != nil {
			return
		}
		if p.Unmarshal(buf[:n]) != nil {
			continue
		}
		if len(p.Payload) < 11 {
			v.log(p.SequenceNumber, -1, false, false) // padding
			continue
		}
		v.log(p.SequenceNumber, int(p.Payload[2]), p.Payload[0]&0x10 != 0, p.Payload[3] == 1)
		v.logFrame(int(p.Payload[2]), binary.BigEndian.Uint32(p.Payload[4:]),
			int(binary.BigEndian.Uint16(p.Payload[8:])), int(p.Payload[10]))
	}
}

// log notes a packet (layer -1: padding) by its extended sequence number.
func (v *scViewer) log(seq uint16, layer int, start, key bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.packets++
	if !v.started {
		v.started, v.maxSeq = true, int64(seq)
	}
	ext := v.maxSeq + int64(int16(seq-uint16(v.maxSeq)))
	if _, dup := v.got[ext]; dup {
		return
	}
	v.got[ext] = scPkt{at: time.Now(), layer: layer, start: start, key: key}
	if ext > v.maxSeq || v.maxLayer < 0 {
		v.maxSeq = ext
		if layer >= 0 {
			v.maxLayer = layer
		}
	}
}

// analyze walks the sequence numbers received, in order: at each change of
// layer, the first packet of the new one must start a keyframe and follow
// the last of the old one without a gap. It also returns the longest run
// of numbers never received (a jump in the numbering would show as one).
// Behind a bottleneck (lossy), the old layer's last packet and the new
// one's first packets, even its whole keyframe, may be lost for good: a
// switch is then checked only when the packet before it was received.
func (v *scViewer) analyze(lossy bool) (switches int, bad []string, longestGap int) {
	v.mu.Lock()
	defer v.mu.Unlock()
	lo := v.maxSeq
	for s := range v.got {
		lo = min(lo, s)
	}
	layer, gap, prevGot := -1, 0, false
	for s := lo; s <= v.maxSeq; s++ {
		p, ok := v.got[s]
		if !ok {
			gap++
			longestGap = max(longestGap, gap)
			prevGot = false
			continue
		}
		gap = 0
		if p.layer >= 0 && p.layer != layer {
			if layer >= 0 {
				switches++
				if (prevGot || !lossy) && (!p.key || !p.start || !prevGot) {
					bad = append(bad, fmt.Sprintf("layer %d to %d at seq %d: keyframe %v, frame start %v, seq %d received %v",
						layer, p.layer, s, p.key, p.start, s-1, prevGot))
				}
			}
			layer = p.layer
		}
		prevGot = true
	}
	return switches, bad, longestGap
}

func (v *scViewer) logFrame(layer int, n uint32, index, count int) {
	v.mu.Lock()
	defer v.mu.Unlock()
	k := scFrame{layer, n}
	f := v.frames[k]
	if f == nil {
		f = &scFrameLog{count: count, got: map[int]bool{}, first: time.Now()}
		v.frames[k] = f
	}
	f.got[index] = true
}

// mediaLoss counts the video packets lost of the frames first seen since
// from (frames of a layer never seen between two seen count as lost whole),
// retransmissions included.
func (v *scViewer) mediaLoss(from time.Time) (lost, total int) {
	v.mu.Lock()
	defer v.mu.Unlock()
	type span struct {
		lo, hi  uint32
		packets int
		frames  int
	}
	spans := map[int]*span{}
	for k, f := range v.frames {
		if f.first.Before(from) {
			continue
		}
		sp := spans[k.layer]
		if sp == nil {
			sp = &span{lo: k.n, hi: k.n}
			spans[k.layer] = sp
		}
		sp.lo, sp.hi = min(sp.lo, k.n), max(sp.hi, k.n)
		sp.packets += f.count
		sp.frames++
		total += f.count
		lost += f.count - len(f.got)
	}
	for _, sp := range spans {
		if missing := int(sp.hi-sp.lo+1) - sp.frames; missing > 0 {
			per := sp.packets / sp.frames
			lost += missing * per
			total += missing * per
		}
	}
	return lost, total
}

// layer is the layer of the newest packet, -1 before any.
func (v *scViewer) layer() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.maxLayer
}

func (v *scViewer) close() { _ = v.pc.Close() }
