package loadtest

import (
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"

	"github.com/onair-live/onair/internal/codec"
)

// With -simulcast the publisher sends its video as three RID layers, l, m
// and h, at a sixteenth, a quarter and all of -bitrate (125k, 500k and 2M
// by default), each with its own sequence numbers, timestamps and
// keyframes (on its own PLIs), as a browser or an encoder does. Each
// frame's stamp carries its layer in the frame number's top two bits, so
// that a viewer knows which layer it is sent.

// simulcastRIDs are the layers, lowest first.
var simulcastRIDs = [3]string{"l", "m", "h"}

const layerShift = 30 // a stamp's frame number: layer << layerShift | frame

// layers is the publisher's simulcast state.
type layers struct {
	tracks   [3]*webrtc.TrackLocalStaticRTP
	sender   *webrtc.RTPSender
	forceKey [3]atomic.Bool
}

// addLayers adds the video transceiver with three encodings.
func (p *publisher) addLayers() error {
	l := &layers{}
	for i, rid := range simulcastRIDs {
		t, err := webrtc.NewTrackLocalStaticRTP(p.codec.RTPCodecCapability, "video", "onair-loadtest",
			webrtc.WithRTPStreamID(rid))
		if err != nil {
			return err
		}
		l.tracks[i] = t
	}
	tr, err := p.pc.AddTransceiverFromTrack(l.tracks[0], webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
	if err != nil {
		return err
	}
	l.sender = tr.Sender()
	for _, t := range l.tracks[1:] {
		if err := l.sender.AddEncoding(t); err != nil {
			return err
		}
	}
	p.layers = l
	for i, rid := range simulcastRIDs {
		p.rtcp.Add(1)
		go p.readKeyRequests(func() ([]rtcp.Packet, interceptor.Attributes, error) {
			return l.sender.ReadSimulcastRTCP(rid)
		}, &l.forceKey[i])
	}
	return nil
}

// layerState is one layer's sender state.
type layerState struct {
	seq            uint16
	tsBase         uint32
	sinceKey       int
	keySize, iSize int
}

// sendLayers sends one frame of each layer per tick, with the mid and rid
// header extensions by which the server tells the layers apart.
func (p *publisher) sendLayers() {
	defer p.media.Done()
	gop := max(1, int(math.Round(p.o.KeyInt.Seconds()*p.o.FPS)))
	h264 := strings.EqualFold(p.codec.MimeType, codec.H264)
	var midID, ridID uint8
	for _, e := range p.layers.sender.GetParameters().HeaderExtensions {
		switch e.URI {
		case sdp.SDESMidURI:
			midID = uint8(e.ID)
		case sdp.SDESRTPStreamIDURI:
			ridID = uint8(e.ID)
		}
	}
	var mid string
	for _, tr := range p.pc.GetTransceivers() {
		if tr.Sender() == p.layers.sender {
			mid = tr.Mid()
		}
	}
	var st [3]layerState
	for i := range st {
		st[i] = layerState{seq: uint16(rand.Uint32()), tsBase: rand.Uint32(), sinceKey: gop}
		st[i].keySize, st[i].iSize = frameSizes(p.o.Bitrate>>(2*(2-i)), p.o.FPS, gop)
	}
	tick := time.NewTicker(time.Duration(float64(time.Second) / p.o.FPS))
	defer tick.Stop()
	start := time.Now()
	var pkt rtp.Packet
	for frame := uint32(0); ; frame++ {
		now := time.Now()
		for i := range st {
			l := &st[i]
			key := l.sinceKey >= gop || p.layers.forceKey[i].Swap(false)
			if key {
				l.sinceKey = 0
				p.keyframes.Add(1)
			}
			l.sinceKey++
			stp := stamp{sentNanos: now.UnixNano(), frame: uint32(i)<<layerShift | frame&(1<<layerShift-1)}
			size := l.iSize
			if key {
				size = l.keySize
			}
			var payloads [][]byte
			if h264 {
				payloads = h264Frame(size, key, stp)
			} else {
				payloads = vp8Frame(size, key, stp, uint16(frame)&0x7fff)
			}
			ts := l.tsBase + uint32(now.Sub(start).Seconds()*90000)
			for j, pl := range payloads {
				pkt.Header = rtp.Header{Version: 2, Marker: j == len(payloads)-1, SequenceNumber: l.seq, Timestamp: ts}
				if midID != 0 && ridID != 0 {
					_ = pkt.Header.SetExtension(midID, []byte(mid))
					_ = pkt.Header.SetExtension(ridID, []byte(simulcastRIDs[i]))
				}
				pkt.Payload = pl
				l.seq++
				if p.layers.tracks[i].WriteRTP(&pkt) != nil {
					continue
				}
				p.packets.Add(1)
				p.sentBits.Add(uint64(8 * len(pl)))
			}
		}
		p.frames.Add(1)
		select {
		case <-p.stop:
			return
		case <-tick.C:
		}
	}
}

// layerLog is what a viewer of a simulcast broadcast saw of its layers.
type layerLog struct {
	layer         atomic.Int32 // -1 before the first frame
	switches      atomic.Uint64
	firstSwitchAt atomic.Int64 // unix nanoseconds
	lastSwitchAt  atomic.Int64
	// The video counters at the middle of the window, once it is reached.
	midSet           atomic.Bool
	midRecv, midLost atomic.Uint64
}

// markMidWindow notes each viewer's video counters halfway through the
// window, for the loss of the window's second half: a capped viewer's
// first seconds on a layer its path cannot carry are then over.
func (r *runner) markMidWindow() *time.Timer {
	return time.AfterFunc(r.o.Duration/2, func() {
		for _, v := range r.viewers[:r.started.Load()] {
			recv, lost := v.video.lossCounts()
			v.layers.midRecv.Store(recv)
			v.layers.midLost.Store(lost)
			v.layers.midSet.Store(true)
		}
	})
}

// secondHalfLoss is the video loss, in percent, since markMidWindow.
func (v *viewer) secondHalfLoss() (float64, bool) {
	if !v.layers.midSet.Load() {
		return 0, false
	}
	recv, lost := v.video.lossCounts()
	r0, l0 := v.layers.midRecv.Load(), v.layers.midLost.Load()
	if recv < r0 || lost < l0 {
		return 0, false
	}
	return lossPercent(recv-r0, lost-l0), true
}

// note records the layer of a frame the viewer received.
func (l *layerLog) note(st stamp, now int64) {
	layer := int32(st.frame >> layerShift)
	old := l.layer.Swap(layer)
	if old == layer || old < 0 {
		return
	}
	l.switches.Add(1)
	l.firstSwitchAt.CompareAndSwap(0, now)
	l.lastSwitchAt.Store(now)
}

// SimulcastSummary is what -simulcast adds to a run's summary: for the
// capped viewers and the others, the layers they ended on, their video
// loss over the window, and the times from connecting to their first and
// last switches of layer.
type SimulcastSummary struct {
	CappedViewers int          `json:"cappedViewers"`
	CapBitrate    int          `json:"capBitrate"`
	Capped        LayerSummary `json:"capped"`
	Uncapped      LayerSummary `json:"uncapped"`
}

// LayerSummary describes a group of viewers of a simulcast broadcast.
type LayerSummary struct {
	Viewers int            `json:"viewers"`
	Layers  map[string]int `json:"layers"` // the layer each ended on: l, m, h
	// LossVideo is over the whole window, LossVideoLate over its second
	// half. Both count the sequence numbers never received: media, and
	// the padding of the server's probes.
	LossVideo     Dist `json:"lossVideoPercent"`
	LossVideoLate Dist `json:"lossVideoSecondHalfPercent"`
	Switches      Dist `json:"switches"`
	FirstSwitchMs Dist `json:"firstSwitchMs"`
	LastSwitchMs  Dist `json:"lastSwitchMs"`
}

// summarizeLayers adds the simulcast summary of the viewers that were
// connected (or lost) at the end.
func (r *runner) summarizeLayers(s *Summary) {
	if !r.o.Simulcast {
		return
	}
	type acc struct {
		n                                 int
		layers                            map[string]int
		loss, late, switches, first, last []float64
	}
	groups := [2]acc{{layers: map[string]int{}}, {layers: map[string]int{}}}
	for _, v := range r.viewers[:r.started.Load()] {
		if st := v.state.Load(); st != stateConnected && st != stateLost {
			continue
		}
		res := v.result()
		g := &groups[0]
		if res.Capped {
			g = &groups[1]
		}
		g.n++
		if res.Layer != nil {
			g.layers[simulcastRIDs[*res.Layer]]++
		}
		g.loss = append(g.loss, res.VideoLossPct)
		if l, ok := v.secondHalfLoss(); ok {
			g.late = append(g.late, l)
		}
		g.switches = append(g.switches, float64(res.LayerSwitches))
		if res.FirstSwitchMs != nil {
			g.first = append(g.first, *res.FirstSwitchMs)
			g.last = append(g.last, *res.LastSwitchMs)
		}
	}
	sum := func(a acc) LayerSummary {
		return LayerSummary{Viewers: a.n, Layers: a.layers, LossVideo: summarize(a.loss), LossVideoLate: summarize(a.late),
			Switches: summarize(a.switches), FirstSwitchMs: summarize(a.first), LastSwitchMs: summarize(a.last)}
	}
	s.Simulcast = &SimulcastSummary{CappedViewers: r.o.CapViewers, CapBitrate: r.o.CapBitrate,
		Uncapped: sum(groups[0]), Capped: sum(groups[1])}
}

// writeLayers prints the simulcast summary for people.
func writeLayers(w io.Writer, s *Summary) {
	sc := s.Simulcast
	if sc == nil {
		return
	}
	fmt.Fprintf(w, "simulcast: layers l/m/h at %d/%d/%d kbit/s; %d viewers capped at %d kbit/s\n",
		s.Bitrate>>4/1000, s.Bitrate>>2/1000, s.Bitrate/1000, sc.CappedViewers, sc.CapBitrate/1000)
	for _, g := range []struct {
		name string
		l    LayerSummary
	}{{"uncapped", sc.Uncapped}, {"capped", sc.Capped}} {
		if g.l.Viewers == 0 {
			continue
		}
		fmt.Fprintf(w, "  %-8s %d viewers; ended on l %d, m %d, h %d; video loss mean %.3f%% max %.3f%% "+
			"(second half of the window: mean %.3f%% max %.3f%%); "+
			"switches p50 %.0f max %.0f; first switch p50 %.0f ms max %.0f ms; last p50 %.0f ms max %.0f ms\n",
			g.name, g.l.Viewers, g.l.Layers["l"], g.l.Layers["m"], g.l.Layers["h"], g.l.LossVideo.Mean, g.l.LossVideo.Max,
			g.l.LossVideoLate.Mean, g.l.LossVideoLate.Max,
			g.l.Switches.P50, g.l.Switches.Max, g.l.FirstSwitchMs.P50, g.l.FirstSwitchMs.Max,
			g.l.LastSwitchMs.P50, g.l.LastSwitchMs.Max)
	}
	fmt.Fprintln(w)
}
