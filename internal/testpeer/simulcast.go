package testpeer

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

// A simulcast Publisher sends its video as three RID layers, l, m and h,
// lowest first, each with its own sequence numbers, timestamps and
// keyframes (on its own PLIs). Layer i's frame n is FrameBytes(n +
// i*LayerFrames): a viewer tells the layer it is sent from the number of
// the frames it gets (ViewerStats.Layer).

// LayerFrames separates the layers' frame numbers.
const LayerFrames = 100_000_000

// SimulcastRIDs are the layers' RIDs, lowest first.
var SimulcastRIDs = [3]string{"l", "m", "h"}

type simulcast struct {
	layers   [3]*webrtc.TrackLocalStaticRTP
	forceKey [3]atomic.Bool
	plis     [3]atomic.Uint64

	once         sync.Once
	midID, ridID uint8
	mid          string
	seq          [3]uint16
}

func (p *Publisher) addLayers(c webrtc.RTPCodecCapability) error {
	p.sc = &simulcast{}
	for i, rid := range SimulcastRIDs {
		l, err := webrtc.NewTrackLocalStaticRTP(c, "video", "testpeer",
			webrtc.WithRTPStreamID(rid))
		if err != nil {
			return err
		}
		p.sc.layers[i] = l
		p.sc.seq[i] = p.opts.VideoSeqStart + uint16(i)*1000
	}
	return nil
}

// readVideoRTCP counts the keyframe requests of the video, or of each
// layer.
func (p *Publisher) readVideoRTCP() {
	if p.sc == nil {
		p.readRTCP(p.videoSender)
		return
	}
	var wg sync.WaitGroup
	for i, rid := range SimulcastRIDs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				pkts, _, err := p.videoSender.ReadSimulcastRTCP(rid)
				if err != nil {
					return
				}
				for _, pkt := range pkts {
					switch pkt.(type) {
					case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
						p.plis.Add(1)
						p.sc.plis[i].Add(1)
						p.sc.forceKey[i].Store(true)
					}
				}
			}
		}()
	}
	wg.Wait()
}

// sendLayers sends frame n of each layer, with the mid and rid header
// extensions a receiver needs to tell the layers apart.
func (p *Publisher) sendLayers(n uint32) {
	sc := p.sc
	sc.once.Do(func() {
		for _, e := range p.videoSender.GetParameters().HeaderExtensions {
			switch e.URI {
			case sdp.SDESMidURI:
				sc.midID = uint8(e.ID)
			case sdp.SDESRTPStreamIDURI:
				sc.ridID = uint8(e.ID)
			}
		}
		for _, tr := range p.pc.GetTransceivers() {
			if tr.Sender() == p.videoSender {
				sc.mid = tr.Mid()
			}
		}
	})
	for i, track := range sc.layers {
		key := n == 0 || sc.forceKey[i].Swap(false) ||
			(p.opts.KeyframeEvery > 0 && n%uint32(p.opts.KeyframeEvery) == 0)
		payloads := p.packetize(FrameBytes(n+uint32(i)*LayerFrames, key), key)
		for j, pl := range payloads {
			h := rtp.Header{Version: 2, PayloadType: p.videoPT, SequenceNumber: sc.seq[i],
				Timestamp: videoTSBase + uint32(i)*7777 + n*frameTicks, Marker: j == len(payloads)-1}
			if sc.midID != 0 && sc.ridID != 0 {
				_ = h.SetExtension(sc.midID, []byte(sc.mid))
				_ = h.SetExtension(sc.ridID, []byte(SimulcastRIDs[i]))
			}
			_ = track.WriteRTP(&rtp.Packet{Header: h, Payload: pl})
			sc.seq[i]++
			p.videoPackets.Add(1)
		}
		if key {
			p.keyframes.Add(1)
		}
	}
	p.frames.Add(1)
}

// LayerPLIs is how many keyframe requests each layer got (lowest first);
// zeros without simulcast.
func (p *Publisher) LayerPLIs() [3]uint64 {
	var out [3]uint64
	if p.sc != nil {
		for i := range out {
			out[i] = p.sc.plis[i].Load()
		}
	}
	return out
}

// Layer is the simulcast layer of the newest whole frame (0 the lowest).
func (s ViewerStats) Layer() int { return int(s.LastFrame / LayerFrames) }

// WaitLayer waits until the viewer has received more than five frames
// since the call and its newest is of layer (0 the lowest): it plays that
// layer now, not a frame left over from before a switch. desc says what is
// awaited, for the error.
func (v *ViewerPeer) WaitLayer(ctx context.Context, desc string, layer int) error {
	from := v.Stats().Frames
	return v.WaitFor(ctx, desc, func(s ViewerStats) bool {
		return s.Frames > from+5 && s.Layer() == layer
	})
}
